"""`itsm-gateway`: serve, dev, sandbox, migrate, check-config.

Every failure a person can cause (bad config, port in use, unreachable database) ends with one line
on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from server.observability.logs import configure_logging
from server.runtime import event_loop
from server.runtime.app import Gateway, ServeOptions, StartupError, TlsFiles
from server.runtime.config import ConfigError, GatewayConfig, load_config, parse_config
from server.runtime.devmode import dev_banner, sandbox_config_overrides
from server.runtime.workers import (
    Supervisor,
    WorkerPlan,
    metrics_directory,
    remove_directory,
    reserve_port,
    signal_ready,
    worker_count,
)
from server.storage.database import DEFAULT_DATABASE_URL, DatabaseError, create_engine, parse_url
from server.storage.migrate import migrate, schema_status
from server.storage.platform_checks import PlatformCheckStore
from server.transport.auth import TokenRegistry, TokensFileError
from server.transport.health_probe import DEFAULT_ADDRESS, HealthProbe, check

EXIT_USAGE = 2
DEFAULT_CONFIG = "config/itsm_config.json"


class CliError(Exception):
    """A one-line reason to stop, with the exit code to stop with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise CliError(f"{name}={value!r} is not a port number", EXIT_USAGE) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 0-65535")
    return port


def _workers(text: str) -> int:
    try:
        return worker_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_config_path() -> str:
    """config/itsm_config.json in the working directory, else the copy shipped in the package."""
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    return str(resources.files("server.defaults") / "itsm_config.json")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("ITSM_CONFIG"),
        help="configuration file (env ITSM_CONFIG; default config/itsm_config.json)",
    )
    parser.add_argument(
        "--grpc-port", type=_port, default=None, help="gRPC port (env ITSM_GRPC_PORT; default 50051)"
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="Prometheus /metrics port (env ITSM_METRICS_PORT; default 9464)",
    )
    parser.add_argument(
        "--web-port",
        type=_port,
        default=None,
        help="web port: Connect (JSON, binary) and gRPC-web, /healthz, /readyz (env ITSM_WEB_PORT; "
        "default 8080)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ITSM_DATABASE_URL"),
        help=f"database URL (env ITSM_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--auth-tokens-file",
        default=os.environ.get("ITSM_AUTH_TOKENS_FILE"),
        help="caller tokens file (env ITSM_AUTH_TOKENS_FILE)",
    )


def build_parser() -> argparse.ArgumentParser:
    from sandbox.cli import add_port_arguments, add_sandbox_arguments

    parser = argparse.ArgumentParser(prog="itsm-gateway", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway (production)")
    _add_common(serve)
    serve.add_argument("--bind", default="[::]", help="gRPC bind address (default all interfaces)")
    serve.add_argument("--web-bind", help="web port bind address (default: the --bind address)")
    serve.add_argument("--metrics-bind", help="metrics port bind address (default: the --bind address)")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain for TLS (gRPC and web ports)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key for TLS (gRPC and web ports)")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve without a tokens file: every caller is trusted",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=os.environ.get("ITSM_WORKERS", "1"),
        help="processes sharing the ports: a number, or auto for the CPUs this process may use "
        "(env ITSM_WORKERS; default 1)",
    )
    # Set by the supervisor of `--workers N` for each worker it starts; not for people.
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)

    dev = commands.add_parser("dev", help="zero-setup: gateway + sandbox on 127.0.0.1, SQLite")
    _add_common(dev)
    dev.add_argument("--web-bind", default="127.0.0.1", help="web port bind address (default %(default)s)")
    add_port_arguments(dev)

    sandbox = commands.add_parser("sandbox", help="run the platform sandbox only")
    add_sandbox_arguments(sandbox)

    migrate_cmd = commands.add_parser("migrate", help="apply database migrations")
    migrate_cmd.add_argument(
        "--database-url",
        default=os.environ.get("ITSM_DATABASE_URL"),
        help=f"database URL (env ITSM_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file; with a database, also what the gateways learnt of the platforms",
    )
    check.add_argument("path", nargs="?", help="file to check (default: as serve would use)")
    check.add_argument(
        "--database-url",
        default=os.environ.get("ITSM_DATABASE_URL"),
        help="also report what running gateways recorded there (env ITSM_DATABASE_URL), e.g. a "
        "platform that drops the correlation marker",
    )

    probe = commands.add_parser("health", help="gRPC health check of a running gateway (exit 0: SERVING)")
    probe.add_argument("--address", default=DEFAULT_ADDRESS, help="HOST:PORT (default %(default)s)")
    probe.add_argument("--service", default="", help="service name to check (default: the whole server)")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds (default %(default)s)")
    probe.add_argument("--tls", action="store_true", help="connect over TLS")
    probe.add_argument("--tls-ca", type=Path, help="PEM CA (or self-signed cert) to trust")
    probe.add_argument("--tls-server-name", help="name the server certificate carries, if not the host")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    args.raw_argv = raw  # what a supervisor passes on to its workers
    configure_logging()
    try:
        _check_event_loop()
        return _dispatch(args)
    except CliError as exc:
        print(f"itsm-gateway: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def _check_event_loop() -> None:
    """A bad ITSM_EVENT_LOOP is one line and exit 2, before anything starts."""
    try:
        event_loop.loop_name()
    except ValueError as exc:
        raise CliError(str(exc), 2) from None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        path = args.path or os.environ.get("ITSM_CONFIG") or default_config_path()
        config = _load(path)
        receivers = len(config.alertmanager.receivers)
        print(f"{path}: OK ({', '.join(config.enabled_platforms())} enabled, "
              f"{len(config.templates)} templates, {receivers} Alertmanager receivers)")
        if args.database_url:
            return event_loop.run(_check_platforms(args.database_url, config))
        return 0
    if args.command == "health":
        serving, seen = check(
            HealthProbe(args.address, args.service, args.timeout, args.tls or bool(args.tls_ca),
                        args.tls_ca, args.tls_server_name)
        )
        print(f"itsm-gateway health: {seen}", file=sys.stderr)
        return 0 if serving else 1
    if args.command == "migrate":
        return event_loop.run(_migrate(args.database_url or DEFAULT_DATABASE_URL))
    if args.command == "sandbox":
        from sandbox.cli import sandbox_config_from_args, serve_sandbox

        return _run_until_signal(serve_sandbox(sandbox_config_from_args(args)))
    if args.command == "serve":
        return event_loop.run(_serve(args))
    return event_loop.run(_dev(args))


def _load(path: str, env: dict[str, str] | None = None) -> GatewayConfig:
    try:
        return load_config(path, env)
    except ConfigError as exc:
        raise CliError(f"config error: {exc}", EXIT_USAGE) from None


def _tokens(path: str | None) -> TokenRegistry | None:
    if not path:
        return None
    try:
        return TokenRegistry.from_file(path)
    except TokensFileError as exc:
        raise CliError(f"tokens file error: {exc}", EXIT_USAGE) from None


async def _check_platforms(url: str, config: GatewayConfig) -> int:
    """What the gateways on this database recorded about the platforms: exit 1 when exactly-once
    cannot hold for one of them (it drops the correlation marker). A database no gateway has used
    yet (no file, or not migrated) has nothing recorded: said so, exit 0, and nothing is created."""
    try:
        if not _database_exists(url):
            print("database: not created yet: no gateway has recorded a platform check")
            return 0
        status = await schema_status(url)
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    if status.current is None:
        print("database: not migrated yet: no gateway has recorded a platform check")
        return 0
    try:
        engine = create_engine(url)
        try:
            markers = await PlatformCheckStore(engine).markers()
        finally:
            await engine.dispose()
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    except SQLAlchemyError:
        raise CliError("cannot read the gateways' records: is the database migrated?") from None
    broken = {p: detail for p, (kept, detail) in markers.items() if not kept and p in config.platforms}
    for platform in config.enabled_platforms():
        if platform in broken:
            print(f"{platform}: EXACTLY-ONCE CANNOT HOLD: {broken[platform]}")
        else:
            print(f"{platform}: keeps the correlation marker" if platform in markers else
                  f"{platform}: no create checked yet")
    return 1 if broken else 0


def _database_exists(url: str) -> bool:
    """False only for a SQLite file that does not exist (opening it would create it)."""
    parsed = parse_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


async def _migrate(url: str) -> int:
    try:
        await migrate(url)
        status = await schema_status(url)
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    print(f"database schema at revision {status.current} (head)")
    return 0


async def _prepare_database(url: str, *, apply: bool) -> None:
    """Applies migrations, or (PostgreSQL under serve) refuses a schema that is behind. A schema a
    newer version migrated is run on when that version declared it compatible with this one (an
    expand migration, during a rolling upgrade), else refused."""
    try:
        status = await schema_status(url)
        if status.known and apply:
            await migrate(url)
            return
    except DatabaseError as exc:
        raise CliError(str(exc)) from None
    if not status.known:
        if not status.compatible:
            raise CliError(status.newer_message())
        print(
            f"itsm-gateway: database schema {status.current} is newer than this version's "
            f"{status.head}, and compatible with it (since {status.compatible_since}): serving",
            file=sys.stderr, flush=True,
        )
        return
    if not status.up_to_date:
        raise CliError(
            f"database schema is at {status.current or 'empty'}, this version needs {status.head}: "
            "run `itsm-gateway migrate` first"
        )


async def _serve(args: argparse.Namespace) -> int:
    config = _load(args.config or default_config_path())
    tokens = _tokens(args.auth_tokens_file)
    if tokens is None and not args.allow_unauthenticated:
        raise CliError(
            "no tokens file: set ITSM_AUTH_TOKENS_FILE (or --auth-tokens-file), "
            "or pass --allow-unauthenticated to trust every caller",
            EXIT_USAGE,
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together", EXIT_USAGE)
    url = args.database_url or DEFAULT_DATABASE_URL
    worker = args.worker_index is not None
    signals = _Signals() if worker else None
    # SQLite is migrated by the one process that starts first: the supervisor, or a lone gateway.
    await _prepare_database(url, apply=url.startswith("sqlite") and not worker)
    grpc_port = args.grpc_port if args.grpc_port is not None else _env_int("ITSM_GRPC_PORT", 50051)
    if args.workers > 1 and not worker:
        return await _supervise(args, config, grpc_port)
    options = ServeOptions(
        config=config,
        database_url=url,
        bind=args.bind,
        grpc_port=grpc_port,
        metrics_bind=_web_host(args.metrics_bind or args.bind),
        metrics_port=None if worker else _metrics_port(args),  # a supervisor serves the workers'
        tokens=tokens,
        tls=TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None,
        web_bind=_web_host(args.web_bind or args.bind),
        web_port=_web_port(args),
        reuse_port=worker,
    )
    return await _run_gateway(options, banner=None, worker=args.worker_index, signals=signals)


async def _supervise(args: argparse.Namespace, config: GatewayConfig, grpc_port: int) -> int:
    """`serve --workers N`: the ports reserved here, N workers started on them (see workers.py)."""
    try:
        grpc_socket = reserve_port(_web_host(args.bind), grpc_port)
        web_host = _web_host(args.web_bind or args.bind)
        web_socket = reserve_port(web_host, _web_port(args))
    except OSError as exc:
        raise CliError(str(exc)) from None
    ports = {"--grpc-port": grpc_socket.getsockname()[1], "--web-port": web_socket.getsockname()[1]}
    argv = [*args.raw_argv, *(str(x) for pair in ports.items() for x in pair), "--workers", "1"]
    limits = config.limits
    plan = WorkerPlan(
        count=args.workers,
        argv=argv,
        metrics_bind=_web_host(args.metrics_bind or args.bind),
        metrics_port=_metrics_port(args),
        stop_seconds=limits.shutdown_drain_seconds + limits.shutdown_grace_seconds,
    )
    directory, ours = metrics_directory()
    try:
        supervisor = Supervisor(plan, directory)
        print(
            f"itsm-gateway supervisor (pid {os.getpid()}): {args.workers} workers on gRPC "
            f"{args.bind}:{ports['--grpc-port']}, web {ports['--web-port']}; metrics of all on "
            f"{plan.metrics_bind or '[::]'}:{plan.metrics_port}",
            file=sys.stderr, flush=True,
        )
        code = await supervisor.run()
        print(f"itsm-gateway supervisor: stopped (exit {code})", file=sys.stderr, flush=True)
        return code
    except OSError as exc:
        raise CliError(str(exc)) from None
    finally:
        grpc_socket.close()
        web_socket.close()
        if ours:
            remove_directory(directory)


def _metrics_port(args: argparse.Namespace) -> int:
    if args.metrics_port is not None:
        return int(args.metrics_port)
    return _env_int("ITSM_METRICS_PORT", 9464)


def _web_port(args: argparse.Namespace) -> int:
    if args.web_port is not None:
        return int(args.web_port)
    return _env_int("ITSM_WEB_PORT", 8080)


def _web_host(bind: str) -> str | None:
    """gRPC's address spelling to asyncio's (web and metrics ports): [::] (every interface, both
    families) is None."""
    host = bind.strip()
    if host in ("", "[::]", "::", "*"):
        return None
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


async def _dev(args: argparse.Namespace) -> int:
    from sandbox import start_sandbox
    from sandbox.cli import dev_sandbox_config, ports_from_args

    path = args.config or default_config_path()
    raw = _read_json(path)
    try:
        sandbox = await start_sandbox(dev_sandbox_config(ports_from_args(args)))
    except OSError as exc:
        raise CliError(f"cannot start the sandbox: {exc}") from None
    try:
        raw, env = sandbox_config_overrides(raw, sandbox.urls)
        try:
            config = parse_config(raw, {**os.environ, **env})
        except ConfigError as exc:
            raise CliError(f"config error: {exc}", EXIT_USAGE) from None
        url = args.database_url or DEFAULT_DATABASE_URL
        await _prepare_database(url, apply=True)
        options = ServeOptions(
            config=config,
            database_url=url,
            bind="127.0.0.1",
            grpc_port=args.grpc_port if args.grpc_port is not None else _env_int("ITSM_GRPC_PORT", 50051),
            metrics_bind="127.0.0.1",
            metrics_port=_metrics_port(args),
            tokens=_tokens(args.auth_tokens_file),
            web_bind=_web_host(args.web_bind),
            web_port=_web_port(args),
        )
        tokens = options.tokens is not None
        return await _run_gateway(options, banner=lambda gw: dev_banner(gw, sandbox, url, tokens))
    finally:
        await sandbox.stop()


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"config error: {path}: cannot read: {exc.strerror}", EXIT_USAGE) from None
    except json.JSONDecodeError as exc:
        message = f"config error: {path}: invalid JSON at line {exc.lineno}: {exc.msg}"
        raise CliError(message, EXIT_USAGE) from None


async def _run_gateway(
    options: ServeOptions, banner: Any, worker: int | None = None, signals: _Signals | None = None
) -> int:
    signals = signals or _Signals()
    try:
        return await _serve_until_signal(options, banner, worker, signals)
    finally:
        signals.close()


async def _serve_until_signal(
    options: ServeOptions, banner: Any, worker: int | None, signals: _Signals
) -> int:
    gateway = Gateway(options)
    try:
        await gateway.start()
    except (StartupError, DatabaseError, OSError) as exc:
        await gateway.stop()
        raise CliError(str(exc)) from None
    line = banner(gateway) if banner else _serving_line(options, gateway)
    if worker is not None:
        line = f"itsm-gateway worker {worker} (pid {os.getpid()}): " + line.removeprefix("itsm-gateway ")
        signal_ready()
    print(line, file=sys.stderr, flush=True)
    await signals.wait(orphan_of=os.getppid() if worker is not None else None)
    print("itsm-gateway: shutting down (draining in-flight calls)", file=sys.stderr, flush=True)
    await gateway.stop()
    return 0


def _serving_line(options: ServeOptions, gateway: Gateway) -> str:
    line = f"itsm-gateway serving gRPC on {options.bind}:{gateway.grpc_port}"
    if options.web_port is not None:
        host = options.web_bind
        shown = "[::]" if host is None else f"[{host}]" if ":" in host else host
        line += f", web (Connect, gRPC-web) on {shown}:{gateway.web_port}"
    return line


class _Signals:
    """SIGTERM and SIGINT, caught from the moment this is made: one that arrives while the gateway
    is still starting stops it right after it started, cleanly (a supervisor stopping a worker
    that is still starting), instead of killing it half-way."""

    def __init__(self) -> None:
        self.received = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self.received.set)

    async def wait(self, orphan_of: int | None = None) -> None:
        """Until a signal; for a worker, also until its supervisor is gone (killed with SIGKILL,
        it could not pass the signal on): a worker never outlives it."""
        while orphan_of is not None and os.getppid() == orphan_of and not self.received.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.received.wait(), 1.0)
        if orphan_of is None:
            await self.received.wait()

    def close(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.remove_signal_handler(sig)


async def _wait_for_signal() -> None:
    signals = _Signals()
    try:
        await signals.wait()
    finally:
        signals.close()


def _run_until_signal(coro: Any) -> int:
    async def run() -> int:
        task = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(_wait_for_signal())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except OSError as exc:
            raise CliError(str(exc)) from None
        return 0

    return event_loop.run(run())


if __name__ == "__main__":
    sys.exit(main())
