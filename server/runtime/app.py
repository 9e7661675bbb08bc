"""The composition root: builds the store, the platform clients, the service, the gRPC server, health
and metrics from the configuration, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from clients import registry
from clients.http import AttemptEvent
from clients.platform import PlatformClient
from server.observability.logcontext import log_attempt
from server.observability.metrics import ItsmMetrics
from server.observability.metrics_http import MetricsEndpoint
from server.observability.redaction import register_basic_auth, register_secrets
from server.service.periodic import Periodic
from server.service.pipeline import TicketPipeline
from server.service.settings import GatewayConfig
from server.service.sla_sync import SlaSync
from server.storage.database import check_connection, create_engine, parse_url
from server.storage.tickets import TicketStore
from server.transport.auth import TokenRegistry
from server.transport.grpc_server import BindError, GrpcServer, TlsFiles

__all__ = ["Gateway", "ServeOptions", "StartupError", "TlsFiles"]

log = logging.getLogger("itsm.server")


class StartupError(Exception):
    """A reason the gateway cannot start, in one line (port in use, database unreachable...)."""


@dataclass(frozen=True)
class ServeOptions:
    config: GatewayConfig
    database_url: str
    bind: str = "[::]"
    grpc_port: int = 50051
    metrics_bind: str = "0.0.0.0"
    metrics_port: int | None = 9464  # None: no metrics endpoint
    tokens: TokenRegistry | None = None  # None: unauthenticated (dev, or --allow-unauthenticated)
    tls: TlsFiles | None = None


class Gateway:
    """One gateway process. start() brings everything up; stop() drains and tears it down."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.grpc_port = 0
        self.metrics_port = 0
        self._grpc: GrpcServer | None = None
        self._metrics: MetricsEndpoint | None = None
        self._clients: dict[str, PlatformClient] = {}
        self._store: TicketStore | None = None
        self._reconciler: Periodic | None = None
        self.pipeline: TicketPipeline | None = None
        self.sla_sync: SlaSync | None = None

    async def start(self) -> None:
        config = self.options.config
        _register_secrets(self.options)
        engine = create_engine(self.options.database_url)
        self._store = TicketStore(engine)
        await check_connection(engine)
        metrics = _metrics(config)

        def on_attempt(event: AttemptEvent) -> None:
            metrics.platform_attempt(event)
            log_attempt(event)

        specs = {name: registry.spec(name) for name in config.enabled_platforms()}
        self._clients = {
            name: spec.build_client(
                config.platforms[name].settings, config.retry_policy, config.timeout, on_attempt
            )
            for name, spec in specs.items()
        }
        pipeline = self.pipeline = TicketPipeline(config, self._store, self._clients, metrics, specs)
        # Settles tickets left PENDING by a crash or an uncertain outcome; several gateways on one
        # database share the work through the store's lease column.
        self._reconciler = Periodic(
            "itsm-reconciler", config.idempotency.reconcile_interval_seconds, pipeline.reconcile_once
        )
        self.sla_sync = SlaSync(self._store, self._clients, config.sla, config.timeout, metrics)
        self._grpc = GrpcServer(pipeline, config.limits, self.options.tokens)
        address = f"{self.options.bind}:{self.options.grpc_port}"
        try:
            self.grpc_port = self._grpc.bind(address, self.options.tls)
        except BindError as exc:
            raise StartupError(str(exc)) from None
        await self._grpc.start()
        if self.options.metrics_port is not None:
            self._metrics = MetricsEndpoint(self.options.metrics_bind, self.options.metrics_port)
            try:
                self.metrics_port = await self._metrics.start()
            except OSError as exc:
                self._metrics = None
                raise StartupError(str(exc)) from None
        self._reconciler.start()
        self.sla_sync.start()
        await self._grpc.set_serving(True)

    async def stop(self) -> None:
        """Health goes NOT_SERVING, a short drain for load balancers, background work stops, in-flight
        calls finish (up to the grace period), their final writes land, then everything closes."""
        limits = self.options.config.limits
        if self._grpc is not None:
            await self._grpc.set_serving(False)
            await asyncio.sleep(limits.shutdown_drain_seconds)
        if self._reconciler is not None:
            await self._reconciler.stop()
        if self.sla_sync is not None:
            await self.sla_sync.stop()
        if self._grpc is not None:
            await self._grpc.stop(limits.shutdown_grace_seconds)
        if self.pipeline is not None:
            await self.pipeline.drain()
        if self._metrics is not None:
            await self._metrics.stop()
        for client in self._clients.values():
            await client.close()
        if self._store is not None:
            await self._store.close()


def _metrics(config: GatewayConfig) -> ItsmMetrics:
    return ItsmMetrics(
        platforms=tuple(config.platforms),
        known_fields={p: tuple(rules) for p, rules in config.field_mapping.items()},
        known_templates=tuple(config.templates),
        known_priorities={p: tuple(targets) for p, targets in config.sla.targets.items()},
    )


def _register_secrets(options: ServeOptions) -> None:
    """Every secret the process holds is masked at the logging boundary, whatever logs it."""
    for platform in options.config.platforms.values():
        if platform.settings is None:
            continue
        credentials = platform.settings.credentials
        register_secrets(credentials.secrets())
        register_basic_auth(credentials.username, credentials.password)
        register_basic_auth(credentials.client_id, credentials.client_secret)
    password = parse_url(options.database_url).password
    if password:
        register_secrets([str(password)])
