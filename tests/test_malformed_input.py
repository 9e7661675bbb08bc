"""Hole 4: malformed request bytes (invalid UTF-8, truncated messages, a Struct nested deeper than
protobuf parses, a huge length prefix) came back UNKNOWN, even to unauthenticated callers. Every
malformed input is the caller's: INVALID_ARGUMENT (UNAUTHENTICATED for an anonymous caller), never
UNKNOWN or INTERNAL, and nothing is stored or sent. So is any string carrying NUL or another C0
control character other than tab, newline and carriage return, wherever it sits."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from itsm.v1 import common_pb2, template_service_pb2, ticket_service_pb2
from server.transport.auth import TokenRegistry
from tests.gateway import running_gateway
from tests.rpc import field_violations, rpc_error

TOKEN = "0123456789abcdef0123"
TOKENS = TokenRegistry([("writer", TOKEN, frozenset({"read", "write"}))])
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_struct(depth: int) -> bytes:
    """A google.protobuf.Struct nested `depth` levels, as bytes: Python's protobuf refuses to build it."""
    inner = b""
    for _ in range(depth):
        value = _field(5, inner)  # Value.struct_value
        entry = _field(1, b"a") + _field(2, value)  # the map entry {"a": value}
        inner = _field(1, entry)  # Struct.fields
    return inner


GOOD = ticket_service_pb2.CreateTicketRequest(
    platform=common_pb2.PLATFORM_JIRA, request_id="ok-1", fields={"summary": "s"}
).SerializeToString()
MALFORMED = {
    "truncated": GOOD[:-3],
    "invalid utf-8 in a string": _field(2, b"\xff\xfe\xfd"),
    "garbage": b"\xff\xff\xff\xff\xff",
    "huge length prefix": b"\x22\xff\xff\xff\xff\x0f",
    "wrong wire type": b"\x0d\x00\x00\x00",
}
DEEP = {
    "/itsm.v1.TemplateService/RenderTemplate": _field(1, b"jira_ops_task") + _field(2, nested_struct(120)),
    "/itsm.v1.TicketService/CreateTicketFromTemplate": _field(1, b"jira_ops_task") + _field(4, nested_struct(120)),
}


def raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_undecodable_bytes_are_invalid_argument(harness, case: str) -> None:
    for method in ("/itsm.v1.TicketService/CreateTicket", "/itsm.v1.TicketService/ListTickets",
                   "/itsm.v1.TemplateService/RenderTemplate"):
        error = await rpc_error(raw(harness.channel, method)(MALFORMED[case]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, error.details())
        assert "not a valid itsm.v1." in error.details()
    assert await harness.records("jira") == 0


async def test_structs_nested_too_deeply_are_invalid_argument(harness) -> None:
    for method, body in DEEP.items():
        error = await rpc_error(raw(harness.channel, method)(body))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "nested too deeply" in error.details()
    shallow = _field(1, b"jira_ops_task") + _field(2, nested_struct(20))
    answer = await raw(harness.channel, "/itsm.v1.TemplateService/RenderTemplate")(shallow)
    assert template_service_pb2.RenderTemplateResponse.FromString(answer).platform == common_pb2.PLATFORM_JIRA


async def test_an_anonymous_caller_with_garbage_is_unauthenticated(migrated_database_url: str) -> None:
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        for body in (*MALFORMED.values(), *DEEP.values()):
            error = await rpc_error(raw(h.channel, "/itsm.v1.TicketService/CreateTicket")(body))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        authed = await rpc_error(raw(h.channel, "/itsm.v1.TicketService/CreateTicket")(MALFORMED["garbage"], metadata=AUTH))
        assert authed.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("text", ["a\x00b", "a\x01b", "\x1b[31mred", "a\x7fb\x0bc"])
async def test_control_characters_anywhere_are_invalid_argument(harness, text: str) -> None:
    variables = struct_pb2.Struct()
    variables.update({"title": "t", "details": {"deep": [1, text]}})
    requests = {
        "fields.summary": harness.tickets.CreateTicket(
            ticket_service_pb2.CreateTicketRequest(platform=common_pb2.PLATFORM_JIRA, request_id="c1", fields={"summary": text})
        ),
        "fields.": harness.tickets.CreateTicket(
            ticket_service_pb2.CreateTicketRequest(platform=common_pb2.PLATFORM_JIRA, request_id="c2", fields={text: "s"})
        ),
        "variables.": harness.tickets.CreateTicketFromTemplate(
            ticket_service_pb2.CreateTicketFromTemplateRequest(template_name="jira_ops_task", request_id="c3", variables=variables)
        ),
        "page_token": harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(page_token=text)),
        "name": harness.templates.GetTemplate(template_service_pb2.GetTemplateRequest(name=text)),
        "fields.description": harness.tickets.ValidateTicket(
            ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA, fields={"summary": "s", "description": text})
        ),
    }
    for where, call in requests.items():
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (where, error.details())
        assert any(field.startswith(where) for field in field_violations(error)), (where, field_violations(error))
    assert await harness.records("jira") == 0


async def test_tab_newline_and_carriage_return_are_fine(harness) -> None:
    reply = await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_JIRA, request_id="ok-text",
            fields={"summary": "s", "description": "line 1\r\nline\t2\n"},
        )
    )
    assert reply.ticket.state == common_pb2.TICKET_STATE_CREATED
