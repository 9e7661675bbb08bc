"""Command-line face of the sandbox, for `itsm-gateway sandbox` and `itsm-gateway dev`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from typing import Any

from clients.sandbox.config import (
    DEFAULT_HOST,
    DEFAULT_JIRA_PORT,
    DEFAULT_JIRA_TOKEN,
    DEFAULT_JIRA_USER,
    DEFAULT_SERVICENOW_CLIENT_ID,
    DEFAULT_SERVICENOW_CLIENT_SECRET,
    DEFAULT_SERVICENOW_PASSWORD,
    DEFAULT_SERVICENOW_PORT,
    DEFAULT_SERVICENOW_USER,
    SANDBOX_CREDENTIALS,
    JiraSandboxAuth,
    SandboxConfig,
    SandboxLimits,
    ServiceNowSandboxAuth,
    TlsFiles,
)
from clients.sandbox.faults import FaultSettings, FaultSettingsError
from clients.sandbox.runner import RunningSandbox, start_sandbox

__all__ = [
    "SANDBOX_CREDENTIALS",
    "add_sandbox_arguments",
    "dev_sandbox_config",
    "sandbox_config_from_args",
    "serve_sandbox",
]

log = logging.getLogger(__name__)


def _port(text: str) -> int:
    port = int(text)
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


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("sandbox addresses")
    where.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default %(default)s)")
    where.add_argument(
        "--servicenow-port", type=_port, default=DEFAULT_SERVICENOW_PORT, help="0 picks a free port"
    )
    where.add_argument("--jira-port", type=_port, default=DEFAULT_JIRA_PORT, help="0 picks a free port")
    where.add_argument("--tls-cert", help="PEM certificate: serve https (needs --tls-key)")
    where.add_argument("--tls-key", help="PEM private key for --tls-cert")

    who = parser.add_argument_group("sandbox credentials (well-known development values by default)")
    who.add_argument("--servicenow-user", default=DEFAULT_SERVICENOW_USER)
    who.add_argument("--servicenow-password", default=DEFAULT_SERVICENOW_PASSWORD)
    who.add_argument("--servicenow-client-id", default=DEFAULT_SERVICENOW_CLIENT_ID)
    who.add_argument("--servicenow-client-secret", default=DEFAULT_SERVICENOW_CLIENT_SECRET)
    who.add_argument("--jira-user", default=DEFAULT_JIRA_USER)
    who.add_argument("--jira-token", default=DEFAULT_JIRA_TOKEN)

    faults = parser.add_argument_group("sandbox faults (also settable at run time: PUT /_sandbox/faults)")
    faults.add_argument("--fault-platform", choices=("both", "servicenow", "jira"), default="both")
    faults.add_argument("--error-rate", type=_checked("error_rate", float), default=0.0)
    faults.add_argument(
        "--fault-statuses", type=_checked("statuses", _status_list), default=[503, 429], help="e.g. 503,429"
    )
    faults.add_argument("--retry-after-seconds", type=_checked("retry_after_seconds", int), default=1)
    faults.add_argument("--latency-ms", type=_checked("latency_ms", int), default=0)
    faults.add_argument(
        "--drop-after-commit-rate", type=_checked("drop_after_commit_rate", float), default=0.0
    )
    faults.add_argument("--search-lag-ms", type=_checked("search_lag_ms", int), default=0)
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
            "drop_after_commit_rate": args.drop_after_commit_rate,
            "search_lag_ms": args.search_lag_ms,
        }
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.max_records < 1:
        raise ValueError("--max-records must be at least 1")
    return SandboxConfig(
        host=args.host,
        servicenow_port=args.servicenow_port,
        jira_port=args.jira_port,
        servicenow_auth=ServiceNowSandboxAuth(
            user=args.servicenow_user,
            password=args.servicenow_password,
            client_id=args.servicenow_client_id,
            client_secret=args.servicenow_client_secret,
        ),
        jira_auth=JiraSandboxAuth(user=args.jira_user, token=args.jira_token),
        servicenow_faults=faults if args.fault_platform in ("both", "servicenow") else FaultSettings(),
        jira_faults=faults if args.fault_platform in ("both", "jira") else FaultSettings(),
        seed=args.seed,
        limits=SandboxLimits(max_records=args.max_records),
        tls=TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None,
    )


def dev_sandbox_config(
    servicenow_port: int = DEFAULT_SERVICENOW_PORT, jira_port: int = DEFAULT_JIRA_PORT
) -> SandboxConfig:
    """The sandbox `itsm-gateway dev` runs: loopback only, default credentials, no faults."""
    return SandboxConfig(host=DEFAULT_HOST, servicenow_port=servicenow_port, jira_port=jira_port)


async def serve_sandbox(
    config: SandboxConfig, on_ready: Callable[[RunningSandbox], None] | None = None
) -> None:
    """Serve both sandboxes until cancelled, then stop them cleanly.

    on_ready receives the running sandbox once both ports are bound (their URLs matter when a
    port was 0).
    """
    running = await start_sandbox(config)
    try:
        log.info("ServiceNow sandbox listening on %s", running.servicenow_url)
        log.info("Jira sandbox listening on %s", running.jira_url)
        if on_ready is not None:
            on_ready(running)
        await asyncio.Event().wait()
    finally:
        await running.stop()
