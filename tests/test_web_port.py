"""The web port from outside: Connect (JSON and binary) and gRPC-web over real HTTP, against the real
gateway; the same servicers, auth, metrics, log lines, limits, drain and TLS as the gRPC port."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import shlex
import shutil
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from prometheus_client.parser import text_string_to_metric_families

from itsm.v1 import common_pb2, template_service_pb2, ticket_service_pb2
from sandbox import SandboxConfig, start_sandbox
from server.observability.logs import configure_logging
from server.runtime.app import TlsFiles
from server.transport import grpc_web as grpc_web_protocol
from tests.gateway import Harness, HttpReply, running_gateway
from tests.processes import config_on, free_port, gateway, stop, wait_serving_async
from tests.test_server import READER, TOKENS, WRITER

ROOT = Path(__file__).resolve().parent.parent
CREATE = "TicketService/CreateTicket"
VALIDATE = "TicketService/ValidateTicket"


def jira(request_id: str, summary: str = "Disk full on db-01") -> dict[str, Any]:
    return {"platform": "PLATFORM_JIRA", "request_id": request_id, "fields": {"summary": summary}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bad_request(error: dict[str, Any]) -> dict[str, str]:
    """field -> reason, decoded from the Connect error's google.rpc.BadRequest detail ("value")."""
    (detail,) = [d for d in error.get("details", []) if d["type"] == "google.rpc.BadRequest"]
    value = detail["value"]
    decoded = error_details_pb2.BadRequest.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))
    return {v.field: v.reason for v in decoded.field_violations}


# ------------------------------------------------------------------------------ gRPC-web framing


def grpc_web_frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def grpc_web_reply(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """(data frames, trailers) of a gRPC-web response body."""
    messages, trailers = [], {}
    while body:
        flags, length = struct.unpack_from(">BI", body)
        frame, body = body[5 : 5 + length], body[5 + length :]
        if flags & 0x80:
            for line in frame.decode().split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key.strip()] = value.strip()
        else:
            messages.append(frame)
    return messages, trailers


async def grpc_web(h: Harness, rpc: str, message: bytes, content_type: str = "application/grpc-web+proto",
                   headers: dict[str, str] | None = None) -> tuple[HttpReply, list[bytes], dict[str, str]]:
    text = "text" in content_type
    body = grpc_web_frame(message)
    reply = await h.http("POST", f"/itsm.v1.{rpc}", base64.b64encode(body) if text else body,
                         content_type=content_type, headers=headers)
    assert reply.status == 200, reply.body
    messages, trailers = grpc_web_reply(base64.b64decode(reply.body) if text else reply.body)
    return reply, messages, trailers


# ------------------------------------------------------------------------------ the calls


async def test_connect_json_creates_exactly_once_per_request_id_the_same_ticket_as_grpc(harness: Harness) -> None:
    first = await harness.connect(CREATE, jira("web-1"))
    assert first.status == 200, first.body
    assert first.headers["Content-Type"] == "application/json"
    ticket = first.json()["ticket"]
    assert ticket["state"] == "TICKET_STATE_CREATED" and ticket["externalKey"].startswith("OPS-")
    assert ticket["requestId"] == "web-1" and ticket["fields"]["summary"] == "Disk full on db-01"

    again = await harness.connect(CREATE, jira("web-1"))
    assert again.status == 200 and again.json()["ticket"]["id"] == ticket["id"]
    over_grpc = await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_JIRA, request_id="web-1", fields={"summary": "Disk full on db-01"}
        )
    )
    assert over_grpc.ticket.id == ticket["id"]
    assert await harness.records("jira") == 1

    # Created over gRPC, read over the web port: one store, one set of servicers.
    read = await harness.connect("TicketService/GetTicket", {"id": over_grpc.ticket.id})
    assert read.json()["ticket"]["externalKey"] == over_grpc.ticket.external_key
    listed = await harness.connect("TicketService/ListTickets", {"request_id": "web-1"})
    assert [t["id"] for t in listed.json()["tickets"]] == [ticket["id"]]
    # A different payload under the same request_id is refused, as over gRPC.
    changed = await harness.connect(CREATE, jira("web-1", summary="Something else"))
    assert changed.status == 400 and changed.json()["code"] == "failed_precondition"


async def test_binary_connect(harness: Harness) -> None:
    request = ticket_service_pb2.CreateTicketRequest(
        platform=common_pb2.PLATFORM_SERVICENOW, request_id="bin-1", fields={"summary": "binary"}
    )
    reply = await harness.http("POST", "/itsm.v1.TicketService/CreateTicket", request.SerializeToString(),
                               content_type="application/proto")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/proto"
    ticket = ticket_service_pb2.CreateTicketResponse.FromString(reply.body).ticket
    assert ticket.state == common_pb2.TICKET_STATE_CREATED and ticket.external_key.startswith("INC")

    render = template_service_pb2.RenderTemplateRequest(name="jira_job_failure_bug", job_id="j-1")
    render.variables.update({"pipeline": "etl", "error": {"message": "exit 1"}})
    rendered = await harness.http("POST", "/itsm.v1.TemplateService/RenderTemplate", render.SerializeToString(),
                                  content_type="application/proto")
    preview = template_service_pb2.RenderTemplateResponse.FromString(rendered.body)
    assert preview.platform == common_pb2.PLATFORM_JIRA and "etl" in preview.fields["summary"]

    # An error is JSON whatever the request codec.
    broken = await harness.http("POST", "/itsm.v1.TicketService/CreateTicket", b"\xff\xff\xff",
                                content_type="application/proto")
    assert broken.status == 400 and broken.headers["Content-Type"] == "application/json"
    assert broken.json()["code"] == "invalid_argument"
    assert "not a valid itsm.v1.CreateTicketRequest" in broken.json()["message"]


@pytest.mark.parametrize("content_type", ["application/grpc-web+proto", "application/grpc-web",
                                          "application/grpc-web-text"])
async def test_grpc_web_framing(harness: Harness, content_type: str) -> None:
    valid = ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA, fields={"summary": "ok"})
    reply, messages, trailers = await grpc_web(harness, VALIDATE, valid.SerializeToString(), content_type)
    assert reply.headers["Content-Type"] == content_type
    assert trailers["grpc-status"] == "0"
    assert ticket_service_pb2.ValidateTicketResponse.FromString(messages[0]).valid

    create = ticket_service_pb2.CreateTicketRequest(platform=common_pb2.PLATFORM_JIRA, request_id="gw-1")
    _, messages, trailers = await grpc_web(harness, CREATE, create.SerializeToString(), content_type)
    assert messages == []
    assert trailers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert trailers["grpc-message"] == "invalid request: summary: is required"
    details = trailers["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(details + "=" * (-len(details) % 4)))
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert {v.field: v.reason for v in bad.field_violations} == {"summary": "REQUIRED"}


def test_grpc_message_is_percent_encoded_outside_printable_ascii() -> None:
    assert grpc_web_protocol.percent_encode("100% sûr\n") == "100%25 s%C3%BBr%0A"


async def test_grpc_web_refuses_what_is_not_one_frame_and_unknown_methods(harness: Harness) -> None:
    for body in (b"\x00\x00", b"\x00\x00\x00\x00\x09abc", b"\x80\x00\x00\x00\x00"):
        reply = await harness.http("POST", "/itsm.v1.TicketService/ValidateTicket", body,
                                   content_type="application/grpc-web+proto")
        _, trailers = grpc_web_reply(reply.body)
        assert trailers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0]), body
    _, _, trailers = await grpc_web(harness, "TicketService/NoSuchMethod", b"")
    assert trailers["grpc-status"] == str(grpc.StatusCode.UNIMPLEMENTED.value[0])


async def test_a_compressed_grpc_web_frame_is_invalid_argument_not_unimplemented(harness: Harness) -> None:
    """Found by the fuzz drill: no compression was negotiated, so the flag is the caller's mistake."""
    request = ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA, fields={"summary": "s"})
    body = request.SerializeToString()
    reply = await harness.http("POST", "/itsm.v1.TicketService/ValidateTicket",
                               struct.pack(">BI", 1, len(body)) + body, content_type="application/grpc-web+proto")
    _, trailers = grpc_web_reply(reply.body)
    assert trailers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert "compressed" in trailers["grpc-message"]


def test_grpc_message_with_a_lone_surrogate_is_escaped() -> None:
    assert grpc_web_protocol.percent_encode("a\udbffb") == "a\\udbffb"


async def test_violations_come_back_as_connect_error_json_with_bad_request_details(harness: Harness) -> None:
    body = {"platform": "PLATFORM_JIRA", "request_id": "v-1",
            "fields": {"summary": "", "labels": "ok,has space", "no_such_field": "x"}}
    reply = await harness.connect(CREATE, body)
    assert reply.status == 400 and reply.headers["Content-Type"] == "application/json"
    error = reply.json()
    assert error["code"] == "invalid_argument"
    assert "summary" in error["message"]
    violations = bad_request(error)
    assert violations["summary"] == "REQUIRED" and "labels[1]" in violations and "no_such_field" in violations
    # "debug" is the same detail as JSON, for people reading curl output.
    debug = error["details"][0]["debug"]["fieldViolations"]
    assert {v["field"]: v["reason"] for v in debug} == violations
    assert await harness.records("jira") == 0

    # A dry run answers 200 with the violations in the message.
    dry = await harness.connect(VALIDATE, {"platform": "PLATFORM_JIRA", "fields": {"summary": ""}})
    assert dry.status == 200 and dry.json()["violations"][0]["field"] == "summary"


@pytest.mark.parametrize(
    "body,needle",
    [
        (b'{"platform":"PLATFORM_JIRA","request_id":"u-1","fields":{"summary":"x"},"sumary":"typo"}', "sumary"),
        (b'{"platform":"PLATFORM_JIRA",', "invalid JSON"),
        (b'{"platform":"PLATFORM_NOPE","fields":{"summary":"x"}}', "PLATFORM_NOPE"),
        (b'{"fields":{"summary":7}}', "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"platform":"PLATFORM_JIRA","platform":"PLATFORM_JIRA"}', "duplicate key"),
        (b'{"variables":' + b'{"a":' * 200 + b"1" + b"}" * 201, "invalid JSON"),
        # Found by the fuzz drill: a lone surrogate quoted in the reason made the answer a 500.
        (b'{"fields":"a\\udbff\\u0041b"}', "a\\udbffAb"),
        (b'{"request_id":"a\\udbff"}', "surrogate"),
        (b'{"fields":{"\\ud800":"x"},"platform":"a\\ud800"}', "invalid JSON"),
    ],
)
async def test_unknown_fields_and_malformed_json_are_invalid_argument(harness: Harness, body: bytes,
                                                                      needle: str) -> None:
    reply = await harness.http("POST", "/itsm.v1.TicketService/CreateTicket", body)
    assert reply.status == 400, reply.body
    error = reply.json()
    assert error["code"] == "invalid_argument"
    assert error["message"].startswith("the request is not a valid itsm.v1.CreateTicketRequest")
    assert needle in error["message"]
    assert await harness.records("jira") == 0


async def test_protocol_errors(harness: Harness) -> None:
    wrong_type = await harness.http("POST", "/itsm.v1.TicketService/ValidateTicket", b"{}", content_type="text/plain")
    assert wrong_type.status == 415 and "application/json" in wrong_type.headers["Accept-Post"]

    unknown = await harness.connect("TicketService/NoSuchMethod", {})
    assert unknown.status == 404 and unknown.json()["code"] == "unimplemented"
    not_ours = await harness.http("POST", "/grpc.health.v1.Health/Check", {})
    assert not_ours.status == 404 and not_ours.json()["code"] == "unimplemented"

    bad_timeout = await harness.connect(VALIDATE, {}, headers={"Connect-Timeout-Ms": "soon"})
    assert bad_timeout.status == 400 and bad_timeout.json()["code"] == "invalid_argument"

    assert (await harness.http("GET", "/itsm.v1.TicketService/ValidateTicket")).status == 404
    assert (await harness.http("PUT", "/readyz")).status == 405


async def test_deadlines_from_connect_timeout_ms(harness: Harness) -> None:
    passed = await harness.connect(CREATE, jira("late-0"), headers={"Connect-Timeout-Ms": "1"})
    assert passed.status == 504 and passed.json()["code"] == "deadline_exceeded"

    # A deadline that cuts a create short while the platform works: the outcome is pending, as over
    # gRPC, with every detail (ErrorInfo, RetryInfo) in the Connect error.
    await harness.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 1500})
    cut = await harness.connect(CREATE, jira("late-1"), headers={"Connect-Timeout-Ms": "300"})
    assert cut.status == 503 and cut.json()["code"] == "unavailable"
    details = {d["type"]: d["debug"] for d in cut.json()["details"]}
    assert details["google.rpc.ErrorInfo"]["reason"] == "OUTCOME_PENDING"
    assert details["google.rpc.ErrorInfo"]["metadata"]["request_id"] == "late-1"
    assert "retryDelay" in details["google.rpc.RetryInfo"]


# ------------------------------------------------------------------------------ auth


async def test_auth_over_the_web_port(migrated_database_url: str) -> None:
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        missing = await h.connect(CREATE, jira("a-1"))
        assert missing.status == 401 and missing.json()["code"] == "unauthenticated"
        wrong = await h.connect(CREATE, jira("a-1"), headers=bearer("x" * 24))
        assert wrong.status == 401 and wrong.json()["code"] == "unauthenticated"
        denied = await h.connect(CREATE, jira("a-1"), headers=bearer(READER))
        assert denied.status == 403 and denied.json()["code"] == "permission_denied"
        assert await h.records("jira") == 0

        created = await h.connect(CREATE, jira("a-1"), headers=bearer(WRITER))
        assert created.status == 200 and created.json()["ticket"]["createdBy"] == "alerts"
        read = await h.connect(VALIDATE, {"platform": "PLATFORM_JIRA", "fields": {"summary": "x"}},
                               headers=bearer(READER))
        assert read.status == 200 and read.json()["valid"] is True

        # On the same keep-alive connection, the previous call's caller does not carry over.
        after = await h.connect(VALIDATE, {"platform": "PLATFORM_JIRA", "fields": {"summary": "x"}})
        assert after.status == 401
        _, _, trailers = await grpc_web(h, VALIDATE, b"")
        assert trailers["grpc-status"] == str(grpc.StatusCode.UNAUTHENTICATED.value[0])
        # Probes need no token.
        assert (await h.http("GET", "/healthz")).status == 200
        assert (await h.http("GET", "/readyz")).status == 200


# ------------------------------------------------------------------------------ observability


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(scraped: dict, name: str, method: str, **labels: str) -> float:
    wanted = {"grpc_service": "itsm.v1.TicketService", "grpc_method": method, "grpc_type": "UNARY", **labels}
    return sum(v for (n, ls), v in scraped.items() if n == name and set(wanted.items()) <= ls)


async def test_metrics_families_count_web_calls(harness: Harness) -> None:
    before = samples(await harness.scrape())
    ok = {"platform": "PLATFORM_JIRA", "fields": {"summary": "x"}}
    assert (await harness.connect(VALIDATE, ok)).status == 200
    valid = ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA, fields={"summary": "x"})
    await grpc_web(harness, VALIDATE, valid.SerializeToString())
    assert (await harness.connect(VALIDATE, {"bogus": 1})).status == 400
    after = samples(await harness.scrape())

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, "ValidateTicket", **labels) - metric(before, name, "ValidateTicket", **labels)

    assert delta("grpc_server_started_total") == 3
    assert delta("grpc_server_handled_total", grpc_code="OK") == 2
    assert delta("grpc_server_handled_total", grpc_code="INVALID_ARGUMENT") == 1
    assert delta("grpc_server_handling_seconds_count") == 3


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.delenv("ITSM_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_web_calls_have_the_rpc_log_line(migrated_database_url: str, log_lines: io.StringIO) -> None:
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        assert (await h.connect(CREATE, {**jira("log-1"), "job_id": "nightly-7"}, headers=bearer(WRITER))).status == 200
        assert (await h.connect(CREATE, jira("log-2"))).status == 401
        await h.connect("TicketService/Misspelt", {})
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    rpc = [line for line in lines if line["logger"] == "itsm.rpc"]
    created, refused, unknown = rpc
    assert created["rpc"] == "/itsm.v1.TicketService/CreateTicket" and created["code"] == "OK"
    assert created["caller"] == "alerts" and created["peer"].startswith("ipv4:127.0.0.1:")
    assert (created["request_id"], created["job_id"], created["platform"]) == ("log-1", "nightly-7", "jira")
    assert created["ticket_id"] and created["outcome"] == "created"
    assert refused["code"] == "UNAUTHENTICATED" and "caller" not in refused and refused["request_id"] == "log-2"
    assert unknown["code"] == "UNIMPLEMENTED" and unknown["rpc"] == "/itsm.v1.TicketService/Misspelt"
    assert WRITER not in log_lines.getvalue()


async def test_an_unparsable_http_request_is_a_400_and_a_warning_not_a_traceback(
    migrated_database_url: str, log_lines: io.StringIO
) -> None:
    """Found by the fuzz drill: a header past aiohttp's 8190-byte line limit was answered 400 but
    logged at ERROR with a traceback, a log flood any caller could cause."""
    async with running_gateway(migrated_database_url) as h:
        reply = await h.http("POST", "/itsm.v1.TicketService/ValidateTicket", b"{}",
                             headers={"Authorization": "Bearer " + "t" * 20000})
        assert reply.status == 400
        assert (await h.connect(VALIDATE, {"platform": "PLATFORM_JIRA", "fields": {"summary": "s"}})).status == 200
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL") or "exception" in line]
    warned = [line for line in lines if line["message"].startswith("malformed HTTP request from ")]
    assert len(warned) == 1 and warned[0]["level"] == "WARNING" and "t" * 100 not in warned[0]["message"]


# ------------------------------------------------------------------------------ limits


async def test_the_message_size_limit_is_resource_exhausted(harness: Harness) -> None:
    huge = jira("big-1", summary="x" * 1_100_000)
    reply = await harness.connect(CREATE, huge)
    assert reply.status == 429 and reply.json()["code"] == "resource_exhausted"
    assert "max_message_bytes" in reply.json()["message"]
    message = ticket_service_pb2.CreateTicketRequest(fields={"summary": "x" * 1_100_000}).SerializeToString()
    _, _, trailers = await grpc_web(harness, CREATE, message)
    assert trailers["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert await harness.records("jira") == 0


async def test_the_concurrency_cap_answers_resource_exhausted(migrated_database_url: str) -> None:
    def one_rpc(raw: dict) -> None:
        raw["limits"]["max_concurrent_rpcs"] = 1

    async with running_gateway(migrated_database_url, mutate=one_rpc) as h:
        await h.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 600})
        slow = asyncio.ensure_future(h.connect(CREATE, jira("slow-1")))
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as other:  # a second connection: the first one is busy
            async with other.post(f"{h.web_url}/itsm.v1.{VALIDATE}", json={}) as refused:
                assert refused.status == 429
                assert (await refused.json())["code"] == "resource_exhausted"
        done = await slow
        assert done.status == 200 and done.json()["ticket"]["state"] == "TICKET_STATE_CREATED"
        # Health answers whatever the load.
        assert (await h.http("GET", "/readyz")).status == 200


# ------------------------------------------------------------------------------ lifecycle


async def test_readyz_goes_503_during_the_drain_and_calls_in_flight_finish(migrated_database_url: str) -> None:
    def drain(raw: dict) -> None:
        raw["limits"]["shutdown_drain_seconds"] = 0.5

    async with running_gateway(migrated_database_url, mutate=drain) as h:
        ready = await h.http("GET", "/readyz")
        assert ready.status == 200
        body = ready.json()
        assert body["status"] == "SERVING" and body["services"]["itsm.v1.TicketService"] == "SERVING"
        assert body["services"]["itsm.platform.jira"] == "SERVING"

        # A create that outlasts the drain window: it ends after the listener has closed.
        await h.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 600})
        in_flight = asyncio.ensure_future(h.connect(CREATE, jira("drain-1")))
        await asyncio.sleep(0.3)
        stopping = asyncio.ensure_future(h.gateway.stop())
        await asyncio.sleep(0.1)
        draining = await h.http("GET", "/readyz")
        assert draining.status == 503
        assert draining.json()["status"] == "NOT_SERVING"
        assert draining.json()["services"]["itsm.v1.TicketService"] == "NOT_SERVING"
        assert draining.headers.get("Connection", "").lower() == "close"  # callers go elsewhere
        assert (await h.http("GET", "/healthz")).status == 200  # liveness stays up
        done = await in_flight
        assert done.status == 200 and done.json()["ticket"]["state"] == "TICKET_STATE_CREATED"
        await stopping
        with pytest.raises(aiohttp.ClientConnectionError):
            await h.http("GET", "/healthz")


@pytest.fixture
def certificate(tmp_path: Path) -> TlsFiles:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )
    return TlsFiles(cert, key)


async def test_tls_with_the_grpc_certificate(migrated_database_url: str, certificate: TlsFiles) -> None:
    async with running_gateway(migrated_database_url, tls=certificate) as h:
        trusted = ssl.create_default_context(cafile=str(certificate.cert))
        url = f"https://localhost:{h.gateway.web_port}/itsm.v1.{VALIDATE}"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"platform": "PLATFORM_JIRA", "fields": {"summary": "x"}},
                                 ssl=trusted) as reply:
                assert reply.status == 200 and (await reply.json())["valid"] is True
            with pytest.raises(aiohttp.ClientError):
                await http.post(f"http://127.0.0.1:{h.gateway.web_port}/healthz")
        # gRPC serves the same certificate on its port.
        reply = await h.tickets.ValidateTicket(
            ticket_service_pb2.ValidateTicketRequest(platform=common_pb2.PLATFORM_JIRA, fields={"summary": "x"})
        )
        assert reply.valid


# ------------------------------------------------------------------------------ the README's curl


def readme_curl_command() -> list[str]:
    """The curl command of the README's "JSON over HTTP (curl)" section, as a person would paste it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## JSON over HTTP (curl)", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    command = " ".join(line.rstrip("\\").strip() for line in block.strip().splitlines())
    return shlex.split(command)


async def test_the_readme_curl_command_against_a_served_gateway(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    assert curl is not None, "curl is not installed"
    command = readme_curl_command()
    assert command[0] == "curl" and any("localhost:8080/itsm.v1.TicketService/CreateTicket" in w for w in command)
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    try:
        config, env = config_on(sandbox.urls, tmp_path)
        grpc_port, web_port = free_port(), free_port()
        process = gateway(
            "serve", "--allow-unauthenticated", "--config", str(config), "--grpc-port", str(grpc_port),
            "--metrics-port", str(free_port()), "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
            cwd=tmp_path, env={**env, "ITSM_WEB_PORT": str(web_port)},
        )
        try:
            await wait_serving_async(grpc_port, process)
            argv = [curl, "-sS", *[re.sub(r"localhost:8080", f"localhost:{web_port}", w) for w in command[1:]]]
            run = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(run.communicate(), 30)
            assert run.returncode == 0, err.decode()
            ticket = json.loads(out)["ticket"]
            assert ticket["state"] == "TICKET_STATE_CREATED" and ticket["externalKey"].startswith("OPS-")
            assert ticket["requestId"] == "r-1"
        finally:
            code, err_text = stop(process)
        assert code == 0, err_text[-2000:]
        assert f"web (Connect, gRPC-web) on [::]:{web_port}" in err_text
    finally:
        await sandbox.stop()
