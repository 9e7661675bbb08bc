"""The processes scripts/bench_grpc.py serves from: gateway, bare echo and sandbox, one each.

    python scripts/bench_grpc_servers.py gateway --servicenow-url URL --jira-url URL --database-url URL
    python scripts/bench_grpc_servers.py gateway-workers --workers N --sandbox-urls JSON --database-url URL
    python scripts/bench_grpc_servers.py echo
    python scripts/bench_grpc_servers.py floor --sandbox-urls JSON --database-url URL
    python scripts/bench_grpc_servers.py sandbox

Each binds 127.0.0.1 on free ports, prints one JSON line ({"port": N, "pid": N, ...}) on stdout when
it serves, and stops on SIGTERM, SIGINT or end of stdin (so it never outlives the benchmark that
started it, even one killed with SIGKILL).

`gateway-workers` runs the gateway as the product does for several cores: `itsm-gateway serve
--workers N` (a supervisor and N worker processes sharing the ports), with the same configuration,
and reports every pid of it (supervisor first) so the benchmark measures the CPU of all of them.

The echo server is the baseline: one grpc.aio server, one event loop, the gateway's server options
(concurrency cap, message limits), no interceptors, no (de)serialisation: the request bytes are the
reply. What the gateway costs beyond it is its own work.

The floor server is the least a CreateTicket can cost on this stack: the echo's server answering
CreateTicket with only the I/O exactly-once needs, written as directly as the libraries allow: parse
the request, one INSERT ... RETURNING on a bare asyncpg pool (the reservation), one POST of the
incident to the sandbox over aiohttp (one keep-alive session), one UPDATE ... RETURNING (the
outcome), and the reply. No validation, ledger rules, retries, logs or metrics. What the gateway's
create costs beyond it is the price of those; what it costs beyond the echo, the floor shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "gen"))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import grpc  # noqa: E402
from grpc import aio  # noqa: E402

from itsm.v1 import common_pb2, ticket_pb2, ticket_service_pb2  # noqa: E402
from sandbox import SandboxConfig, registered, start_sandbox  # noqa: E402
from server.observability.logs import configure_logging  # noqa: E402
from server.runtime import event_loop  # noqa: E402
from server.runtime.app import Gateway, ServeOptions  # noqa: E402
from server.runtime.config import GatewayConfig, parse_config  # noqa: E402
from server.runtime.devmode import sandbox_config_overrides  # noqa: E402

CONFIG_PATH = ROOT / "config" / "itsm_config.json"
ECHO_METHOD = "/bench.Echo/Echo"
CREATE_METHOD = "/itsm.v1.TicketService/CreateTicket"
FLOOR_TABLE = "bench_floor"


def gateway_raw_config(urls: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The shipped configuration on the sandbox (only the shutdown drain is shortened), and the
    environment holding the sandbox's credentials."""
    raw = json.loads(CONFIG_PATH.read_text(encoding="utf-8"))
    raw["limits"]["shutdown_drain_seconds"] = 0
    raw["limits"]["shutdown_grace_seconds"] = 2
    return sandbox_config_overrides(raw, urls)


def gateway_config(urls: dict[str, str]) -> GatewayConfig:
    raw, env = gateway_raw_config(urls)
    return parse_config(raw, {**os.environ, **env})


async def _echo(request: bytes, context: aio.ServicerContext) -> bytes:
    return request


def echo_server(config: GatewayConfig, method: str = ECHO_METHOD, behaviour: Any = _echo) -> aio.Server:
    limits = config.limits
    server = aio.server(
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    service, name = method.lstrip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(behaviour)  # no (de)serializers: bytes in, bytes out
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {name: handler}),))
    return server


class FloorCreate:
    """CreateTicket as the floor server answers it (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool, session: aiohttp.ClientSession, url: str, auth: str) -> None:
        self._pool, self._session, self._url = pool, session, url
        self._headers = {"Accept": "application/json", "Authorization": auth}

    async def create(self, request: bytes, context: aio.ServicerContext) -> bytes:
        create = ticket_service_pb2.CreateTicketRequest.FromString(request)
        fields = dict(create.fields)
        reserved = await self._pool.fetchrow(
            f"INSERT INTO {FLOOR_TABLE} (request_id, state, fields) VALUES ($1, 'PENDING', $2) "
            "ON CONFLICT (request_id) DO NOTHING RETURNING create_time",
            create.request_id, json.dumps(fields),
        )  # fmt: skip
        if reserved is None:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "request_id taken")
        body = {"short_description": fields.get("summary", ""), "description": fields.get("description", "")}
        async with self._session.post(self._url, json=body, headers=self._headers) as response:
            number = (await response.json())["result"]["number"]
        await self._pool.fetchrow(
            f"UPDATE {FLOOR_TABLE} SET state = 'SUCCEEDED', external_key = $2, "
            "update_time = statement_timestamp() WHERE request_id = $1 RETURNING update_time",
            create.request_id, number,
        )  # fmt: skip
        ticket = ticket_pb2.Ticket(
            id=create.request_id, state=common_pb2.TICKET_STATE_CREATED, external_key=number
        )
        return ticket_service_pb2.CreateTicketResponse(ticket=ticket).SerializeToString()


async def run_floor(args: argparse.Namespace) -> None:
    urls = json.loads(args.sandbox_urls)
    user, password = registered()["servicenow"].credentials
    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (request_id text PRIMARY KEY, state text NOT NULL, "
        "fields text NOT NULL, external_key text NOT NULL DEFAULT '', "
        "create_time timestamptz NOT NULL DEFAULT statement_timestamp(), update_time timestamptz)"
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), trust_env=False)
    auth = aiohttp.helpers.BasicAuth(user, password).encode()
    behaviour = FloorCreate(pool, session, urls["servicenow"] + "/api/now/table/incident", auth)
    server = echo_server(gateway_config(urls), CREATE_METHOD, behaviour.create)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        _ready(port)
        await _until_stopped()
    finally:
        await server.stop(1)
        await session.close()
        await pool.close()


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _workers_serving(metrics_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("itsm_workers_serving "):
            return int(float(line.split()[1]))
    return 0


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its log lines go to our stderr: our stdout carries only the ready line.
    return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr)


async def run_gateway_workers(args: argparse.Namespace) -> None:
    """`itsm-gateway serve --workers N` on free ports; ready once every worker serves."""
    raw, env = gateway_raw_config(json.loads(args.sandbox_urls))
    ports = {"grpc": _free_port(), "web": _free_port(), "metrics": _free_port()}
    with tempfile.TemporaryDirectory(prefix="itsm-bench-workers-") as tmp:
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(raw), encoding="utf-8")
        command = [
            sys.executable, "-m", "server.runtime.cli", "serve",
            "--workers", str(args.workers),
            "--config", str(config_path),
            "--database-url", args.database_url,
            "--bind", "127.0.0.1",
            "--grpc-port", str(ports["grpc"]),
            "--web-port", str(ports["web"]),
            "--metrics-port", str(ports["metrics"]),
            "--allow-unauthenticated",
        ]  # fmt: skip
        process = _spawn(command, {**os.environ, **env})
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while await asyncio.to_thread(_workers_serving, ports["metrics"]) < args.workers:
                if process.poll() is not None or loop.time() > deadline:
                    code = process.returncode
                    raise SystemExit(f"serve --workers {args.workers} did not start (exit {code})")
                await asyncio.sleep(0.2)
            workers = _children(process.pid)
            _ready(ports["grpc"], web_port=ports["web"], pids=json.dumps([process.pid, *workers]))
            await _until_stopped()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    roles.add_parser("echo")
    roles.add_parser("sandbox")
    floor = roles.add_parser("floor")
    floor.add_argument("--sandbox-urls", required=True, help="JSON: platform -> sandbox URL")
    floor.add_argument("--database-url", required=True)
    gateway = roles.add_parser("gateway")
    gateway.add_argument("--sandbox-urls", required=True, help="JSON: platform -> sandbox URL")
    gateway.add_argument("--database-url", required=True)
    workers = roles.add_parser("gateway-workers")
    workers.add_argument("--workers", type=int, required=True)
    workers.add_argument("--sandbox-urls", required=True, help="JSON: platform -> sandbox URL")
    workers.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    if args.role == "gateway-workers":
        event_loop.run(run_gateway_workers(args))
        return
    coro: Any = {"echo": run_echo, "sandbox": run_sandbox}.get(args.role)
    if args.role == "floor":
        coro = lambda: run_floor(args)  # noqa: E731
    # Gateway, echo and floor on the same loop implementation (uvloop unless ITSM_EVENT_LOOP=asyncio).
    event_loop.run(coro() if coro else run_gateway(args))


if __name__ == "__main__":
    main()
