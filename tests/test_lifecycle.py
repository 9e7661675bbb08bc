"""A ticket's life end to end over gRPC against the sandbox: update, comment, resolve, reopen on both
platforms, each exactly once per request_id, with what the platform holds read back from the sandbox
through its own API (not from the gateway)."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from itsm.v1 import common_pb2, ticket_service_pb2
from tests.rpc import field_violations, rpc_error

SN = common_pb2.PLATFORM_SERVICENOW
JIRA = common_pb2.PLATFORM_JIRA
INTERNAL = common_pb2.COMMENT_VISIBILITY_INTERNAL
PUBLIC = common_pb2.COMMENT_VISIBILITY_PUBLIC
NO_FAULTS = {"error_rate": 0, "latency_ms": 0, "drop_after_commit_rate": 0, "late_commit_rate": 0}


async def open_ticket(harness, platform: int, request_id: str, **fields: str) -> Any:
    fields.setdefault("summary", "Disk full on db-1")
    request = ticket_service_pb2.CreateTicketRequest(platform=platform, request_id=request_id, fields=fields)
    return (await harness.tickets.CreateTicket(request)).ticket


def update(ticket_id: str, request_id: str, **fields: str) -> ticket_service_pb2.UpdateTicketRequest:
    return ticket_service_pb2.UpdateTicketRequest(id=ticket_id, request_id=request_id, fields=fields)


def comment(ticket_id: str, request_id: str, body: str, visibility: int = 0):
    return ticket_service_pb2.AddCommentRequest(
        id=ticket_id, request_id=request_id, body=body, visibility=visibility
    )


def resolve(ticket_id: str, request_id: str, resolution: str = "", notes: str = ""):
    return ticket_service_pb2.ResolveTicketRequest(
        id=ticket_id, request_id=request_id, resolution=resolution, notes=notes
    )


def reopen(ticket_id: str, request_id: str, reason: str = ""):
    return ticket_service_pb2.ReopenTicketRequest(id=ticket_id, request_id=request_id, reason=reason)


async def incident(harness, sys_id: str) -> dict[str, Any]:
    return (await harness.platform_call("servicenow", "GET", f"/api/now/table/incident/{sys_id}"))["result"]


async def journal(harness, sys_id: str) -> list[tuple[str, str]]:
    """(element, value) of the incident's journal entries, oldest first."""
    query = f"element_id={sys_id}^ORDERBYsys_created_on"
    path = f"/api/now/table/sys_journal_field?sysparm_query={query}"
    rows = (await harness.platform_call("servicenow", "GET", path))["result"]
    return [(row["element"], row["value"]) for row in rows]


async def issue(harness, key: str) -> dict[str, Any]:
    return (await harness.platform_call("jira", "GET", f"/rest/api/2/issue/{key}"))["fields"]


async def comments(harness, key: str) -> list[dict[str, Any]]:
    return (await harness.platform_call("jira", "GET", f"/rest/api/2/issue/{key}/comment"))["comments"]


async def writes(harness, platform: str) -> int:
    """Requests that may change something on the platform (the sandbox counts all but GETs)."""
    return int((await harness.sandbox_get(platform, "/_sandbox/stats"))["writes"])


# -- ServiceNow ---------------------------------------------------------------------------------


async def test_servicenow_incident_updated_commented_resolved_reopened_and_resolved_again(harness) -> None:
    t = await open_ticket(harness, SN, "sn-life")
    assert t.status == common_pb2.TICKET_STATUS_OPEN

    updated = (await harness.tickets.UpdateTicket(update(t.id, "sn-u1", urgency="1", impact="2"))).ticket
    note = await harness.tickets.AddComment(comment(t.id, "sn-c1", "Disk at 97%"))
    public = await harness.tickets.AddComment(comment(t.id, "sn-c2", "We are on it", PUBLIC))
    resolved = (await harness.tickets.ResolveTicket(resolve(t.id, "sn-r1", notes="Cleaned /var"))).ticket
    record = await incident(harness, t.external_id)
    assert (record["urgency"], record["impact"]) == ("1", "2")
    assert (record["state"], record["close_code"], record["close_notes"]) == ("6", "Solution provided", "Cleaned /var")
    assert resolved.status == common_pb2.TICKET_STATUS_RESOLVED and resolved.resolution == "Solution provided"
    assert updated.id == t.id and note.comment_id and public.comment_id != note.comment_id

    reopened = (await harness.tickets.ReopenTicket(reopen(t.id, "sn-o1", "It is back"))).ticket
    assert (await incident(harness, t.external_id))["state"] == "2"
    assert reopened.status == common_pb2.TICKET_STATUS_IN_PROGRESS and reopened.resolution == ""
    again = (await harness.tickets.ResolveTicket(resolve(t.id, "sn-r2", "Workaround provided"))).ticket
    assert again.status == common_pb2.TICKET_STATUS_RESOLVED and again.resolution == "Workaround provided"

    entries = await journal(harness, t.external_id)
    assert [element for element, _ in entries] == ["work_notes", "comments", "work_notes"]
    assert entries[0][1].startswith("Disk at 97%") and entries[2][1].startswith("It is back")

    # Every request_id again: the same answers, nothing sent.
    sent = await writes(harness, "servicenow")
    assert (await harness.tickets.AddComment(comment(t.id, "sn-c1", "Disk at 97%"))).comment_id == note.comment_id
    await harness.tickets.UpdateTicket(update(t.id, "sn-u1", urgency="1", impact="2"))
    await harness.tickets.ResolveTicket(resolve(t.id, "sn-r1", notes="Cleaned /var"))
    await harness.tickets.ReopenTicket(reopen(t.id, "sn-o1", "It is back"))
    assert await writes(harness, "servicenow") == sent
    assert len(await journal(harness, t.external_id)) == 3
    assert (await incident(harness, t.external_id))["state"] == "6"


async def test_resolving_a_resolved_incident_and_reopening_an_open_one_send_nothing(harness) -> None:
    t = await open_ticket(harness, SN, "noop")
    sent = await writes(harness, "servicenow")
    still_open = (await harness.tickets.ReopenTicket(reopen(t.id, "noop-o"))).ticket
    assert still_open.status == common_pb2.TICKET_STATUS_OPEN
    assert await writes(harness, "servicenow") == sent  # a read of where the incident stands

    await harness.tickets.ResolveTicket(resolve(t.id, "noop-r1"))
    sent = await writes(harness, "servicenow")
    repeat = (await harness.tickets.ResolveTicket(resolve(t.id, "noop-r2", "Other"))).ticket
    assert repeat.resolution == "Solution provided"  # kept: the repeat changed nothing
    assert await writes(harness, "servicenow") == sent


async def test_a_closed_incident_cannot_be_reopened_and_its_key_opens_a_new_one(harness) -> None:
    first = (await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=SN, request_id="k1", fields={"summary": "db down"}, dedup_key="db-1/down"
        )
    ))
    await harness.tickets.ResolveTicket(resolve(first.ticket.id, "k1-r"))
    # A person closes it on the platform (Resolved -> Closed).
    path = f"/api/now/table/incident/{first.ticket.external_id}"
    await harness.platform_call("servicenow", "PATCH", path, {"state": "7"})

    error = await rpc_error(harness.tickets.ReopenTicket(reopen(first.ticket.id, "k1-o")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Closed" in error.details() or "closed" in error.details()
    assert (await incident(harness, first.ticket.external_id))["state"] == "7"

    second = await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=SN, request_id="k2", fields={"summary": "db down"}, dedup_key="db-1/down"
        )
    )
    assert second.outcome == common_pb2.CREATE_OUTCOME_CREATED
    assert second.ticket.id != first.ticket.id and await harness.records("servicenow") == 2


async def test_a_field_an_acl_drops_is_reported_and_not_stored(harness) -> None:
    t = await open_ticket(harness, SN, "acl")
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"dropped_fields": ["assignment_group"]})
    error = await rpc_error(
        harness.tickets.UpdateTicket(update(t.id, "acl-u", urgency="2", assignment_group="Network"))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "assignment_group" in error.details()
    record = await incident(harness, t.external_id)
    assert record["urgency"] == "2" and record.get("assignment_group", "") == ""


# -- Jira --------------------------------------------------------------------------------------


async def test_jira_issue_updated_commented_resolved_reopened_and_resolved_again(harness) -> None:
    t = await open_ticket(harness, JIRA, "j-life")
    await harness.tickets.UpdateTicket(update(t.id, "j-u1", summary="Disk very full", priority="High"))
    note = await harness.tickets.AddComment(comment(t.id, "j-c1", "first line\nsecond line"))
    resolved = (await harness.tickets.ResolveTicket(resolve(t.id, "j-r1", notes="Cleaned up"))).ticket
    fields = await issue(harness, t.external_key)
    assert fields["summary"] == "Disk very full" and fields["priority"]["name"] == "High"
    assert fields["status"]["statusCategory"]["key"] == "done" and fields["resolution"]["name"] == "Done"
    assert resolved.status == common_pb2.TICKET_STATUS_RESOLVED and resolved.resolution == "Done"

    reopened = (await harness.tickets.ReopenTicket(reopen(t.id, "j-o1", "It is back"))).ticket
    assert reopened.status != common_pb2.TICKET_STATUS_RESOLVED
    assert (await issue(harness, t.external_key))["resolution"] is None
    await harness.tickets.ResolveTicket(resolve(t.id, "j-r2"))

    bodies = [c["body"] for c in await comments(harness, t.external_key)]
    assert bodies[0] == "first line\nsecond line"
    assert "Cleaned up" in bodies and "It is back" in bodies
    assert next(c for c in await comments(harness, t.external_key))["id"] == note.comment_id

    sent = await writes(harness, "jira")
    await harness.tickets.AddComment(comment(t.id, "j-c1", "first line\nsecond line"))
    await harness.tickets.ReopenTicket(reopen(t.id, "j-o1", "It is back"))
    await harness.tickets.UpdateTicket(update(t.id, "j-u1", summary="Disk very full", priority="High"))
    assert await writes(harness, "jira") == sent
    assert len(await comments(harness, t.external_key)) == len(bodies)


async def test_wont_do_resolution_makes_the_ticket_cancelled(harness) -> None:
    t = await open_ticket(harness, JIRA, "wontdo")
    done = (await harness.tickets.ResolveTicket(resolve(t.id, "wontdo-r", "Won't Do"))).ticket
    assert done.status == common_pb2.TICKET_STATUS_CANCELLED and done.resolution == "Won't Do"


# -- refusals ----------------------------------------------------------------------------------


async def test_bad_updates_are_refused_with_violations_and_send_nothing(harness) -> None:
    t = await open_ticket(harness, JIRA, "bad-u")
    sent = await writes(harness, "jira")
    cases = {
        "project": update(t.id, "b1", project="OTHER"),
        "issue_type": update(t.id, "b2", issue_type="Bug"),
        "summary": update(t.id, "b3", summary=""),
        "no_such_field": update(t.id, "b4", no_such_field="x"),
        "fields": update(t.id, "b5"),
    }
    for field, request in cases.items():
        error = await rpc_error(harness.tickets.UpdateTicket(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.details())
        assert any(field in path for path in field_violations(error)), (field, field_violations(error))
    assert await writes(harness, "jira") == sent
    assert (await issue(harness, t.external_key))["summary"] == "Disk full on db-1"


async def test_journal_fields_are_refused_by_update_and_send_nothing(harness) -> None:
    """ServiceNow's work_notes and comments append to the journal: sending one again appends it
    again, so UpdateTicket refuses them (AddComment adds entries exactly once). Found by the fuzz
    drill: the client's own guard answered INTERNAL."""
    t = await open_ticket(harness, SN, "journal-u")
    sent = await writes(harness, "servicenow")
    for n, field in enumerate(("work_notes", "comments")):
        error = await rpc_error(harness.tickets.UpdateTicket(update(t.id, f"journal-{n}", **{field: "note"})))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert any(field in path for path in field_violations(error)), field_violations(error)
        assert "AddComment" in error.details(), error.details()
    assert await writes(harness, "servicenow") == sent


async def test_unknown_ticket_bad_id_and_bad_comment(harness) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    error = await rpc_error(harness.tickets.AddComment(comment(missing, "x1", "hello")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await rpc_error(harness.tickets.ResolveTicket(resolve("not-a-uuid", "x2")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    t = await open_ticket(harness, SN, "x")
    error = await rpc_error(harness.tickets.AddComment(comment(t.id, "x3", "")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "body" in field_violations(error)
    error = await rpc_error(harness.tickets.AddComment(comment(t.id, "x4", "y" * 1_000_000)))
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_a_request_id_names_one_operation_of_one_kind_on_one_ticket(harness) -> None:
    a = await open_ticket(harness, SN, "ns-a")
    b = await open_ticket(harness, SN, "ns-b")
    await harness.tickets.AddComment(comment(a.id, "ns-op", "hello"))
    for request in (
        harness.tickets.AddComment(comment(a.id, "ns-op", "a different body")),
        harness.tickets.AddComment(comment(b.id, "ns-op", "hello")),
        harness.tickets.ResolveTicket(resolve(a.id, "ns-op")),
        harness.tickets.UpdateTicket(update(a.id, "ns-a", urgency="1")),  # the create's id
    ):
        error = await rpc_error(request)
        # As for creates: a request_id already used for another operation is the caller's mistake.
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert "request_id 'ns-" in error.details()
    assert len(await journal(harness, a.external_id)) == 1
    assert len(await journal(harness, b.external_id)) == 0


# -- exactly once under failure ------------------------------------------------------------------


async def test_a_comment_cut_after_commit_is_found_by_its_marker_not_sent_again(harness) -> None:
    t = await open_ticket(harness, SN, "cut")
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"drop_after_commit_rate": 1.0})
    reply = await harness.tickets.AddComment(comment(t.id, "cut-c", "only once"))
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    entries = await journal(harness, t.external_id)
    assert len(entries) == 1 and entries[0][1].startswith("only once")
    assert reply.comment_id


async def test_a_late_jira_comment_is_found_not_sent_again(harness) -> None:
    """The comment lands 0.1 s after its 504, within the confirmation delay the harness sets (0.2 s):
    the look-up made after that delay finds it."""
    t = await open_ticket(harness, JIRA, "late")
    await harness.sandbox_put("jira", "/_sandbox/faults", {"late_commit_rate": 1.0, "late_commit_ms": 100})
    reply = await harness.tickets.AddComment(comment(t.id, "late-c", "only once"))
    await harness.sandbox_put("jira", "/_sandbox/faults", NO_FAULTS)
    found = await comments(harness, t.external_key)
    assert [c["body"] for c in found] == ["only once"] and found[0]["id"] == reply.comment_id


async def test_a_resolve_cut_after_commit_settles_resolved(harness) -> None:
    t = await open_ticket(harness, JIRA, "cut-r")
    await harness.sandbox_put("jira", "/_sandbox/faults", {"drop_after_commit_rate": 1.0})
    try:
        done = (await harness.tickets.ResolveTicket(resolve(t.id, "cut-r1"))).ticket
    finally:
        await harness.sandbox_put("jira", "/_sandbox/faults", NO_FAULTS)
    assert done.status == common_pb2.TICKET_STATUS_RESOLVED
    assert (await issue(harness, t.external_key))["status"]["statusCategory"]["key"] == "done"


# -- metrics ------------------------------------------------------------------------------------


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def test_operations_and_dedup_decisions_are_counted(harness) -> None:
    ops = "itsm_ticket_operations_total"
    ok = {"platform": "servicenow", "operation": "comment", "outcome": "succeeded"}
    invalid = {"platform": "servicenow", "operation": "comment", "outcome": "invalid"}
    replayed = {"platform": "servicenow", "operation": "comment", "outcome": "replayed"}
    attached = {"platform": "servicenow", "decision": "attached"}
    before = await harness.scrape()
    t = await open_ticket(harness, SN, "m")
    await harness.tickets.AddComment(comment(t.id, "m-c", "hello"))
    await harness.tickets.AddComment(comment(t.id, "m-c", "hello"))
    await rpc_error(harness.tickets.AddComment(comment(t.id, "m-bad", "")))
    request = ticket_service_pb2.CreateTicketRequest(
        platform=SN, request_id="m2", fields={"summary": "s"}, dedup_key="m-key"
    )
    await harness.tickets.CreateTicket(request)
    request.request_id = "m3"
    await harness.tickets.CreateTicket(request)
    after = await harness.scrape()
    for labels in (ok, invalid, replayed):
        assert sample(after, ops, labels) - sample(before, ops, labels) == 1, labels
    assert sample(after, "itsm_dedup_decisions_total", attached) - sample(
        before, "itsm_dedup_decisions_total", attached
    ) == 1
    count = "itsm_ticket_operation_duration_seconds_count"
    assert sample(after, count, ok) - sample(before, count, ok) == 1


async def test_resolving_settles_the_sla_at_once_and_reopening_clears_it(harness) -> None:
    t = await open_ticket(harness, SN, "sla", impact="1", urgency="1")
    resolved = (await harness.tickets.ResolveTicket(resolve(t.id, "sla-r"))).ticket
    assert resolved.sla.state == common_pb2.SLA_STATE_MET and resolved.sla.HasField("resolved_time")
    assert resolved.sla.HasField("acknowledged_time")  # resolving acknowledged it too
    reopened = (await harness.tickets.ReopenTicket(reopen(t.id, "sla-o"))).ticket
    assert reopened.sla.state == common_pb2.SLA_STATE_ON_TRACK and not reopened.sla.HasField("resolved_time")
    # The resolution clock keeps running from creation: the targets did not move.
    assert reopened.sla.resolution_due_time == t.sla.resolution_due_time
