"""The processes scripts/bench_grpc.py serves from: gateway, bare echo and sandbox, one each.

    python scripts/bench_grpc_servers.py gateway --servicenow-url URL --jira-url URL --database-url URL
    python scripts/bench_grpc_servers.py echo
    python scripts/bench_grpc_servers.py sandbox

Each binds 127.0.0.1 on free ports, prints one JSON line ({"port": N, "pid": N, ...}) on stdout when
it serves, and stops on SIGTERM, SIGINT or end of stdin (so it never outlives the benchmark that
started it, even one killed with SIGKILL).

The echo server is the baseline: one grpc.aio server, one event loop, the gateway's server options
(concurrency cap, message limits), no interceptors, no (de)serialisation: the request bytes are the
reply. What the gateway costs beyond it is its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "gen"))

import grpc  # noqa: E402
from grpc import aio  # noqa: E402

from sandbox import SandboxConfig, registered, start_sandbox  # noqa: E402
from server.observability.logs import configure_logging  # noqa: E402
from server.runtime import event_loop  # noqa: E402
from server.runtime.app import Gateway, ServeOptions  # noqa: E402
from server.runtime.config import GatewayConfig, parse_config  # noqa: E402
from server.runtime.devmode import sandbox_config_overrides  # noqa: E402

CONFIG_PATH = ROOT / "config" / "itsm_config.json"
ECHO_METHOD = "/bench.Echo/Echo"


def gateway_config(urls: dict[str, str]) -> GatewayConfig:
    """The shipped configuration on the sandbox; only the shutdown drain is shortened."""
    raw = json.loads(CONFIG_PATH.read_text(encoding="utf-8"))
    raw["limits"]["shutdown_drain_seconds"] = 0
    raw["limits"]["shutdown_grace_seconds"] = 2
    raw, env = sandbox_config_overrides(raw, urls)
    return parse_config(raw, {**os.environ, **env})


async def _echo(request: bytes, context: aio.ServicerContext) -> bytes:
    return request


def echo_server(config: GatewayConfig) -> aio.Server:
    limits = config.limits
    server = aio.server(
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    service, method = ECHO_METHOD.lstrip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(_echo)  # no (de)serializers: bytes in, bytes out
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))
    return server


async def _until_stopped() -> None:
    """Returns on SIGTERM, SIGINT or end of stdin."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await stop.wait()


def _ready(port: int, **more: str | int) -> None:
    print(json.dumps({"port": port, "pid": os.getpid(), **more}), flush=True)


async def run_sandbox() -> None:
    configure_logging()
    sandbox = await start_sandbox(SandboxConfig(free_ports=True))
    try:
        _ready(0, urls=json.dumps(sandbox.urls))
        await _until_stopped()
    finally:
        await sandbox.stop()


async def run_echo() -> None:
    server = echo_server(gateway_config({name: "http://127.0.0.1:1" for name in registered()}))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _ready(port)
    await _until_stopped()
    await server.stop(1)


async def run_gateway(args: argparse.Namespace) -> None:
    configure_logging()
    options = ServeOptions(
        config=gateway_config(json.loads(args.sandbox_urls)),
        database_url=args.database_url,
        bind="127.0.0.1",
        grpc_port=0,
        metrics_bind="127.0.0.1",
        metrics_port=0,
        web_bind="127.0.0.1",
        web_port=0,
    )
    gateway = Gateway(options)
    try:
        await gateway.start()
        _ready(gateway.grpc_port, web_port=gateway.web_port)
        await _until_stopped()
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    roles.add_parser("echo")
    roles.add_parser("sandbox")
    gateway = roles.add_parser("gateway")
    gateway.add_argument("--sandbox-urls", required=True, help="JSON: platform -> sandbox URL")
    gateway.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    coro: Any = {"echo": run_echo, "sandbox": run_sandbox}.get(args.role)
    # Gateway and echo on the same loop implementation (uvloop unless ITSM_EVENT_LOOP=asyncio).
    event_loop.run(coro() if coro else run_gateway(args))


if __name__ == "__main__":
    main()
