"""SLA tracking: targets at creation, the background sync against the sandbox, breaches, leases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select, update

from itsm.v1 import common_pb2, ticket_service_pb2
from server.domain.records import CREATE, CREATED, OperationRecord, TicketRecord
from server.domain.sla import AT_RISK, BREACHED, MET, ON_TRACK, standing
from server.service.ports import NewTicket, SlaTargets
from server.storage.database import create_engine
from server.storage.operations import OperationStore
from server.storage.schema import tickets
from server.storage.tickets import TicketStore
from tests.gateway import running_gateway

SN = common_pb2.PLATFORM_SERVICENOW
JIRA = common_pb2.PLATFORM_JIRA


def breaches(platform: str, priority: str, kind: str) -> float:
    labels = {"platform": platform, "priority": priority, "kind": kind}
    return REGISTRY.get_sample_value("itsm_sla_breaches_total", labels) or 0.0


def open_tickets(platform: str, state: str) -> float:
    return REGISTRY.get_sample_value("itsm_open_tickets", {"platform": platform, "sla_state": state}) or 0.0


async def create_p1(harness, request_id: str) -> ticket_service_pb2.GetTicketResponse:
    return await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(
            platform=SN, request_id=request_id, fields={"summary": "down", "impact": "1", "urgency": "1"}
        )
    )


async def age(harness, ticket_id: str, minutes: float) -> None:
    """Moves a ticket's creation and due times into the past: its SLA clock has run this long. (The
    sync reads the database's clock, which a test cannot set.)"""
    shift = timedelta(minutes=minutes)
    engine = harness.gateway._store.engine
    async with engine.connect() as connection:
        row = (await connection.execute(select(tickets).where(tickets.c.id == ticket_id))).one()
    # Write-only transaction: on SQLite one that read first cannot wait for the write lock (it
    # fails at once with "database is locked" when a background sync is writing).
    async with engine.begin() as connection:
        await connection.execute(
            update(tickets)
            .where(tickets.c.id == ticket_id)
            .values(
                create_time=row.create_time - shift,
                response_due=row.response_due - shift,
                resolution_due=row.resolution_due - shift,
            )
        )


async def get(harness, ticket_id: str):
    return (await harness.tickets.GetTicket(ticket_service_pb2.GetTicketRequest(id=ticket_id))).ticket


async def test_a_new_ticket_gets_its_priority_targets(harness) -> None:
    ticket = (await create_p1(harness, "p1")).ticket
    sla = ticket.sla
    assert sla.priority == "1" and sla.state == common_pb2.SLA_STATE_ON_TRACK
    created = ticket.create_time.ToDatetime()
    assert sla.response_due_time.ToDatetime() - created == timedelta(minutes=15)
    assert sla.resolution_due_time.ToDatetime() - created == timedelta(hours=4)
    assert not sla.HasField("acknowledged_time") and not sla.HasField("resolved_time")

    jira = await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(platform=JIRA, request_id="j", fields={"summary": "s"})
    )
    assert jira.ticket.sla.priority == "Medium"  # the configured default priority


async def test_a_ticket_resolved_in_the_sandbox_shows_up_resolved_after_the_next_sync(harness) -> None:
    ticket = (await create_p1(harness, "resolve-me")).ticket
    client = harness.gateway._clients["servicenow"]
    await client.resolve(ticket.external_id, "Solution provided", "fixed the disk")
    before = open_tickets("servicenow", "met")

    assert await harness.gateway.sla_sync.run_once() == 1
    synced = await get(harness, ticket.id)
    assert synced.sla.state == common_pb2.SLA_STATE_MET
    assert synced.sla.HasField("resolved_time") and synced.sla.HasField("acknowledged_time")
    assert open_tickets("servicenow", "on_track") == 0 and open_tickets("servicenow", "met") == before
    assert synced.status == common_pb2.TICKET_STATUS_RESOLVED and synced.resolution == "Solution provided"

    # A resolved ticket is still watched for a while: a person may reopen it on the platform.
    await client.reopen(ticket.external_id)
    assert await harness.gateway.sla_sync.run_once() == 1
    reopened = await get(harness, ticket.id)
    assert reopened.status == common_pb2.TICKET_STATUS_IN_PROGRESS
    assert not reopened.sla.HasField("resolved_time") and reopened.resolution == ""


async def test_jira_in_progress_is_acknowledged_then_done_is_resolved(harness) -> None:
    reply = await harness.tickets.CreateTicket(
        ticket_service_pb2.CreateTicketRequest(platform=JIRA, request_id="flow", fields={"summary": "s"})
    )
    client = harness.gateway._clients["jira"]
    await client.transition(reply.ticket.external_key, "In Progress")
    await harness.gateway.sla_sync.run_once()
    working = await get(harness, reply.ticket.id)
    assert working.sla.HasField("acknowledged_time") and not working.sla.HasField("resolved_time")
    assert working.sla.state == common_pb2.SLA_STATE_ON_TRACK
    assert open_tickets("jira", "on_track") == 1

    await client.resolve(reply.ticket.external_key, "", "")
    await harness.gateway.sla_sync.run_once()
    done = await get(harness, reply.ticket.id)
    assert done.sla.state == common_pb2.SLA_STATE_MET and done.status == common_pb2.TICKET_STATUS_RESOLVED


async def test_at_risk_then_breached_counted_once_and_listed(harness) -> None:
    ticket = (await create_p1(harness, "late")).ticket

    await age(harness, ticket.id, 12)  # 80% of 15 min
    await harness.gateway.sla_sync.run_once()
    assert (await get(harness, ticket.id)).sla.state == common_pb2.SLA_STATE_AT_RISK

    before = breaches("servicenow", "1", "response")
    await age(harness, ticket.id, 4)
    await harness.gateway.sla_sync.run_once()
    assert (await get(harness, ticket.id)).sla.state == common_pb2.SLA_STATE_BREACHED
    assert breaches("servicenow", "1", "response") == before + 1
    await age(harness, ticket.id, 1)
    await harness.gateway.sla_sync.run_once()
    assert breaches("servicenow", "1", "response") == before + 1  # once per ticket and kind

    listed = await harness.tickets.ListTickets(
        ticket_service_pb2.ListTicketsRequest(sla_state=common_pb2.SLA_STATE_BREACHED)
    )
    assert [t.id for t in listed.tickets] == [ticket.id]
    on_track = await harness.tickets.ListTickets(
        ticket_service_pb2.ListTicketsRequest(sla_state=common_pb2.SLA_STATE_ON_TRACK)
    )
    assert list(on_track.tickets) == []


async def _created_tickets(url: str, count: int) -> None:
    engine = create_engine(url)
    ledger = OperationStore(engine)
    try:
        for i in range(count):
            ticket = TicketRecord(
                id=f"00000000-0000-4000-8000-{i:012d}",
                platform="jira",
                request_id=f"r{i}",
                external_id=str(10000 + i),
                state=CREATED,
            )
            operation = OperationRecord(request_id=f"r{i}", kind=CREATE, ticket_id=ticket.id, payload_hash="h")
            sla = SlaTargets("Medium", 900, 3600, ON_TRACK)
            await ledger.reserve(operation, NewTicket(ticket, sla), lease_seconds=60)
    finally:
        await engine.dispose()


async def test_gateways_sharing_a_database_never_claim_the_same_ticket(migrated_database_url: str) -> None:
    await _created_tickets(migrated_database_url, 30)
    store = TicketStore(create_engine(migrated_database_url))
    try:
        claims = await asyncio.gather(
            *(store.claim_open("jira", token=f"t{i}", lease_seconds=60, limit=10) for i in range(5))
        )
        ids = [r.id for claim, _ in claims for r in claim]
        assert len(ids) == len(set(ids)) == 30  # every ticket claimed, none twice
        assert (await store.claim_open("jira", token="late", lease_seconds=60, limit=10))[0] == []
    finally:
        await store.close()


async def test_hole10_a_sync_whose_claim_ran_out_records_and_counts_nothing(migrated_database_url: str) -> None:
    """Hole 10: the SLA sync's claim was not fenced: two replicas could poll the same ticket and
    count a breach twice. Now a sync whose claim another took over writes nothing, and a breach is
    recorded with a compare-and-set: one record and one count per ticket and kind."""

    def short_claims(raw: dict) -> None:
        raw["sla"]["lease_seconds"] = 0.3

    async with running_gateway(migrated_database_url, mutate=short_claims) as one:
        urls = one.sandbox.urls  # one platform behind both gateways
        async with running_gateway(migrated_database_url, mutate=short_claims, platform_urls=urls) as two:
            ticket = (await create_p1(one, "twice")).ticket
            await age(one, ticket.id, 16)  # response target missed
            before = breaches("servicenow", "1", "response")
            # The first sync claims the ticket and is stuck on a slow platform past its claim...
            # (The first has 0.7 s to claim before its claim runs out, so a loaded machine still
            # sees the order this test is about.)
            await one.sandbox_put("servicenow", "/_sandbox/faults", {"latency_ms": 2000})
            first = asyncio.ensure_future(one.gateway.sla_sync.run_once())
            await asyncio.sleep(1.0)
            # ...meanwhile the other gateway claims it anew (its platform answers at once).
            assert await two.gateway.sla_sync.run_once() == 1
            assert await first == 1
            assert breaches("servicenow", "1", "response") == before + 1
            stored = await get(one, ticket.id)
            assert stored.sla.state == common_pb2.SLA_STATE_BREACHED


def test_standing_rules() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    due = {"created": t0, "response_due": t0 + timedelta(minutes=10), "resolution_due": t0 + timedelta(hours=1)}

    def at(minutes: float, ack: float | None = None, res: float | None = None):
        return standing(
            **due,
            acknowledged_at=None if ack is None else t0 + timedelta(minutes=ack),
            resolved_at=None if res is None else t0 + timedelta(minutes=res),
            now=t0 + timedelta(minutes=minutes),
            at_risk_ratio=0.75,
        )

    assert at(1).state == ON_TRACK
    assert at(8).state == AT_RISK
    assert at(8, ack=5).state == ON_TRACK  # response met; resolution far away
    assert at(11).breaches == {"response"}
    assert at(11, ack=12).state == BREACHED  # met late is still a breach
    assert at(30, ack=5, res=20).state == MET
    assert at(90, ack=5).breaches == {"resolution"}
