"""POST /alertmanager/<receiver> end to end: real HTTP to the real gateway on the sandbox, on both
databases. What the platforms hold is read back from the sandbox (records, writes, journal, comments),
not from the gateway's answer."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from itsm.v1 import ticket_service_pb2
from server.observability.logs import configure_logging
from tests.alert_payloads import alert, notification, resolved
from tests.gateway import Harness, HttpReply, running_gateway
from tests.test_lifecycle import NO_FAULTS, comments, incident, issue, journal, writes
from tests.test_server import READER, TOKENS, WRITER

SN = "/alertmanager/ops_servicenow"
JIRA = "/alertmanager/ops_jira"


async def post(h: Harness, path: str, body: Any, **headers: str) -> HttpReply:
    return await h.http("POST", path, body, headers=headers)


async def all_writes(h: Harness) -> int:
    return await writes(h, "servicenow") + await writes(h, "jira")


# ------------------------------------------------------------------------------ firing and resolved


async def test_a_group_opens_one_ticket_attaches_resolves_and_reopens(harness: Harness) -> None:
    first = notification([alert("DiskFull", "db-1")])
    created = await post(harness, SN, first)
    assert created.status == 200, created.body
    body = created.json()
    assert body["action"] == "created" and body["ticket"]["external_key"].startswith("INC")
    assert body["request_id"].startswith("am-")
    assert body["dedup_key"] == 'alertmanager/ops_servicenow/{"alertname":"DiskFull"}'
    sys_id = (await harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id=body["ticket"]["id"]))).ticket
    record = await incident(harness, sys_id.external_id)
    assert record["short_description"] == "Alert DiskFull: DiskFull on db-1"
    assert "[firing] alertname=DiskFull instance=db-1 | DiskFull on db-1 | since 2024-05-01T12:00:00Z" in record[
        "description"
    ]
    after_create = await writes(harness, "servicenow")

    # The same notification again (a retry, the HA peer's copy): nothing more is sent.
    again = await post(harness, SN, first)
    assert again.status == 200 and again.json()["action"] == "replayed"
    peer = await post(harness, SN, {**first, "externalURL": "http://alertmanager-1:9093"})
    assert peer.status == 200 and peer.json()["action"] == "ignored"
    assert await writes(harness, "servicenow") == after_create

    # One more alert in the group: a new notification, one comment on the same ticket.
    grown = notification([alert("DiskFull", "db-1"), alert("DiskFull", "db-2")])
    attached = await post(harness, SN, grown)
    assert attached.json()["action"] == "attached" and attached.json()["ticket"] == body["ticket"]
    notes = await journal(harness, sys_id.external_id)
    assert len(notes) == 1 and "2 alert(s) firing" in notes[0][1] and "instance=db-2" in notes[0][1]
    assert await harness.records("servicenow") == 1

    done = await post(harness, SN, resolved(grown))
    assert done.status == 200 and done.json()["action"] == "resolved"
    assert (await incident(harness, sys_id.external_id))["state"] == "6"
    settled = await writes(harness, "servicenow")
    twice = await post(harness, SN, resolved(grown))
    assert twice.status == 200 and twice.json()["action"] in ("ignored", "replayed")
    assert await writes(harness, "servicenow") == settled

    # The problem comes back (a new alert: a new start time) within the reopen window.
    back = await post(harness, SN, notification([alert("DiskFull", "db-1", starts="2024-05-01T15:00:00Z")]))
    assert back.json()["action"] == "reopened" and back.json()["ticket"]["id"] == body["ticket"]["id"]
    assert (await incident(harness, sys_id.external_id))["state"] == "2"
    assert await harness.records("servicenow") == 1


async def test_the_jira_receiver_comments_on_resolved(harness: Harness) -> None:
    firing = notification([alert("QueueBacklog", "mq-1", severity="page")], group_by=("alertname", "severity"))
    created = (await post(harness, JIRA, firing)).json()
    key = created["ticket"]["external_key"]
    assert created["action"] == "created" and key.startswith("OPS-")
    fields = await issue(harness, key)
    assert fields["issuetype"]["name"] == "Incident" and "alertmanager" in fields["labels"]
    commented = await post(harness, JIRA, resolved(firing))
    assert commented.status == 200 and commented.json()["action"] == "commented"
    (note,) = await comments(harness, key)
    assert note["body"].startswith("Alertmanager: the alerts are resolved.") and "[resolved]" in note["body"]
    assert (await issue(harness, key))["status"]["name"] == "To Do"  # on_resolved: comment


async def test_a_resolved_group_with_no_open_ticket_changes_nothing(harness: Harness) -> None:
    never = resolved(notification([alert("Unseen", "x-1")]))
    reply = await post(harness, SN, never)
    assert reply.status == 200
    assert reply.json()["action"] == "ignored" and "no open ticket" in reply.json()["reason"]
    assert await all_writes(harness) == 0


async def test_reopen_window_zero_opens_a_new_ticket(migrated_database_url: str) -> None:
    def never_reopen(raw: dict[str, Any]) -> None:
        raw["platforms"]["servicenow"]["dedup"] = {"reopen_window_seconds": 0}

    async with running_gateway(migrated_database_url, mutate=never_reopen) as h:
        firing = notification([alert("DiskFull", "db-1")])
        first = (await post(h, SN, firing)).json()
        assert (await post(h, SN, resolved(firing))).json()["action"] == "resolved"
        again = (await post(h, SN, notification([alert("DiskFull", "db-1", starts="2024-05-01T15:00:00Z")]))).json()
        assert again["action"] == "created" and again["ticket"]["id"] != first["ticket"]["id"]
        assert await h.records("servicenow") == 2


async def test_groups_without_labels_are_told_apart_by_their_group_key(harness: Harness) -> None:
    one = notification([alert("A", "h-1")], group_by=())
    other = {**notification([alert("B", "h-2")], group_by=()), "groupKey": '{}/{team="b"}:{}'}
    first, second = (await post(harness, SN, one)).json(), (await post(harness, SN, other)).json()
    assert first["action"] == second["action"] == "created"
    assert first["ticket"]["id"] != second["ticket"]["id"]
    assert "groupKey=" in first["dedup_key"] and first["dedup_key"] != second["dedup_key"]


async def test_a_long_summary_is_cut_to_fit_not_refused(harness: Harness) -> None:
    long = notification([alert("Latency", "api-1", summary="p99 latency above its objective " * 20)])
    reply = await post(harness, SN, long)
    assert reply.status == 200 and reply.json()["action"] == "created"
    ticket = await harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id=reply.json()["ticket"]["id"]))
    summary = (await incident(harness, ticket.ticket.external_id))["short_description"]
    assert len(summary) == 160 and summary.endswith("…")


# ------------------------------------------------------------------------------ refusals


BAD_BODIES = [
    pytest.param(b"not json", "application/json", 400, "invalid_argument", id="not-json"),
    pytest.param(b'{"version": "4", "version": "4"}', "application/json", 400, "invalid_argument", id="dup-key"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "invalid_argument", id="deep"),
    pytest.param(b"\xff\xfe", "application/json", 400, "invalid_argument", id="not-utf8"),
    pytest.param(b"{}", "text/plain", 415, "unsupported_media_type", id="content-type"),
    pytest.param(b"x" * 1_100_000, "application/json", 413, "resource_exhausted", id="too-large"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD_BODIES)
async def test_bodies_that_are_not_json_notifications(
    harness: Harness, body: bytes, content_type: str, status: int, code: str
) -> None:
    reply = await harness.http("POST", SN, body, content_type=content_type)
    assert (reply.status, reply.json()["code"]) == (status, code)
    assert await all_writes(harness) == 0


async def test_payloads_that_are_not_version_4_get_every_violation(harness: Harness) -> None:
    wrong = notification([alert("DiskFull", "db-1")])
    wrong["version"] = "3"
    wrong["alerts"][0]["startsAt"] = "yesterday"
    wrong["commonLabels"]["severity"] = 3
    del wrong["groupKey"]
    reply = await post(harness, SN, wrong)
    assert reply.status == 422 and reply.json()["code"] == "invalid_argument"
    found = {v["field"]: v["reason"] for v in reply.json()["violations"]}
    assert found == {
        "version": "ENUM", "groupKey": "REQUIRED", "commonLabels.severity": "TYPE",
        "alerts[0].startsAt": "PATTERN",
    }
    empty = await post(harness, SN, {**notification([alert("A", "b")]), "alerts": []})
    assert empty.status == 422 and empty.json()["violations"][0]["field"] == "alerts"
    assert (await post(harness, SN, [1, 2])).status == 422
    assert await all_writes(harness) == 0


async def test_unknown_receivers_and_methods(harness: Harness) -> None:
    payload = notification([alert("DiskFull", "db-1")])
    for path in ("/alertmanager/nope", "/alertmanager/", "/alertmanager", "/alertmanager/ops_servicenow/x"):
        reply = await post(harness, path, payload)
        assert reply.status == 404 and reply.json()["code"] == "not_found", path
    got = await harness.http("GET", SN)
    assert got.status == 405 and got.headers["Allow"] == "POST"
    assert await all_writes(harness) == 0


async def test_tokens_and_the_write_scope(migrated_database_url: str) -> None:
    payload = notification([alert("DiskFull", "db-1")])
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        missing = await post(h, SN, payload)
        assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert (await post(h, SN, payload, Authorization="Bearer " + "x" * 24)).status == 401
        assert (await post(h, SN, payload, Authorization=f"Basic {WRITER}")).status == 401
        # An unknown receiver is not told apart from a known one without a token.
        assert (await post(h, "/alertmanager/nope", payload)).status == 401
        denied = await post(h, SN, payload, Authorization=f"Bearer {READER}")
        assert denied.status == 403 and denied.json()["code"] == "permission_denied"
        assert await all_writes(h) == 0
        created = await post(h, SN, payload, Authorization=f"Bearer {WRITER}")
        assert created.status == 200 and created.json()["action"] == "created"
        ticket = await h.tickets.GetTicket(
            ticket_service_pb2.GetTicketRequest(id=created.json()["ticket"]["id"]),
            metadata=[("authorization", f"Bearer {READER}")],
        )
        assert ticket.ticket.created_by == "alerts" and ticket.ticket.job_id == "alertmanager/ops_servicenow"
        assert WRITER not in created.body.decode() and WRITER not in missing.body.decode()


# ------------------------------------------------------------------------------ platforms down


async def test_a_platform_down_is_503_with_retry_after_and_the_retries_act_once(harness: Harness) -> None:
    payload = notification([alert("DiskFull", "db-1")])
    faults = {"error_rate": 1.0, "statuses": [503], "retry_after_seconds": 0}
    await harness.sandbox_put("servicenow", "/_sandbox/faults", faults)
    down = await post(harness, SN, payload)
    assert down.status == 503 and down.json()["code"] in ("unavailable", "outcome_pending")
    assert int(down.headers["Retry-After"]) >= 1
    assert await harness.records("servicenow") == 0
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    up = await post(harness, SN, payload)
    assert up.status == 200 and up.json()["action"] == "created"
    assert await harness.records("servicenow") == 1

    # Down again while a grown group attaches (the open ticket's status cannot be read), then up.
    grown = notification([alert("DiskFull", "db-1"), alert("DiskFull", "db-2")])
    await harness.sandbox_put("servicenow", "/_sandbox/faults", faults)
    assert (await post(harness, SN, grown)).status == 503
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    attached = await post(harness, SN, grown)
    assert attached.status == 200 and attached.json()["action"] == "attached"
    assert await harness.records("servicenow") == 1


async def test_a_notification_cut_by_its_deadline_is_503_and_its_retries_never_open_a_second(
    migrated_database_url: str,
) -> None:
    def short(raw: dict[str, Any]) -> None:
        raw["alertmanager"]["timeout_seconds"] = 1

    async with running_gateway(migrated_database_url, mutate=short) as h:
        payload = notification([alert("DiskFull", "db-1")])
        await h.sandbox_put("servicenow", "/_sandbox/faults", {"latency_ms": 1500})
        cut = await post(h, SN, payload)
        assert cut.status == 503 and "Retry-After" in cut.headers
        await h.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
        for _ in range(40):  # as Alertmanager would: retry the 503s
            reply = await post(h, SN, payload)
            if reply.status == 200:
                break
            assert reply.status == 503, reply.body
            await asyncio.sleep(0.25)
        assert reply.status == 200 and reply.json()["ticket"]["external_key"].startswith("INC")
        assert await h.records("servicenow") == 1


async def test_over_the_concurrency_cap_is_503(migrated_database_url: str) -> None:
    def one_call(raw: dict[str, Any]) -> None:
        raw["limits"]["max_concurrent_rpcs"] = 1

    async with running_gateway(migrated_database_url, mutate=one_call) as h:
        await h.sandbox_put("servicenow", "/_sandbox/faults", {"latency_ms": 600})
        slow = asyncio.ensure_future(post(h, SN, notification([alert("DiskFull", "db-1")])))
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as other:  # a second connection: the first one is busy
            url = h.web_url + SN
            async with other.post(url, json=notification([alert("Other", "x-1")])) as busy:
                assert busy.status == 503 and busy.headers["Retry-After"] == "1"
                assert (await busy.json())["code"] == "resource_exhausted"
        assert (await slow).status == 200
        assert await h.records("servicenow") == 1


# ------------------------------------------------------------------------------ metrics and logs


def counted(text: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "itsm_alertmanager_notifications_total" and labels.items() <= sample.labels.items()
    )


async def test_every_answer_is_counted_with_bounded_labels(harness: Harness) -> None:
    # The registry is the process's: compare before and after.
    before = await harness.scrape()
    payload = notification([alert("DiskFull", "db-1")])
    await post(harness, SN, payload)
    await post(harness, SN, payload)
    await post(harness, "/alertmanager/" + "x" * 300, payload)
    await post(harness, SN, {"version": "4"})
    after = await harness.scrape()

    def delta(**labels: str) -> float:
        return counted(after, **labels) - counted(before, **labels)

    assert delta(receiver="ops_servicenow", status="firing", code="200", outcome="created") == 1
    assert delta(receiver="ops_servicenow", status="firing", code="200", outcome="replayed") == 1
    assert delta(receiver="_unknown", code="404", outcome="refused") == 1
    assert delta(receiver="ops_servicenow", status="_unknown", code="422", outcome="refused") == 1
    assert "x" * 100 not in after


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


async def test_each_notification_has_its_log_line(migrated_database_url: str, log_lines: io.StringIO) -> None:
    payload = notification([alert("DiskFull", "db-1")])
    async with running_gateway(migrated_database_url, tokens=TOKENS) as h:
        created = await post(h, SN, payload, Authorization=f"Bearer {WRITER}")
        await post(h, SN, payload)
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"] == "itsm.rpc" and line.get("rpc", "").startswith("POST /alert")]
    ok, refused = ours
    assert ok["rpc"] == "POST /alertmanager/ops_servicenow" and ok["code"] == "OK" and ok["http_status"] == 200
    assert ok["caller"] == "alerts" and ok["receiver"] == "ops_servicenow" and ok["action"] == "created"
    assert ok["request_id"] == created.json()["request_id"] and ok["ticket_id"] == created.json()["ticket"]["id"]
    assert ok["platform"] == "servicenow" and ok["status"] == "firing" and ok["peer"].startswith("ipv4:")
    assert ok["job_id"] == "alertmanager/ops_servicenow" and ok["template_name"] == "servicenow_alert"
    assert refused["code"] == "UNAUTHENTICATED" and refused["http_status"] == 401 and "caller" not in refused
    assert WRITER not in log_lines.getvalue()

