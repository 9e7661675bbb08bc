"""Assembles the running gateway: store, platform clients, pipeline, gRPC server, health, metrics."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from clients.http import AttemptEvent
from clients.platform import PlatformClient
from clients.registry import build_client
from itsm.v1 import (
    template_service_pb2,
    template_service_pb2_grpc,
    ticket_service_pb2,
    ticket_service_pb2_grpc,
)
from server.auth import TokenRegistry
from server.config import GatewayConfig
from server.database import check_connection, create_engine, parse_url
from server.grpc_metrics import GrpcMetricsInterceptor
from server.interceptors import AuthInterceptor, ErrorInterceptor
from server.logcontext import log_attempt
from server.metrics import ItsmMetrics
from server.metrics_http import MetricsEndpoint
from server.periodic import Periodic
from server.pipeline import TicketPipeline
from server.redaction import register_basic_auth, register_secrets
from server.rpc_log import RpcLogInterceptor
from server.servicers import TemplateServicer, TicketServicer
from server.sla_sync import SlaSync
from server.store import TicketStore

log = logging.getLogger("itsm.server")

# Health service name for liveness probes: SERVING from start-up until the process exits, drain
# included (a liveness probe failing during a drain would kill the pod mid-drain). Readiness probes
# check "" (the whole server), which goes NOT_SERVING when the drain starts.
LIVENESS_SERVICE = "liveness"

SERVICE_NAMES = (
    ticket_service_pb2.DESCRIPTOR.services_by_name["TicketService"].full_name,
    template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
)


class StartupError(Exception):
    """A reason the gateway cannot start, in one line (port in use, database unreachable...)."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


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
        self._health = health.aio.HealthServicer()
        self._server: aio.Server | None = None
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
        metrics = ItsmMetrics.from_config(config)

        def on_attempt(event: AttemptEvent) -> None:
            metrics.platform_attempt(event)
            log_attempt(event)

        self._clients = {
            name: build_client(name, p.settings, config.retry_policy, config.timeout, on_attempt=on_attempt)
            for name, p in config.platforms.items()
            if p.enabled and p.settings is not None
        }
        pipeline = self.pipeline = TicketPipeline(config, self._store, self._clients, metrics)
        # Settles tickets left PENDING by a crash or an uncertain outcome; several gateways on one
        # database share the work through the store's lease column.
        self._reconciler = Periodic(
            "itsm-reconciler", config.idempotency.reconcile_interval_seconds, pipeline.reconcile_once
        )
        self.sla_sync = SlaSync(self._store, self._clients, config.sla, config.timeout, metrics)
        self._server = self._build_server(pipeline)
        self.grpc_port = self._bind(self._server)
        await self._server.start()
        if self.options.metrics_port is not None:
            self._metrics = MetricsEndpoint(self.options.metrics_bind, self.options.metrics_port)
            try:
                self.metrics_port = await self._metrics.start()
            except OSError as exc:
                self._metrics = None
                raise StartupError(str(exc)) from None
        self._reconciler.start()
        self.sla_sync.start()
        await self._health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self._set_serving(health_pb2.HealthCheckResponse.SERVING)

    def _build_server(self, pipeline: TicketPipeline) -> aio.Server:
        limits = self.options.config.limits
        # Outermost first: metrics and the RPC log see every call, refused ones included.
        interceptors: list[aio.ServerInterceptor] = [GrpcMetricsInterceptor(), RpcLogInterceptor()]
        if self.options.tokens is not None:
            interceptors.append(AuthInterceptor(self.options.tokens))
        interceptors.append(ErrorInterceptor(frozenset(SERVICE_NAMES)))
        server = aio.server(
            interceptors=interceptors,
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
                # Behind a Kubernetes Service (which balances connections, not calls), a bounded
                # connection age makes callers reconnect and spread over new replicas.
                ("grpc.max_connection_age_ms", int(limits.max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(limits.shutdown_grace_seconds * 1000)),
            ],
        )
        ticket_service_pb2_grpc.add_TicketServiceServicer_to_server(TicketServicer(pipeline), server)
        template_service_pb2_grpc.add_TemplateServiceServicer_to_server(
            TemplateServicer(pipeline), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server

    def _bind(self, server: aio.Server) -> int:
        address = f"{self.options.bind}:{self.options.grpc_port}"
        try:
            if self.options.tls is None:
                port = server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(self.options.tls.key.read_bytes(), self.options.tls.cert.read_bytes())]
                )
                port = server.add_secure_port(address, credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            raise StartupError(f"cannot bind gRPC on {address}: port in use or address unavailable")
        return port

    async def _set_serving(self, status: int) -> None:
        await self._health.set("", status)
        for name in SERVICE_NAMES:
            await self._health.set(name, status)

    async def stop(self) -> None:
        """Health goes NOT_SERVING, a short drain for load balancers, background work stops, in-flight
        calls finish (up to the grace period), their final writes land, then everything closes."""
        limits = self.options.config.limits
        # Not enter_graceful_shutdown(): that would take liveness down too.
        await self._set_serving(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._server is not None:
            await asyncio.sleep(limits.shutdown_drain_seconds)
        if self._reconciler is not None:
            await self._reconciler.stop()
        if self.sla_sync is not None:
            await self.sla_sync.stop()
        if self._server is not None:
            await self._server.stop(limits.shutdown_grace_seconds)
        if self.pipeline is not None:
            await self.pipeline.drain()
        if self._metrics is not None:
            await self._metrics.stop()
        for client in self._clients.values():
            await client.close()
        if self._store is not None:
            await self._store.close()


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
