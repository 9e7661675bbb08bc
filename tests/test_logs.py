"""Structured logs: JSON lines, redaction at the handler, and the one-line-per-RPC interceptor."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from clients.http import AttemptEvent
from itsm.v1 import common_pb2, ticket_pb2, ticket_service_pb2
from server.observability import logcontext
from server.observability.logcontext import log_attempt
from server.observability.logs import configure_logging
from server.observability.redaction import REDACTOR, redact, register_basic_auth, register_secrets
from server.transport.auth import TokenRegistry
from server.transport.interceptors import AuthInterceptor
from server.transport.rpc_log import MAX_VALUE, RpcLogInterceptor

CANARY = "canary-Secret-7f3a9c"
TOKEN = "rpc-log-test-token-0123456789"
TICKETS = "itsm.v1.TicketService"


class Capture:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def rpc_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "itsm.rpc"]

    async def rpc_lines_when(self, condition: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """A call ended by context.abort() (or dropped) is logged just after the client has its
        answer; client and server share the event loop, so wait for it, bounded."""
        for _ in range(500):
            if condition(self.rpc_lines()):
                break
            await asyncio.sleep(0.01)
        return self.rpc_lines()


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    monkeypatch.delenv("ITSM_LOG_LEVEL", raising=False)
    monkeypatch.delenv("ITSM_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(level="DEBUG", stream=stream)
    register_secrets([CANARY])
    try:
        yield Capture(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        REDACTOR.clear()


# ------------------------------------------------------------------------------ JSON lines


def test_every_event_is_one_json_line_with_base_fields_and_extras(capture: Capture) -> None:
    log = logging.getLogger("itsm.pipeline")
    log.info(
        "ticket %s created\nsecond line",
        "t-1",
        extra={"job_id": "nightly-42", "platform": "jira", "attempts": 2, "outcome": "created"},
    )
    log.warning("plain")
    lines = capture.lines()
    assert len(lines) == 2
    first = lines[0]
    assert first["level"] == "INFO" and first["logger"] == "itsm.pipeline"
    assert first["message"] == "ticket t-1 created\nsecond line"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert (first["job_id"], first["platform"], first["attempts"], first["outcome"]) == ("nightly-42", "jira", 2, "created")
    assert lines[1]["message"] == "plain"
    assert first["pid"] == lines[1]["pid"] == os.getpid()


def test_a_forked_child_logs_its_own_pid() -> None:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        stream = io.StringIO()
        configure_logging(level="INFO", stream=stream)
        logging.getLogger("itsm.child").info("hello")
        os.write(write_end, stream.getvalue().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as pipe:
        line = json.loads(pipe.read().splitlines()[-1])
    assert line["pid"] == child != os.getpid()


@pytest.fixture
def call_fields() -> Iterator[dict[str, Any]]:
    """The fields of an RPC's line, bound as the RPC log interceptor binds them; unbound after."""
    fields: dict[str, Any] = {}
    token = logcontext._fields.set(fields)
    yield fields
    logcontext._fields.reset(token)


def _attempt(attempt: int, outcome: str, status: int | None, reason: str | None = None) -> AttemptEvent:
    return AttemptEvent("servicenow", "create", "POST", attempt, status, 0.0123, outcome, reason)  # type: ignore[arg-type]


def test_a_first_attempt_that_succeeds_is_folded_into_the_rpc_line(
    capture: Capture, call_fields: dict[str, Any]
) -> None:
    fields = call_fields
    logging.getLogger().setLevel(logging.INFO)
    log_attempt(_attempt(1, "ok", 201))
    assert [line for line in capture.lines() if line["logger"] == "itsm.attempt"] == []
    assert (fields["platform_status"], fields["platform_ms"]) == (201, 12.3)  # on the RPC's line


def test_failed_attempts_and_the_success_after_them_have_their_own_lines(
    capture: Capture, call_fields: dict[str, Any]
) -> None:
    fields = call_fields
    fields["request_id"] = "r-2"
    logging.getLogger().setLevel(logging.INFO)
    log_attempt(_attempt(1, "retry", 503, "http_503"))
    log_attempt(_attempt(2, "ok", 201))
    lines = [line for line in capture.lines() if line["logger"] == "itsm.attempt"]
    assert [(line["level"], line["attempt"], line["status"]) for line in lines] == [
        ("WARNING", 1, 503),
        ("INFO", 2, 201),
    ]
    assert lines[0]["reason"] == "http_503" and lines[1]["request_id"] == "r-2"
    assert fields["platform_status"] == 201


def test_at_debug_every_attempt_has_a_line(capture: Capture, call_fields: dict[str, Any]) -> None:
    log_attempt(_attempt(1, "ok", 200))
    (line,) = [line for line in capture.lines() if line["logger"] == "itsm.attempt"]
    assert (line["level"], line["duration_ms"]) == ("DEBUG", 12.3)


def test_an_extra_cannot_overwrite_a_base_field(capture: Capture) -> None:
    logging.getLogger("x").info("real", extra={"level": "FAKE", "time": "never"})
    line = capture.lines()[0]
    assert line["level"] == "INFO" and line["extra_level"] == "FAKE"


def test_exceptions_are_one_line_too(capture: Capture) -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = capture.lines()
    assert "ValueError: bad thing" in line["exception"] and "Traceback" in line["exception"]


def test_level_and_text_format_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITSM_LOG_LEVEL", "warning")
    monkeypatch.setenv("ITSM_LOG_FORMAT", "text")
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(stream=stream)
    try:
        logging.getLogger("x").info("hidden")
        logging.getLogger("x").warning("shown", extra={"job_id": "j-1"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING x shown job_id=j-1")


def test_configuring_twice_keeps_one_handler(capture: Capture) -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", stream=stream)
    try:
        logging.getLogger("x").info("once")
        assert capture.text == ""  # the first handler was replaced
        assert len(stream.getvalue().splitlines()) == 1
    finally:
        logging.getLogger().removeHandler(handler)


# ------------------------------------------------------------------------------ redaction


def test_a_registered_secret_never_reaches_the_output(capture: Capture) -> None:
    log = logging.getLogger("clients.http")
    log.info(f"message with {CANARY}")
    log.info("args with %s and %r", CANARY, {"nested": [CANARY]})
    log.info("extra", extra={"detail": f"x{CANARY}x", "nested": {"deep": [CANARY, 1]}, "obj": ValueError(CANARY)})
    try:
        raise RuntimeError(f"exception text {CANARY}")
    except RuntimeError:
        log.exception("exception")
    log.info("stack", stack_info=True, extra={"where": CANARY})
    logging.getLogger("itsm").warning("percent-encoded %s", CANARY.replace("-", "%2D"))
    assert CANARY not in capture.text
    assert capture.text.count("***") >= 8
    lines = capture.lines()
    assert lines[2]["nested"] == {"deep": ["***", 1]} and lines[2]["obj"] == "***"
    assert "RuntimeError: exception text ***" in lines[3]["exception"]


def test_basic_auth_forms_are_masked(capture: Capture) -> None:
    register_basic_auth("svc-user", "pa55-word-xyz")
    logging.getLogger("x").info("header Basic c3ZjLXVzZXI6cGE1NS13b3JkLXh5eg== and pa55-word-xyz")
    assert "c3ZjLXVzZXI6cGE1NS13b3JkLXh5eg" not in capture.text
    assert "pa55-word-xyz" not in capture.text


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        ("{'Authorization': 'Bearer eyJhbGciOi.payload.sig'}", "eyJhbGciOi"),
        ("retrying with Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("POST /oauth_token.do grant_type=password&username=u&password=hunter2&client_secret=s3", "hunter2"),
        ('{"client_secret": "topsecretvalue", "x": 1}', "topsecretvalue"),
        ("proxy http://proxyuser:proxypass@proxy:3128 refused", "proxypass"),
        ("token: abcdef123456", "abcdef123456"),
    ],
)
def test_credential_shapes_are_masked_unregistered(capture: Capture, text: str, leak: str) -> None:
    logging.getLogger("x").error(text)
    assert leak not in capture.text
    assert leak not in redact(text)


def test_harmless_text_is_left_alone() -> None:
    for text in ("page_token=abc", "token of 'alerts' is shorter than 16", "http://host:8080/a@b", "INC0010001"):
        assert redact(text) == text


# ------------------------------------------------------------------------------ the RPC log line


def _identity(value: bytes) -> bytes:
    return value


async def create_ticket(request: ticket_service_pb2.CreateTicketRequest, context: aio.ServicerContext) -> ticket_service_pb2.CreateTicketResponse:
    if request.request_id == "invalid":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad")
    return ticket_service_pb2.CreateTicketResponse(ticket=ticket_pb2.Ticket(request_id=request.request_id))


async def count(requests: AsyncIterator[bytes], context: aio.ServicerContext) -> bytes:
    return b"%d" % len([r async for r in requests])


async def explode(request: bytes, context: aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"one"
    raise RuntimeError(f"bug holding {CANARY}")


def _handlers() -> list[grpc.GenericRpcHandler]:
    tickets = grpc.method_handlers_generic_handler(
        TICKETS,
        {
            "CreateTicket": grpc.unary_unary_rpc_method_handler(
                create_ticket,
                request_deserializer=ticket_service_pb2.CreateTicketRequest.FromString,
                response_serializer=ticket_service_pb2.CreateTicketResponse.SerializeToString,
            )
        },
    )
    shapes = grpc.method_handlers_generic_handler(
        "test.Shapes",
        {
            "Count": grpc.stream_unary_rpc_method_handler(count, _identity, _identity),
            "Explode": grpc.unary_stream_rpc_method_handler(explode, _identity, _identity),
        },
    )
    return [tickets, shapes]


@pytest.fixture
async def channel(capture: Capture) -> AsyncIterator[aio.Channel]:
    tokens = TokenRegistry([("alerts", TOKEN, frozenset({"read", "write"}))])
    server = aio.server(interceptors=[RpcLogInterceptor(), AuthInterceptor(tokens)])
    server.add_generic_rpc_handlers(_handlers())
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    async with aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(None)


def _create(channel: aio.Channel) -> aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        f"/{TICKETS}/CreateTicket",
        request_serializer=ticket_service_pb2.CreateTicketRequest.SerializeToString,
        response_deserializer=ticket_service_pb2.CreateTicketResponse.FromString,
    )


AUTH = (("authorization", f"Bearer {TOKEN}"),)


async def test_rpc_line_carries_caller_peer_code_and_request_ids(channel: aio.Channel, capture: Capture) -> None:
    request = ticket_service_pb2.CreateTicketRequest(
        platform=common_pb2.PLATFORM_JIRA, request_id="alert-7f3a", job_id="nightly-42", fields={"summary": "x"}
    )
    await _create(channel)(request, metadata=AUTH)
    (line,) = capture.rpc_lines()
    assert line["rpc"] == f"/{TICKETS}/CreateTicket"
    assert line["code"] == "OK" and line["level"] == "INFO"
    assert line["caller"] == "alerts"
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    assert (line["request_id"], line["job_id"], line["platform"]) == ("alert-7f3a", "nightly-42", "jira")
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["message"] == f"rpc /{TICKETS}/CreateTicket OK"
    assert "fields" not in line and "summary" not in json.dumps(line)  # field values are not logged


async def test_refused_and_aborted_calls_are_logged_with_their_code(channel: aio.Channel, capture: Capture) -> None:
    with pytest.raises(aio.AioRpcError):
        await _create(channel)(ticket_service_pb2.CreateTicketRequest(request_id="r-1"))
    with pytest.raises(aio.AioRpcError):
        await _create(channel)(ticket_service_pb2.CreateTicketRequest(request_id="invalid"), metadata=AUTH)
    refused, invalid = await capture.rpc_lines_when(lambda lines: len(lines) == 2)
    assert refused["code"] == "UNAUTHENTICATED" and "caller" not in refused and refused["request_id"] == "r-1"
    assert invalid["code"] == "INVALID_ARGUMENT" and invalid["caller"] == "alerts"


async def test_request_values_are_cut_and_redacted(channel: aio.Channel, capture: Capture) -> None:
    request = ticket_service_pb2.CreateTicketRequest(request_id="r" * 10_000, job_id=f"job {CANARY}", platform=99)
    await _create(channel)(request, metadata=AUTH)
    (line,) = capture.rpc_lines()
    assert line["request_id"] == "r" * MAX_VALUE + "..."
    assert line["job_id"] == "job ***"
    assert line["platform"] == "99"
    assert CANARY not in capture.text


async def test_streams_health_and_reflection_are_logged(channel: aio.Channel, capture: Capture) -> None:
    async def items() -> AsyncIterator[bytes]:
        for item in (b"a", b"b"):
            yield item

    assert await channel.stream_unary("/test.Shapes/Count")(items(), metadata=AUTH) == b"2"
    with pytest.raises(aio.AioRpcError):
        async for _ in channel.unary_stream("/test.Shapes/Explode")(b"", metadata=AUTH):
            pass
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()

    async def listing() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    replies = [r async for r in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(listing())]
    assert replies[0].list_services_response.service
    with pytest.raises(aio.AioRpcError):
        await channel.unary_unary("/no.Such/Method")(b"")

    lines = await capture.rpc_lines_when(lambda lines: len(lines) == 6)
    by_rpc = {line["rpc"]: line for line in lines}
    assert by_rpc["/test.Shapes/Count"]["code"] == "OK"
    assert by_rpc["/test.Shapes/Explode"]["code"] == "UNKNOWN"
    assert by_rpc["/test.Shapes/Explode"]["level"] == "WARNING"
    assert by_rpc["/grpc.health.v1.Health/Check"]["level"] == "DEBUG"
    assert by_rpc["/grpc.health.v1.Health/Watch"]["code"] == "CANCELLED"
    assert by_rpc["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]["code"] == "OK"
    assert by_rpc["/no.Such/Method"]["code"] == "UNIMPLEMENTED"
    # grpc's own error line for the escaping exception went through the redacting handler too.
    assert "RuntimeError" in capture.text and CANARY not in capture.text
