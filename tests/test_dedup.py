"""One open ticket per dedup key, end to end over gRPC against the sandbox: created, attached (one
comment), reopened within the window, created again after Closed; and 50 concurrent creates spread
over two gateway processes on one PostgreSQL making exactly one ticket."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc
from sandbox import SandboxConfig, registered, start_sandbox
from server.domain.records import FAILED, PENDING
from server.service.engine import DecideAfresh, Request
from tests.gateway import running_gateway
from tests.processes import config_on, serve_on, stop, wait_serving_async
from tests.rpc import field_violations, rpc_error
from tests.test_lifecycle import NO_FAULTS, comments, incident, journal, resolve

SN = common_pb2.PLATFORM_SERVICENOW
JIRA = common_pb2.PLATFORM_JIRA
CREATED = common_pb2.CREATE_OUTCOME_CREATED
ATTACHED = common_pb2.CREATE_OUTCOME_ATTACHED
REOPENED = common_pb2.CREATE_OUTCOME_REOPENED
REPLAYED = common_pb2.CREATE_OUTCOME_REPLAYED


def create(platform: int, request_id: str, key: str, **fields: str) -> ticket_service_pb2.CreateTicketRequest:
    fields.setdefault("summary", "db-1 disk full")
    return ticket_service_pb2.CreateTicketRequest(
        platform=platform, request_id=request_id, fields=fields, dedup_key=key
    )


def listed(**filters: Any) -> ticket_service_pb2.ListTicketsRequest:
    return ticket_service_pb2.ListTicketsRequest(**filters)


async def test_created_attached_resolved_then_reopened_servicenow(harness) -> None:
    first = await harness.tickets.CreateTicket(create(SN, "a1", "db-1/disk"))
    second = await harness.tickets.CreateTicket(create(SN, "a2", "db-1/disk", description="97% now"))
    third = await harness.tickets.CreateTicket(create(SN, "a3", "db-1/disk", description="97% now"))
    assert [r.outcome for r in (first, second, third)] == [CREATED, ATTACHED, ATTACHED]
    assert first.ticket.id == second.ticket.id == third.ticket.id
    assert first.ticket.dedup_key == "db-1/disk"
    assert await harness.records("servicenow") == 1
    entries = await journal(harness, first.ticket.external_id)
    # The second create's text became one internal note; the third, identical, added none.
    assert len(entries) == 1 and entries[0][0] == "work_notes" and "97% now" in entries[0][1]
    record = await incident(harness, first.ticket.external_id)
    assert record["correlation_display"] == "db-1/disk"  # where a person sees why

    await harness.tickets.ResolveTicket(resolve(first.ticket.id, "a-r"))
    fourth = await harness.tickets.CreateTicket(create(SN, "a4", "db-1/disk"))
    assert fourth.outcome == REOPENED and fourth.ticket.id == first.ticket.id
    assert fourth.ticket.status == common_pb2.TICKET_STATUS_IN_PROGRESS
    assert (await incident(harness, first.ticket.external_id))["state"] == "2"
    assert len(await journal(harness, first.ticket.external_id)) == 2  # the reopening's note

    replay = await harness.tickets.CreateTicket(create(SN, "a1", "db-1/disk"))
    assert replay.outcome == REPLAYED and replay.ticket.id == first.ticket.id
    assert await harness.records("servicenow") == 1


async def test_jira_attach_and_label_and_list_filters(harness) -> None:
    first = await harness.tickets.CreateTicket(create(JIRA, "j1", "checkout 5xx"))
    other = await harness.tickets.CreateTicket(create(JIRA, "j2", "other key"))
    again = await harness.tickets.CreateTicket(create(JIRA, "j3", "checkout 5xx", summary="5xx again"))
    assert (first.outcome, other.outcome, again.outcome) == (CREATED, CREATED, ATTACHED)
    issue = await harness.platform_call("jira", "GET", f"/rest/api/2/issue/{first.ticket.external_key}")
    assert "itsm-dedup-checkout_5xx" in issue["fields"]["labels"]
    assert [c["body"] for c in await comments(harness, first.ticket.external_key)] == ["5xx again"]

    by_key = await harness.tickets.ListTickets(listed(dedup_key="checkout 5xx"))
    assert [t.id for t in by_key.tickets] == [first.ticket.id]
    await harness.tickets.ResolveTicket(resolve(other.ticket.id, "j2-r"))
    open_ones = await harness.tickets.ListTickets(listed(open_only=True, platform=JIRA))
    assert [t.id for t in open_ones.tickets] == [first.ticket.id]
    done = await harness.tickets.ListTickets(listed(status=common_pb2.TICKET_STATUS_RESOLVED))
    assert [t.id for t in done.tickets] == [other.ticket.id]


async def test_a_higher_priority_repeat_raises_the_open_ticket(harness) -> None:
    first = await harness.tickets.CreateTicket(create(JIRA, "p1", "latency", priority="Low"))
    await harness.tickets.CreateTicket(create(JIRA, "p2", "latency", priority="Highest"))
    await harness.tickets.CreateTicket(create(JIRA, "p3", "latency", priority="Medium"))  # lower: kept
    issue = await harness.platform_call("jira", "GET", f"/rest/api/2/issue/{first.ticket.external_key}")
    assert issue["fields"]["priority"]["name"] == "Highest"


async def test_a_ticket_a_person_resolved_since_the_last_sync_is_reopened_not_attached(harness) -> None:
    first = await harness.tickets.CreateTicket(create(SN, "h1", "h"))
    path = f"/api/now/table/incident/{first.ticket.external_id}"
    body = {"state": "6", "close_code": "Solution provided", "close_notes": "by hand"}
    await harness.platform_call("servicenow", "PATCH", path, body)
    second = await harness.tickets.CreateTicket(create(SN, "h2", "h"))
    assert second.outcome == REOPENED and second.ticket.id == first.ticket.id
    assert (await incident(harness, first.ticket.external_id))["state"] == "2"


async def test_key_validation_and_fingerprint(harness) -> None:
    for key in ("x" * 256, "tab\there", "nul\x00"):
        error = await rpc_error(harness.tickets.CreateTicket(create(SN, "bad", key)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "dedup_key" in field_violations(error)
    await harness.tickets.CreateTicket(create(SN, "fp", "k1"))
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "fp", "k2")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # the key is part of the payload
    assert await harness.records("servicenow") == 1


async def test_template_create_with_a_key_attaches(harness) -> None:
    variables = {"service": {"name": "checkout"}, "alert": {"host": "web-1", "summary": "5xx"}}
    outcomes = []
    for i in range(2):
        request = ticket_service_pb2.CreateTicketFromTemplateRequest(
            template_name="servicenow_service_outage", request_id=f"tpl-{i}", dedup_key="checkout-down"
        )
        request.variables.update(variables)
        outcomes.append((await harness.tickets.CreateTicketFromTemplate(request)).outcome)
    assert outcomes == [CREATED, ATTACHED]
    assert await harness.records("servicenow") == 1


async def test_a_create_that_failed_gives_its_key_up(harness) -> None:
    down = {"error_rate": 1.0, "statuses": [503], "retry_after_seconds": 0}
    await harness.sandbox_put("servicenow", "/_sandbox/faults", down)
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "f1", "down")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    other = await harness.tickets.CreateTicket(create(SN, "f2", "down"))
    assert other.outcome == CREATED
    retried = await harness.tickets.CreateTicket(create(SN, "f1", "down"))
    assert retried.outcome == ATTACHED and retried.ticket.id == other.ticket.id
    assert await harness.records("servicenow") == 1


async def test_a_platform_down_while_the_key_is_checked_is_unavailable(harness) -> None:
    first = await harness.tickets.CreateTicket(create(SN, "d1", "disk"))
    down = {"error_rate": 1.0, "statuses": [503], "retry_after_seconds": 0}
    await harness.sandbox_put("servicenow", "/_sandbox/faults", down)
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "d2", "disk")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # the holder's status could not be read
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    again = await harness.tickets.CreateTicket(create(SN, "d2", "disk"))
    assert again.outcome == ATTACHED and again.ticket.id == first.ticket.id


async def test_reopen_window_zero_never_reopens(migrated_database_url: str) -> None:
    def never(raw: dict[str, Any]) -> None:
        raw["platforms"]["servicenow"]["dedup"] = {"reopen_window_seconds": 0}

    async with running_gateway(migrated_database_url, mutate=never) as harness:
        first = await harness.tickets.CreateTicket(create(SN, "w1", "w"))
        await harness.tickets.ResolveTicket(resolve(first.ticket.id, "w-r"))
        second = await harness.tickets.CreateTicket(create(SN, "w2", "w"))
        assert second.outcome == CREATED and second.ticket.id != first.ticket.id


async def test_fifty_concurrent_creates_in_one_gateway_make_one_ticket(harness) -> None:
    replies = await asyncio.gather(
        *(harness.tickets.CreateTicket(create(SN, f"c{i}", "storm", description="same")) for i in range(50))
    )
    outcomes = sorted(r.outcome for r in replies)
    assert outcomes.count(CREATED) == 1 and outcomes.count(ATTACHED) == 49
    assert len({r.ticket.id for r in replies}) == 1
    assert await harness.records("servicenow") == 1
    assert len(await journal(harness, replies[0].ticket.external_id)) == 1


@pytest.mark.parametrize("database_backend", ["postgres"], indirect=True)
async def test_fifty_concurrent_creates_over_two_processes_make_one_ticket_and_one_comment(
    migrated_database_url: str, tmp_path: Path
) -> None:
    """The unique index over open keys decides, not a search: two gateway processes on one
    PostgreSQL, 50 identical creates with one key and 50 request_ids, sent all at once."""
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    processes = []
    try:
        config, env = config_on(sandbox.urls, tmp_path)
        ports = []
        for _ in range(2):
            port, process = serve_on(config, env, migrated_database_url, tmp_path)
            ports.append(port)
            processes.append(process)
        await asyncio.gather(*(wait_serving_async(p, proc) for p, proc in zip(ports, processes, strict=True)))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[0]}") as a, \
                grpc.aio.insecure_channel(f"127.0.0.1:{ports[1]}") as b:
            stubs = [ticket_service_pb2_grpc.TicketServiceStub(c) for c in (a, b)]
            replies = await asyncio.gather(*(
                stubs[i % 2].CreateTicket(create(SN, f"r{i}", "two-processes", description="same"), timeout=60)
                for i in range(50)
            ))
        outcomes = [r.outcome for r in replies]
        assert outcomes.count(CREATED) == 1 and outcomes.count(ATTACHED) == 49, outcomes
        assert len({r.ticket.id for r in replies}) == 1
        base = sandbox.url("servicenow")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/_sandbox/stats") as response:
                assert (await response.json())["records"] == 1
        entries = await _journal(sandbox, replies[0].ticket.external_id)
        assert len(entries) == 1, entries
    finally:
        for process in processes:
            code, err = stop(process)
            assert code == 0, err[-2000:]
        await sandbox.stop()


async def _journal(sandbox: Any, sys_id: str) -> list[Any]:
    user, secret = registered()["servicenow"].credentials
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}
    url = f"{sandbox.url('servicenow')}/api/now/table/sys_journal_field?sysparm_query=element_id={sys_id}"
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as r:
        return (await r.json())["result"]


async def test_a_waiter_creates_when_the_keys_first_create_fails_for_good(harness) -> None:
    """The first create with the key is refused by the platform (a component the project does not
    have: only Jira knows) while a second waits for it: the second opens the ticket itself."""
    await harness.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 600})
    first = asyncio.ensure_future(harness.tickets.CreateTicket(create(JIRA, "f1", "flaky", components="Nope")))
    await asyncio.sleep(0.3)  # the first holds the key, its create in flight
    second = await harness.tickets.CreateTicket(create(JIRA, "f2", "flaky", priority="High"))
    error = await rpc_error(first)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "components" in field_violations(error)
    assert second.outcome == CREATED and second.ticket.dedup_key == "flaky"
    assert await harness.records("jira") == 1
    stats = await harness.sandbox_get("jira", "/_sandbox/stats")
    assert stats["writes"] == 2  # the refused create reached Jira: the second really waited for it


async def test_a_platform_that_cannot_say_where_the_ticket_stands_is_unavailable_and_changes_nothing(
    harness,
) -> None:
    first = await harness.tickets.CreateTicket(create(SN, "d1", "down"))
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"error_rate": 1.0, "statuses": [503]})
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "d2", "down")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"error_rate": 0})
    again = await harness.tickets.CreateTicket(create(SN, "d2", "down"))  # decides afresh: attaches
    assert again.outcome == ATTACHED and again.ticket.id == first.ticket.id


async def test_a_sync_round_over_several_tickets_records_a_person_resolving_one(harness) -> None:
    """One sync round writes a batch of tickets in one statement (executemany): a ticket a person
    resolved on the platform gives its key up, the others keep theirs."""
    tickets = [(await harness.tickets.CreateTicket(create(SN, f"s{i}", f"key-{i}"))).ticket for i in range(3)]
    path = f"/api/now/table/incident/{tickets[1].external_id}"
    await harness.platform_call(
        "servicenow", "PATCH", path, {"state": "6", "close_code": "Solution provided", "close_notes": "x"}
    )
    assert await harness.gateway.sla_sync.run_once() == 3
    still_open = await harness.tickets.ListTickets(listed(open_only=True))
    assert sorted(t.id for t in still_open.tickets) == sorted([tickets[0].id, tickets[2].id])
    again = await harness.tickets.CreateTicket(create(SN, "s-again", "key-1"))
    assert again.outcome == REOPENED and again.ticket.id == tickets[1].id



async def test_the_reconciler_never_retries_a_create_that_failed_since_it_listed_it(harness) -> None:
    """The reconciler lists an abandoned dedup create; before it takes it over, a repeat takes it,
    fails and gives the key up. The reconciler must leave it (only a repeat retries a failure, and a
    dedup create's repeat decides afresh): it retried it, opening a ticket that held no key, and the
    key's next create opened a second one (found by the replica drill)."""
    down = {"error_rate": 1.0, "statuses": [503], "retry_after_seconds": 0}
    await harness.sandbox_put("servicenow", "/_sandbox/faults", down)
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "stale-1", "stale")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    failed = await harness.gateway.engine._ledger.get("stale-1")
    assert failed is not None and failed.state == FAILED
    as_listed = replace(failed, state=PENDING)  # what the reconciler's list said a moment earlier
    kind = harness.gateway.reconciler._kinds[failed.kind]
    assert await harness.gateway.engine.settle(as_listed, kind) is None
    assert await harness.records("servicenow") == 0
    second = await harness.tickets.CreateTicket(create(SN, "stale-2", "stale"))
    again = await harness.tickets.CreateTicket(create(SN, "stale-1", "stale"))
    assert second.outcome == CREATED
    assert again.outcome == ATTACHED and again.ticket.id == second.ticket.id
    assert await harness.records("servicenow") == 1



async def test_a_repeat_that_was_following_a_create_that_failed_decides_afresh(harness) -> None:
    """A repeat that waited for the holder of its request_id (it saw it PENDING) and then sees it
    FAILED: for a dedup create, which gave its key up when it failed, the engine must not retry it
    as it stands (that opens a ticket that holds no key) but hand it back to be decided afresh."""
    down = {"error_rate": 1.0, "statuses": [503], "retry_after_seconds": 0}
    await harness.sandbox_put("servicenow", "/_sandbox/faults", down)
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "follow-1", "follow")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    engine = harness.gateway.engine
    failed = await engine._ledger.get("follow-1")
    assert failed is not None and failed.state == FAILED
    kind = harness.gateway.reconciler._kinds[failed.kind]
    with pytest.raises(DecideAfresh):
        await engine._follow(failed, Request(failed, kind, None, None))  # where the waiting repeat is
    assert await harness.records("servicenow") == 0
    again = await harness.tickets.CreateTicket(create(SN, "follow-1", "follow"))
    assert again.outcome == CREATED and again.ticket.dedup_key == "follow"
    assert await harness.records("servicenow") == 1
