"""Command-line face of the sandbox, for `itsm-gateway sandbox` and `itsm-gateway dev`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sandbox.config import DEFAULT_HOST, PlatformSandbox, SandboxConfig, SandboxLimits, TlsFiles
from sandbox.faults import FaultSettings, FaultSettingsError
from sandbox.platforms import registered
from sandbox.runner import RunningSandbox, start_sandbox

__all__ = [
    "add_port_arguments",
    "add_sandbox_arguments",
    "dev_sandbox_config",
    "ports_from_args",
    "sandbox_config_from_args",
    "serve_sandbox",
]

log = logging.getLogger(__name__)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 (any free port) to 65535")
    return port


def _checked(key: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that applies the same rules as PUT /_sandbox/faults."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
            FaultSettings().merged({key: value})
        except (ValueError, FaultSettingsError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        return value

    return parse


def _status_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def add_port_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--<platform>-port for every registered platform (0 picks a free port)."""
    for name, platform in registered().items():
        parser.add_argument(
            f"--{name}-port", type=_port, default=platform.default_port,
            help=f"sandbox {platform.title or name} port (default %(default)s; 0 picks a free port)",
        )


def ports_from_args(args: argparse.Namespace) -> dict[str, int]:
    return {name: getattr(args, f"{name}_port") for name in registered()}


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("sandbox addresses")
    where.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default %(default)s)")
    add_port_arguments(where)
    where.add_argument("--tls-cert", help="PEM certificate: serve https (needs --tls-key)")
    where.add_argument("--tls-key", help="PEM private key for --tls-cert")

    who = parser.add_argument_group("sandbox credentials (well-known development values by default)")
    for platform in registered().values():
        if platform.add_arguments is not None:
            platform.add_arguments(who)

    faults = parser.add_argument_group("sandbox faults (also settable at run time: PUT /_sandbox/faults)")
    faults.add_argument("--fault-platform", choices=("all", "both", *registered()), default="all")
    faults.add_argument("--error-rate", type=_checked("error_rate", float), default=0.0)
    faults.add_argument(
        "--fault-statuses", type=_checked("statuses", _status_list), default=[503, 429], help="e.g. 503,429"
    )
    faults.add_argument("--retry-after-seconds", type=_checked("retry_after_seconds", int), default=1)
    faults.add_argument("--latency-ms", type=_checked("latency_ms", int), default=0)
    faults.add_argument("--write-latency-ms", type=_checked("write_latency_ms", int), default=0)
    faults.add_argument(
        "--drop-after-commit-rate", type=_checked("drop_after_commit_rate", float), default=0.0
    )
    faults.add_argument("--search-lag-ms", type=_checked("search_lag_ms", int), default=0)
    faults.add_argument("--late-commit-rate", type=_checked("late_commit_rate", float), default=0.0)
    faults.add_argument("--late-commit-ms", type=_checked("late_commit_ms", int), default=3000)
    faults.add_argument("--seed", type=int, default=None, help="makes fault sequences reproducible")
    parser.add_argument("--max-records", type=int, default=SandboxLimits().max_records)


def sandbox_config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Raises ValueError when the TLS flags come without each other."""
    faults = FaultSettings().merged(
        {
            "error_rate": args.error_rate,
            "statuses": list(args.fault_statuses),
            "retry_after_seconds": args.retry_after_seconds,
            "latency_ms": args.latency_ms,
            "write_latency_ms": args.write_latency_ms,
            "drop_after_commit_rate": args.drop_after_commit_rate,
            "search_lag_ms": args.search_lag_ms,
            "late_commit_rate": args.late_commit_rate,
            "late_commit_ms": args.late_commit_ms,
        }
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.max_records < 1:
        raise ValueError("--max-records must be at least 1")
    ports = ports_from_args(args)
    platforms = {
        name: PlatformSandbox(
            port=ports[name],
            faults=faults if args.fault_platform in ("all", "both", name) else FaultSettings(),
            auth=platform.auth_from_args(args) if platform.auth_from_args else None,
        )
        for name, platform in registered().items()
    }
    return SandboxConfig(
        host=args.host,
        platforms=platforms,
        seed=args.seed,
        limits=SandboxLimits(max_records=args.max_records),
        tls=TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None,
    )


def dev_sandbox_config(ports: dict[str, int]) -> SandboxConfig:
    """The sandbox `itsm-gateway dev` runs: loopback only, default credentials, no faults."""
    return SandboxConfig(
        host=DEFAULT_HOST, platforms={name: PlatformSandbox(port) for name, port in ports.items()}
    )


async def serve_sandbox(
    config: SandboxConfig, on_ready: Callable[[RunningSandbox], None] | None = None
) -> None:
    """Serve every planned platform until cancelled, then stop them cleanly.

    on_ready receives the running sandbox once every port is bound (their URLs matter when a port
    was 0).
    """
    running = await start_sandbox(config)
    try:
        for name, url in running.urls.items():
            log.info("%s sandbox listening on %s", name, url)
        if on_ready is not None:
            on_ready(running)
        await asyncio.Event().wait()
    finally:
        await running.stop()
