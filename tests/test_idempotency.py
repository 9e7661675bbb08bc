"""Exactly-once creation under failure: outages, ambiguous outcomes, deadlines, crashes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc

from itsm.v1 import common_pb2, ticket_service_pb2
from sandbox import SandboxConfig
from sandbox.jira import JiraSandboxAuth
from server.storage.tickets import TicketRecord
from tests.gateway import running_gateway
from tests.rpc import field_violations, rpc_error

SN = common_pb2.PLATFORM_SERVICENOW
JIRA = common_pb2.PLATFORM_JIRA
NO_FAULTS = {"error_rate": 0, "latency_ms": 0, "drop_after_commit_rate": 0}


def create(platform: int, request_id: str, **fields: str) -> ticket_service_pb2.CreateTicketRequest:
    return ticket_service_pb2.CreateTicketRequest(platform=platform, request_id=request_id, fields=fields)


async def test_platform_down_through_the_budget_then_retried_by_the_same_request_id(harness) -> None:
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"error_rate": 1.0, "statuses": [503]})
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "outage", summary="s")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "12 attempts" in error.details()
    listed = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(request_id="outage"))
    assert listed.tickets[0].state == common_pb2.TICKET_STATE_FAILED
    assert "503" in listed.tickets[0].last_error

    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    retried = await harness.tickets.CreateTicket(create(SN, "outage", summary="s"))
    assert retried.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert retried.ticket.id == listed.tickets[0].id
    assert retried.ticket.attempts == 13  # 12 failed + 1, recorded across both calls
    assert retried.ticket.last_error == ""
    assert await harness.records("servicenow") == 1


async def test_dropped_connection_after_commit_adopts_the_ticket(harness) -> None:
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"drop_after_commit_rate": 1.0})
    await harness.sandbox_put("jira", "/_sandbox/faults", {"drop_after_commit_rate": 1.0})
    sn = await harness.tickets.CreateTicket(create(SN, "drop-sn", summary="s"))
    jira = await harness.tickets.CreateTicket(create(JIRA, "drop-j", summary="s"))
    assert sn.ticket.state == jira.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert sn.ticket.external_key.startswith("INC") and jira.ticket.external_key == "OPS-1"
    assert await harness.records("servicenow") == 1
    assert await harness.records("jira") == 1


async def test_flaky_platform_with_many_identical_callers_creates_one_ticket(harness) -> None:
    await harness.sandbox_put(
        "jira", "/_sandbox/faults", {"error_rate": 0.3, "statuses": [503, 429], "drop_after_commit_rate": 0.3}
    )
    requests = [create(JIRA, f"flaky-{i % 10}", summary=f"s{i % 10}") for i in range(50)]
    replies = await asyncio.gather(*(harness.tickets.CreateTicket(r) for r in requests))
    assert len({r.ticket.id for r in replies}) == 10
    assert await harness.records("jira") == 10


async def test_platform_rejection_comes_back_with_canonical_fields(harness) -> None:
    error = await rpc_error(harness.tickets.CreateTicket(create(JIRA, "rej", summary="s", project="NOPE")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "project" in field_violations(error)
    again = await rpc_error(harness.tickets.CreateTicket(create(JIRA, "rej", summary="s", project="NOPE")))
    assert again.code() == grpc.StatusCode.INVALID_ARGUMENT  # a permanent failure replays
    assert await harness.records("jira") == 0


async def test_rejected_credentials_are_a_failed_precondition(migrated_database_url: str) -> None:
    sandbox = SandboxConfig.on_free_ports(auth={"jira": JiraSandboxAuth(token="another-token")})
    async with running_gateway(migrated_database_url, sandbox_config=sandbox) as h:
        error = await rpc_error(h.tickets.CreateTicket(create(JIRA, "creds", summary="s")))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "401" in error.details()
        assert "dev-token" not in error.details()
        replay = await rpc_error(h.tickets.CreateTicket(create(JIRA, "creds", summary="s")))
        assert replay.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "stored outcome" in replay.details()


async def test_callers_deadline_then_a_repeat_finds_the_ticket(harness) -> None:
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"latency_ms": 1500})
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "slow", summary="s"), timeout=0.7))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(1.5)  # the slow request lands on the platform meanwhile
    await harness.sandbox_put("servicenow", "/_sandbox/faults", NO_FAULTS)
    again = await harness.tickets.CreateTicket(create(SN, "slow", summary="s"))
    assert again.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert await harness.records("servicenow") == 1


async def test_an_immediate_repeat_after_a_deadline_never_sends_twice(harness) -> None:
    """The platform may still be working on the request the deadline cut: the ticket stays
    PENDING until the lease runs out, then the repeat looks the marker up before anything else."""
    await harness.sandbox_put("servicenow", "/_sandbox/faults", {"latency_ms": 1500})
    error = await rpc_error(harness.tickets.CreateTicket(create(SN, "cut-short", summary="s"), timeout=0.7))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    pending = await harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(request_id="cut-short"))
    assert pending.tickets[0].state == common_pb2.TICKET_STATE_PENDING
    again = await harness.tickets.CreateTicket(create(SN, "cut-short", summary="s"))  # no sleep
    assert again.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert await harness.records("servicenow") == 1


async def test_a_cancelled_call_then_a_repeat_creates_one_ticket(harness) -> None:
    await harness.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 1000})
    call = harness.tickets.CreateTicket(create(JIRA, "cancelled", summary="s"))
    await asyncio.sleep(0.4)
    call.cancel()
    await harness.sandbox_put("jira", "/_sandbox/faults", NO_FAULTS)
    again = await harness.tickets.CreateTicket(create(JIRA, "cancelled", summary="s"))
    assert again.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert await harness.records("jira") == 1


async def test_nan_variables_and_control_characters_are_invalid(harness) -> None:
    from google.protobuf import struct_pb2

    variables = struct_pb2.Struct()
    variables["title"] = float("nan")
    nan = await rpc_error(
        harness.tickets.CreateTicketFromTemplate(
            ticket_service_pb2.CreateTicketFromTemplateRequest(
                template_name="jira_ops_task", request_id="nan", variables=variables
            )
        )
    )
    assert nan.code() == grpc.StatusCode.INVALID_ARGUMENT
    nul = await rpc_error(harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(platform=SN, request_id="nul", job_id="a\x00b", fields={"summary": "s"})
    ))
    assert nul.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await rpc_error(harness.tickets.ListTickets(ticket_service_pb2.ListTicketsRequest(job_id="a\x00b")))
    assert listed.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_repeat_while_the_first_call_is_in_flight_waits_for_it(harness) -> None:
    await harness.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 800})
    first = asyncio.ensure_future(harness.tickets.CreateTicket(create(JIRA, "inflight", summary="s")))
    await asyncio.sleep(0.3)
    second = await harness.tickets.CreateTicket(create(JIRA, "inflight", summary="s"))
    assert second.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert second.ticket.id == (await first).ticket.id
    assert await harness.records("jira") == 1


async def test_a_short_deadline_repeat_gets_the_pending_ticket(harness) -> None:
    await harness.sandbox_put("jira", "/_sandbox/faults", {"latency_ms": 1200})
    first = asyncio.ensure_future(harness.tickets.CreateTicket(create(JIRA, "pending", summary="s")))
    await asyncio.sleep(0.3)
    second = await harness.tickets.CreateTicket(create(JIRA, "pending", summary="s"), timeout=0.4)
    assert second.ticket.state == common_pb2.TICKET_STATE_PENDING
    assert (await first).ticket.state == common_pb2.TICKET_STATE_CREATED
    assert await harness.records("jira") == 1


async def _stale_pending(harness, request_id: str) -> TicketRecord:
    """A ticket as a crashed gateway leaves it: reserved, lease already expired."""
    pipeline = harness.gateway.pipeline
    past = datetime.now(UTC) - timedelta(minutes=10)
    record = TicketRecord.new(
        platform="servicenow",
        request_id=request_id,
        fields={"summary": "left behind", "impact": "3", "urgency": "3", "contact_type": "monitoring"},
        payload_hash="h",
        now=past,
        lease_until=past + timedelta(seconds=1),
    )
    from dataclasses import replace

    record = replace(record, marker=f"itsmgw-{record.id}")
    stored, reserved = await pipeline.store.reserve(record)
    assert reserved
    return stored


async def test_reconciler_sends_a_ticket_a_crash_left_pending(harness) -> None:
    stale = await _stale_pending(harness, "crashed-before-send")
    assert await harness.gateway.pipeline.reconcile_once() == 1
    got = await harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id=stale.id))
    assert got.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert await harness.records("servicenow") == 1


async def test_reconciler_adopts_a_ticket_a_crash_left_pending_after_sending(harness) -> None:
    stale = await _stale_pending(harness, "crashed-after-send")
    client = harness.gateway.pipeline.clients["servicenow"]
    sent = await client.create({"short_description": "left behind"}, stale.marker)
    assert await harness.gateway.pipeline.reconcile_once() == 1
    got = await harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id=stale.id))
    assert got.ticket.state == common_pb2.TICKET_STATE_CREATED
    assert got.ticket.external_id == sent.external_id
    assert await harness.records("servicenow") == 1
    assert await harness.gateway.pipeline.reconcile_once() == 0
