"""The gRPC server: interceptors in order, the two services, health (overall, per service, liveness)
and reflection, limits, TLS and the bind. It also hands the web port its interceptors and handlers
(web_calls()) and its readiness, so both ports run the same chain and drain together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from itsm.v1 import (
    template_service_pb2,
    template_service_pb2_grpc,
    ticket_service_pb2,
    ticket_service_pb2_grpc,
)
from server.domain.rules import Limits
from server.transport.auth import TokenRegistry
from server.transport.grpc_metrics import GrpcMetricsInterceptor
from server.transport.interceptors import AuthInterceptor, ErrorInterceptor
from server.transport.method_registry import MethodRegistry
from server.transport.reflection import enable_reflection
from server.transport.rpc_log import RpcLogInterceptor
from server.transport.services import Services
from server.transport.template_servicer import TemplateServicer
from server.transport.ticket_servicer import TicketServicer
from server.transport.web_calls import WebCalls

# Health service name for liveness probes: SERVING from start-up until the process exits, drain
# included (a liveness probe failing during a drain would kill the pod mid-drain). Readiness probes
# check "" (the whole server), which goes NOT_SERVING when the drain starts.
LIVENESS_SERVICE = "liveness"

SERVICE_NAMES = (
    ticket_service_pb2.DESCRIPTOR.services_by_name["TicketService"].full_name,
    template_service_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
)


def platform_service(platform: str) -> str:
    return f"itsm.platform.{platform}"


class BindError(Exception):
    """The port cannot be bound, in one line."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


class GrpcServer:
    """The grpc.aio server with its health service; start() binds and serves."""

    def __init__(
        self, services: Services, limits: Limits, tokens: TokenRegistry | None, *, reuse_port: bool = False
    ) -> None:
        self.health = health.aio.HealthServicer()
        self._limits = limits
        self._reuse_port = reuse_port
        self._statuses: dict[str, str] = {}  # what was set on self.health, for /readyz
        self._registry = MethodRegistry()
        self._interceptors: list[aio.ServerInterceptor] = []
        self.server = self._build(services, tokens)

    def _build(self, services: Services, tokens: TokenRegistry | None) -> aio.Server:
        limits = self._limits
        # Outermost first: metrics and the RPC log see every call, refused ones included.
        interceptors: list[aio.ServerInterceptor] = [GrpcMetricsInterceptor(), RpcLogInterceptor()]
        if tokens is not None:
            interceptors.append(AuthInterceptor(tokens))
        interceptors.append(ErrorInterceptor(frozenset(SERVICE_NAMES)))
        self._interceptors = interceptors
        server = aio.server(
            interceptors=interceptors,
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", limits.max_message_bytes),
                # Off, so a port in use is an error; on for workers sharing one port (the kernel
                # spreads connections over them).
                ("grpc.so_reuseport", 1 if self._reuse_port else 0),
                # Behind a Kubernetes Service (which balances connections, not calls), a bounded
                # connection age makes callers reconnect and spread over new replicas.
                ("grpc.max_connection_age_ms", int(limits.max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(limits.shutdown_grace_seconds * 1000)),
            ],
        )
        tickets = TicketServicer(services, limits.max_message_bytes)
        templates = TemplateServicer(services.templates)
        for target in (server, self._registry):
            ticket_service_pb2_grpc.add_TicketServiceServicer_to_server(tickets, target)
            template_service_pb2_grpc.add_TemplateServiceServicer_to_server(templates, target)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        enable_reflection((*SERVICE_NAMES, health.SERVICE_NAME), server)
        return server

    def bind(self, address: str, tls: TlsFiles | None) -> int:
        try:
            if tls is None:
                port = self.server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())])
                port = self.server.add_secure_port(address, credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            raise BindError(f"cannot bind gRPC on {address}: port in use or address unavailable")
        return port

    def web_calls(self) -> WebCalls:
        """Our two services' handlers behind this server's interceptor instances (their metric
        series and caches shared), for the web port."""
        return WebCalls(self._registry, self._interceptors)

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """(serving, each health service name's status), as the health service answers them."""
        return self._statuses.get("") == "SERVING", {k: v for k, v in self._statuses.items() if k}

    async def _set(self, service: str, status: int) -> None:
        await self.health.set(service, status)
        self._statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)

    async def start(self) -> None:
        # grpc's HealthServicer answers SERVING for the server ("") until told otherwise: a caller
        # polling health would then reach for the web or metrics port before they are bound.
        # set_serving(True) says so once the gateway has started everything.
        await self._set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        await self._set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)

    async def set_serving(self, serving: bool) -> None:
        """Readiness: the whole server and each of our services. Not enter_graceful_shutdown(), which
        would take liveness down too."""
        response = health_pb2.HealthCheckResponse
        status = response.SERVING if serving else response.NOT_SERVING
        await self._set("", status)
        for name in SERVICE_NAMES:
            await self._set(name, status)

    async def set_platform(self, platform: str, kept: bool) -> None:
        """Health of `itsm.platform.<name>`: NOT_SERVING while the platform drops the correlation
        marker, so exactly-once cannot hold for it (the server itself stays ready)."""
        response = health_pb2.HealthCheckResponse
        await self._set(platform_service(platform), response.SERVING if kept else response.NOT_SERVING)

    async def stop(self, grace: float) -> None:
        await self.server.stop(grace)
