"""The server from outside: reflection, health, auth, limits, over real gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc
from server.transport.auth import TokenRegistry
from tests.gateway import running_gateway
from tests.rpc import rpc_error

WRITER = "writer-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
TOKENS = TokenRegistry.parse(f"alerts {WRITER} write,read\ndashboards {READER} read\n")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def create_request(request_id: str) -> ticket_service_pb2.CreateTicketRequest:
    return ticket_service_pb2.CreateTicketRequest(
        platform=common_pb2.PLATFORM_SERVICENOW, request_id=request_id, fields={"summary": "Disk full"}
    )


async def test_reflection_lists_the_services(harness) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")

    async def one() -> list[str]:
        async for response in stub.ServerReflectionInfo(iter([request])):
            return [s.name for s in response.list_services_response.service]
        return []

    names = await one()
    assert {"itsm.v1.TicketService", "itsm.v1.TemplateService", "grpc.health.v1.Health"} <= set(names)


@pytest.mark.parametrize("service", ["", "itsm.v1.TicketService", "itsm.v1.TemplateService"])
async def test_health_says_serving(harness, service: str) -> None:
    reply = await harness.health.Check(health_pb2.HealthCheckRequest(service=service))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_goes_not_serving_on_shutdown(migrated_database_url: str) -> None:
    def drain(raw: dict) -> None:
        raw["limits"]["shutdown_drain_seconds"] = 1

    async with running_gateway(migrated_database_url, mutate=drain) as h:
        watch = h.health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(h.gateway.stop())
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # Liveness stays up through the drain: a failing liveness probe would kill the pod mid-drain.
        alive = await h.health.Check(health_pb2.HealthCheckRequest(service="liveness"))
        assert alive.status == health_pb2.HealthCheckResponse.SERVING
        await stopping


async def test_without_a_token_calls_are_refused_but_health_answers(migrated_database_url: str) -> None:
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        error = await rpc_error(h.tickets.CreateTicket(create_request("r1")))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        wrong = await rpc_error(h.tickets.CreateTicket(create_request("r1"), metadata=bearer("x" * 20)))
        assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = await h.health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await h.records("servicenow") == 0


async def test_scopes_and_caller_name(migrated_database_url: str) -> None:
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        denied = await rpc_error(h.tickets.CreateTicket(create_request("r1"), metadata=bearer(READER)))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await h.records("servicenow") == 0

        created = await h.tickets.CreateTicket(create_request("r1"), metadata=bearer(WRITER))
        assert created.ticket.created_by == "alerts"

        read = await h.tickets.GetTicket(
            ticket_service_pb2.GetTicketRequest(id=created.ticket.id), metadata=bearer(READER)
        )
        assert read.ticket.external_key == created.ticket.external_key


async def test_the_concurrency_cap_answers_resource_exhausted(migrated_database_url: str) -> None:
    def one_rpc(raw) -> None:
        raw["limits"]["max_concurrent_rpcs"] = 1

    async with running_gateway(migrated_database_url, mutate=one_rpc) as h:
        await h.sandbox_put("servicenow", "/_sandbox/faults", {"latency_ms": 1500})
        slow = asyncio.ensure_future(h.tickets.CreateTicket(create_request("slow")))
        await asyncio.sleep(0.5)
        refused = await rpc_error(h.tickets.CreateTicket(create_request("second")))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await slow).ticket.state == common_pb2.TICKET_STATE_CREATED


async def test_oversized_messages_are_refused(migrated_database_url: str) -> None:
    async with running_gateway(migrated_database_url) as h:
        huge = ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_SERVICENOW, fields={"summary": "x" * 2_000_000}
        )
        error = await rpc_error(h.tickets.CreateTicket(huge))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await h.records("servicenow") == 0


async def test_stubs_work_over_a_plain_channel(harness) -> None:
    """What an internal caller does: its own channel and the generated stub."""
    target = f"127.0.0.1:{harness.gateway.grpc_port}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ticket_service_pb2_grpc.TicketServiceStub(channel)
        reply = await stub.ValidateTicket(
            ticket_service_pb2.ValidateTicketRequest(
                platform=common_pb2.PLATFORM_JIRA, fields={"summary": "ok"}
            ),
            timeout=5,
        )
        assert reply.valid


@pytest.fixture
def certificate(tmp_path) -> tuple:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


async def test_serve_with_tls(migrated_database_url: str, certificate: tuple) -> None:
    from pathlib import Path

    from sandbox import SandboxConfig, start_sandbox
    from server.runtime.app import Gateway, ServeOptions, TlsFiles
    from tests.gateway import gateway_config

    cert, key = certificate
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    gateway = Gateway(
        ServeOptions(
            config=gateway_config(migrated_database_url, sandbox, None),
            database_url=migrated_database_url,
            bind="127.0.0.1",
            grpc_port=0,
            metrics_port=None,
            tls=TlsFiles(Path(cert), Path(key)),
        )
    )
    await gateway.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{gateway.grpc_port}", credentials) as channel:
            stub = ticket_service_pb2_grpc.TicketServiceStub(channel)
            reply = await stub.ValidateTicket(
                ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA, fields={"summary": "ok"})
            )
            assert reply.valid
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as plain:
            refused = await rpc_error(
                ticket_service_pb2_grpc.TicketServiceStub(plain).ValidateTicket(
                    ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA), timeout=3
                )
            )
            assert refused.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await gateway.stop()
        await sandbox.stop()
