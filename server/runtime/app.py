"""The composition root: builds the store, the platform clients, the service, the gRPC server, the web
port, health and metrics from the configuration, starts them in order and stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from clients import registry
from clients.http import AttemptEvent
from clients.platform import PlatformClient
from server.observability.alert_metrics import AlertmanagerMetrics
from server.observability.logcontext import log_attempt
from server.observability.metrics import ItsmMetrics, RuntimeGauges
from server.observability.metrics_http import MetricsEndpoint
from server.observability.redaction import register_basic_auth, register_secrets
from server.service.alerts import AlertNotifications
from server.service.catalog import Catalog
from server.service.creation import CreateKind
from server.service.dedup import Deduplication
from server.service.engine import ConfirmationDelays, Engine, EngineSettings
from server.service.lifecycle import Lifecycle
from server.service.marker_watch import MarkerWatch
from server.service.periodic import Periodic
from server.service.queries import TicketQueries
from server.service.reconciler import Reconciler
from server.service.settings import GatewayConfig
from server.service.status_sync import StatusSync
from server.service.templates import Templates
from server.service.tickets import TicketCreation
from server.storage.database import check_connection, create_engine, parse_url
from server.storage.operations import OperationStore
from server.storage.platform_checks import PlatformCheckStore
from server.storage.tickets import TicketStore
from server.transport.alertmanager import AlertmanagerEndpoint
from server.transport.auth import TokenRegistry
from server.transport.grpc_server import BindError, GrpcServer, TlsFiles
from server.transport.services import Services
from server.transport.web_app import WebServer
from server.transport.web_page import WebPage

__all__ = ["Gateway", "ServeOptions", "StartupError", "TlsFiles"]

log = logging.getLogger("itsm.server")

# How often itsm_background_tasks and itsm_platform_connections are sampled: a few dict lookups.
GAUGE_SAMPLE_SECONDS = 1.0


class StartupError(Exception):
    """A reason the gateway cannot start, in one line (port in use, database unreachable...)."""


@dataclass(frozen=True)
class ServeOptions:
    config: GatewayConfig
    database_url: str
    bind: str = "[::]"
    grpc_port: int = 50051
    metrics_bind: str | None = None  # None: every interface
    metrics_port: int | None = 9464  # None: no metrics endpoint
    tokens: TokenRegistry | None = None  # None: unauthenticated (dev, or --allow-unauthenticated)
    tls: TlsFiles | None = None  # both ports
    web_bind: str | None = None  # None: every interface
    web_port: int | None = None  # None: no web port (the CLI's default is 8080)
    reuse_port: bool = False  # a worker of `serve --workers N`: the ports are shared (SO_REUSEPORT)


class Gateway:
    """One gateway process. start() brings everything up; stop() drains and tears it down."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.grpc_port = 0
        self.metrics_port = 0
        self.web_port = 0
        self._grpc: GrpcServer | None = None
        self._web: WebServer | None = None
        self._metrics: MetricsEndpoint | None = None
        self._clients: dict[str, PlatformClient] = {}
        self._store: TicketStore | None = None
        self._background: list[Periodic] = []
        self.engine: Engine | None = None
        self.markers: MarkerWatch | None = None
        self.reconciler: Reconciler | None = None
        self.sla_sync: StatusSync | None = None
        self.services: Services | None = None
        self._alerts: AlertNotifications | None = None
        self._alert_endpoint: AlertmanagerEndpoint | None = None
        self._gauges: RuntimeGauges | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = self.options.config
        _register_secrets(self.options)
        database = create_engine(self.options.database_url)
        self._store = TicketStore(database)
        await check_connection(database)
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
        ledger = OperationStore(database)
        catalog = Catalog(config, specs)
        self.markers = MarkerWatch(PlatformCheckStore(database), metrics, specs)
        engine = self.engine = Engine(ledger, self._clients, _engine_settings(config))
        create = CreateKind(catalog, self.markers)
        templates = Templates(config, metrics)
        dedup = Deduplication(
            catalog, engine, ledger, self._store, create, config.idempotency.in_flight_wait_seconds
        )
        self.sla_sync = StatusSync(self._store, self._clients, catalog, config.timeout, metrics)
        lifecycle = Lifecycle(catalog, engine, self._store, metrics, self.sla_sync.record_breaches)
        creation = TicketCreation(config, engine, create, dedup, templates, specs, metrics)
        services = self.services = Services(
            creation=creation,
            lifecycle=lifecycle,
            queries=TicketQueries(self._store),
            templates=templates,
        )
        self._alerts = AlertNotifications(config, creation, lifecycle, self._store, metrics)
        self.reconciler = Reconciler(ledger, engine, {create.kind: create, **lifecycle.kinds})
        # Read (and compressed) before any port opens: the gRPC health check answers SERVING as soon
        # as that server starts, and a caller who saw it may call the web port at once.
        page = WebPage.load() if self.options.web_port is not None else None
        self._grpc = GrpcServer(
            services, config.limits, self.options.tokens, reuse_port=self.options.reuse_port
        )
        address = f"{self.options.bind}:{self.options.grpc_port}"
        try:
            self.grpc_port = self._grpc.bind(address, self.options.tls)
        except BindError as exc:
            raise StartupError(str(exc)) from None
        await self._grpc.start()
        for platform in specs:
            await self._grpc.set_platform(platform, kept=True)
        self.markers.listen(self._grpc.set_platform)
        await self.markers.refresh()
        if page is not None:
            await self._start_web(config, page)
        if self.options.metrics_port is not None:
            self._metrics = MetricsEndpoint(self.options.metrics_bind, self.options.metrics_port)
            try:
                self.metrics_port = await self._metrics.start()
            except OSError as exc:
                self._metrics = None
                raise StartupError(str(exc)) from None
        self._start_background(config)
        await self._grpc.set_serving(True)

    async def _start_web(self, config: GatewayConfig, page: WebPage) -> None:
        assert self._grpc is not None
        assert self._alerts is not None
        alerts = self._alert_endpoint = AlertmanagerEndpoint(
            self._alerts,
            self.options.tokens,
            AlertmanagerMetrics(config.alertmanager.receivers),
            config.limits.max_message_bytes,
        )
        web = WebServer(self._grpc.web_calls(), config.limits, self._grpc.readiness, alerts, page)
        tls = self.options.tls
        try:
            self.web_port = await web.start(
                self.options.web_bind,
                self.options.web_port or 0,
                (str(tls.cert), str(tls.key)) if tls else None,
                reuse_port=self.options.reuse_port,
            )
        except OSError as exc:
            raise StartupError(str(exc)) from None
        self._web = web

    def _start_background(self, config: GatewayConfig) -> None:
        assert self.reconciler is not None and self.markers is not None and self.sla_sync is not None
        markers, reconciler = self.markers, self.reconciler

        async def reconcile() -> None:
            # Settles operations left PENDING by a crash or an uncertain outcome; several gateways
            # on one database share the work through the operations' leases. It also picks up
            # what other replicas learnt about the platforms.
            await markers.refresh()
            await reconciler.run_once()

        self._background = [
            Periodic("itsm-reconciler", config.idempotency.reconcile_interval_seconds, reconcile)
        ]
        # Statuses are kept current whether or not SLA tracking is on.
        self._background.append(
            Periodic("itsm-status-sync", config.sla.sync_interval_seconds, self.sla_sync.run_once)
        )
        for task in self._background:
            task.start()
        self._gauges = RuntimeGauges(tuple(config.platforms))
        self._sampler = asyncio.create_task(self._sample_gauges(), name="itsm-gauge-sampler")

    def runtime_sample(self) -> tuple[dict[str, int], dict[str, int]]:
        """(background tasks by kind, open platform connections by platform), as the gauges show them."""
        kinds = {"itsm-reconciler": "reconciler", "itsm-status-sync": "status_sync"}
        tasks = dict.fromkeys(kinds.values(), 0)
        for periodic in self._background:
            if periodic.name in kinds and periodic.running():
                tasks[kinds[periodic.name]] += 1
        tasks["final_write"] = self.engine.background() if self.engine is not None else 0
        tasks["alert_notification"] = self._alert_endpoint.in_flight if self._alert_endpoint else 0
        connections = {
            name: int(getattr(client, "open_connections", lambda: 0)())
            for name, client in self._clients.items()
        }
        return tasks, connections

    async def _sample_gauges(self) -> None:
        assert self._gauges is not None
        while True:
            try:
                self._gauges.sample(*self.runtime_sample())
            except Exception:  # a gauge must never take the gateway down
                log.warning("sampling the runtime gauges failed", exc_info=True)
            await asyncio.sleep(GAUGE_SAMPLE_SECONDS)

    async def stop(self) -> None:
        """Health goes NOT_SERVING (and /readyz 503), a short drain while load balancers notice, then
        both ports stop accepting and in-flight calls finish (up to the grace period, gRPC and web
        together) and their final writes land; only then does background work
        (reconciler, SLA sync) stop, so nothing the drain interrupts is left unsettled by this
        process; then everything closes."""
        limits = self.options.config.limits
        if self._grpc is not None:
            await self._grpc.set_serving(False)
            await asyncio.sleep(limits.shutdown_drain_seconds)
            stopping = [self._grpc.stop(limits.shutdown_grace_seconds)]
            if self._web is not None:
                stopping.append(self._web.stop())
            await asyncio.gather(*stopping)
        if self.engine is not None:
            await self.engine.drain()
        for task in self._background:
            await task.stop()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._gauges is not None:
            self._gauges.clear()
        if self._metrics is not None:
            await self._metrics.stop()
        for client in self._clients.values():
            await client.close()
        if self._store is not None:
            await self._store.close()


def _engine_settings(config: GatewayConfig) -> EngineSettings:
    return EngineSettings(
        lease_seconds=config.idempotency.pending_lease_seconds,
        call_seconds=config.timeout.total,
        in_flight_wait_seconds=config.idempotency.in_flight_wait_seconds,
        delays={
            name: ConfirmationDelays(p.confirmation_delay_seconds, p.search_confirmation_delay_seconds)
            for name, p in config.platforms.items()
        },
    )


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
