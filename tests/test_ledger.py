"""The operations ledger on SQLite and PostgreSQL: one reservation per request_id, take-overs that
one caller wins, every change fenced by the holder's token, outcomes and ticket changes written
together, leases on the database's clock, and text any database can store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from server.domain.records import (
    CREATE,
    CREATED,
    FAILED,
    PENDING,
    SUCCEEDED,
    OperationRecord,
    TicketRecord,
)
from server.service.ports import KeyClaim, NewTicket, SlaTargets
from server.storage.database import create_engine
from server.storage.operations import OperationStore


@pytest.fixture
async def ledger(migrated_database_url: str) -> AsyncIterator[OperationStore]:
    engine = create_engine(migrated_database_url)
    yield OperationStore(engine)
    await engine.dispose()


def new(request_id: str, *, token: str = "t1", kind: str = CREATE) -> tuple[OperationRecord, NewTicket]:
    ticket = TicketRecord(
        id=str(uuid.uuid4()),
        platform="jira",
        request_id=request_id,
        fields={"summary": "disk full", "description": "caf\u00e9 \u2603"},
        marker="m-" + request_id,
        created_by="alice",
    )
    operation = OperationRecord(
        request_id=request_id,
        kind=kind,
        ticket_id=ticket.id,
        payload_hash="ab" * 32,
        payload={"fields": {"summary": "disk full"}},
        marker=ticket.marker,
        created_by="alice",
        lease_token=token,
    )
    return operation, NewTicket(ticket, SlaTargets("High", 3600, 28800, "ON_TRACK"))


async def reserved(ledger: OperationStore, request_id: str, lease: float = 60, token: str = "t1") -> OperationRecord:
    operation, ticket = new(request_id, token=token)
    stored, inserted = await ledger.reserve(operation, ticket, lease_seconds=lease)
    assert inserted
    return stored


async def test_reserve_stores_the_operation_and_its_ticket_together(ledger: OperationStore) -> None:
    operation, ticket = new("r1")
    stored, inserted = await ledger.reserve(operation, ticket, lease_seconds=60)
    assert inserted
    assert (stored.state, stored.lease_token, stored.payload, stored.marker) == (
        PENDING, "t1", {"fields": {"summary": "disk full"}}, "m-r1"
    )
    assert stored.observed_at is not None and stored.create_time is not None
    assert 59 < (stored.lease_until - stored.observed_at).total_seconds() <= 60
    assert not stored.lease_expired
    row = await ledger.ticket(operation.ticket_id)
    assert row is not None and (row.state, row.fields, row.created_by) == (PENDING, ticket.record.fields, "alice")
    # SLA due times are the database's now plus the targets, stamped in the same statement.
    assert (row.response_due - row.create_time).total_seconds() == pytest.approx(3600, abs=0.01)
    assert (row.priority, row.sla_state) == ("High", "ON_TRACK")


async def test_reserve_is_idempotent_and_concurrent_reserves_have_one_winner(ledger: OperationStore) -> None:
    attempts = [new("same", token=f"t{i}") for i in range(10)]
    results = await asyncio.gather(*(ledger.reserve(o, t, lease_seconds=60) for o, t in attempts))
    winners = [stored for stored, inserted in results if inserted]
    assert len(winners) == 1
    assert {stored.ticket_id for stored, _ in results} == {winners[0].ticket_id}
    # Only the winner's ticket exists: the losers' tickets were never written.
    assert sum([await ledger.ticket(t.record.id) is not None for _, t in attempts]) == 1


async def test_a_lease_is_the_databases_clock(ledger: OperationStore) -> None:
    live = await reserved(ledger, "live", lease=60)
    over = await reserved(ledger, "over", lease=-1)
    assert not live.lease_expired and over.lease_expired
    assert [o.request_id for o in await ledger.expired(10)] == ["over"]


async def test_take_over_claims_only_abandoned_or_retryable_work_and_one_caller_wins(
    ledger: OperationStore,
) -> None:
    await reserved(ledger, "live", lease=60)
    assert await ledger.take_over("live", token="t2", lease_seconds=60) is None

    abandoned = await reserved(ledger, "abandoned", lease=-1)
    winners = await asyncio.gather(
        *(ledger.take_over("abandoned", token=f"t{i}", lease_seconds=60) for i in range(8))
    )
    taken = [w for w in winners if w is not None]
    assert len(taken) == 1 and taken[0].lease_token != "t1"
    # Its earlier holder may have sent it: it became uncertain as of its lease's end.
    assert taken[0].uncertain_since == abandoned.lease_until

    await reserved(ledger, "refused")
    await ledger.fail("refused", token="t1", attempts=1, error="bad", error_kind="payload_rejected", ticket_changes={})
    assert await ledger.take_over("refused", token="t2", lease_seconds=60) is None  # permanent

    await reserved(ledger, "down")
    await ledger.fail("down", token="t1", attempts=3, error="503", error_kind="unavailable",
                      ticket_changes={"state": FAILED})
    retried = await ledger.take_over("down", token="t2", lease_seconds=60, ticket_changes={"state": PENDING})
    assert retried is not None and (retried.state, retried.uncertain_since) == (PENDING, None)
    assert (await ledger.ticket(retried.ticket_id)).state == PENDING

    await reserved(ledger, "done")
    await ledger.succeed("done", token="t1", attempts=1, result={}, ticket_changes={})
    assert await ledger.take_over("done", token="t2", lease_seconds=60) is None


async def test_every_change_is_fenced_by_the_holders_token(ledger: OperationStore) -> None:
    operation = await reserved(ledger, "fenced", lease=-1)
    assert await ledger.take_over("fenced", token="t2", lease_seconds=60) is not None
    # The first holder, taken over, can record nothing.
    assert await ledger.note_uncertain("fenced", token="t1", attempts=1, error="x", release=False) is None
    assert await ledger.succeed("fenced", token="t1", attempts=1, result={}, ticket_changes={"state": CREATED}) is None
    assert await ledger.fail("fenced", token="t1", attempts=1, error="x", error_kind="auth", ticket_changes={}) is None
    current = await ledger.get("fenced")
    assert current is not None and (current.state, current.lease_token) == (PENDING, "t2")
    assert (await ledger.ticket(operation.ticket_id)).state == PENDING


async def test_success_and_the_tickets_change_land_together(ledger: OperationStore) -> None:
    operation = await reserved(ledger, "ok")
    ticket = await ledger.succeed(
        "ok", token="t1", attempts=2, result={"comment_id": "7"},
        ticket_changes={"state": CREATED, "external_id": "10001", "external_key": "OPS-1"},
    )
    assert ticket is not None and (ticket.state, ticket.external_key) == (CREATED, "OPS-1")
    stored = await ledger.get("ok")
    assert stored is not None
    assert (stored.state, stored.attempts, stored.result, stored.lease_token, stored.lease_until) == (
        SUCCEEDED, 2, {"comment_id": "7"}, "", None
    )
    assert ticket.id == operation.ticket_id


async def test_uncertainty_is_marked_when_something_went_out(ledger: OperationStore) -> None:
    await reserved(ledger, "maybe")
    first = await ledger.note_uncertain("maybe", token="t1", attempts=1, error="cut", release=False)
    assert first is not None and first.uncertain_since is not None and not first.lease_expired
    await asyncio.sleep(0.05)
    # A holder that only waited (and gives up) keeps the earlier mark: the look-up is not pushed back.
    kept = await ledger.note_uncertain("maybe", token="t1", attempts=1, error="gave up", release=True, sent=False)
    assert kept is not None and kept.uncertain_since == first.uncertain_since and kept.lease_expired
    assert (kept.last_error, kept.state) == ("gave up", PENDING)


async def test_over_long_values_are_refused_and_control_characters_stored_safely(ledger: OperationStore) -> None:
    operation, ticket = new("x" * 256)
    with pytest.raises(ValueError, match="request_id"):
        await ledger.reserve(operation, ticket, lease_seconds=60)
    await reserved(ledger, "nul")
    await ledger.fail("nul", token="t1", attempts=1, error="platform said a\x00b\x1bc\td",
                      error_kind="unavailable", ticket_changes={"last_error": "e\x00"})
    stored = await ledger.get("nul")
    assert stored is not None and stored.last_error == "platform said a\ufffdb\ufffdc\td"
    assert (await ledger.ticket(stored.ticket_id)).last_error == "e\ufffd"


@pytest.mark.parametrize("database_backend", ["postgres"], indirect=True)
async def test_an_attach_repeated_while_another_gateway_settles_it_does_not_deadlock(
    ledger: OperationStore, migrated_database_url: str
) -> None:
    """Found by the replica drill (scripts/drill_replica.py): the same dedup create sent to two
    gateways. One settles it (its operation's row, then its ticket's) while the other reserves it
    again: that reservation claimed the ticket first, then inserted the operation, so each waited on
    the other and PostgreSQL broke the deadlock with an error (INTERNAL to the caller). The
    reservation now writes its operation's row first, like every other transaction."""
    from sqlalchemy import text

    holder_op, fresh = new("holder")
    holder = NewTicket(replace(fresh.record, dedup_key="k", open_key="k"), fresh.sla)
    await ledger.reserve(holder_op, holder, lease_seconds=60)
    await ledger.succeed("holder", token="t1", attempts=1, result={}, ticket_changes={"state": CREATED})
    ticket_id = holder.record.id

    attach = OperationRecord(
        request_id="attach", kind=CREATE, ticket_id=ticket_id, payload_hash="cd" * 32,
        payload={"decision": "attach"}, marker="m-attach", created_by="alice", lease_token="t1",
    )
    claim = KeyClaim(ticket_id, "k", reopen=False, comment_hash="h1")
    stored, inserted = await ledger.reserve(attach, None, lease_seconds=60, claim=claim)
    assert inserted and stored.payload == {"decision": "attach", "comment": True}

    settler = create_engine(migrated_database_url)
    try:
        async with settler.connect() as connection:
            transaction = await connection.begin()
            # The first gateway settles "attach": its operation's row...
            await connection.execute(
                text("UPDATE operations SET update_time = now() WHERE request_id = 'attach'")
            )
            # ...while the repeat on the other gateway reserves it again (another attach changed the
            # ticket's last comment meanwhile, so its claim would write the ticket).
            again = asyncio.ensure_future(ledger.reserve(
                replace(attach, lease_token="t2"), None, lease_seconds=60,
                claim=KeyClaim(ticket_id, "k", reopen=False, comment_hash="h2"),
            ))
            await asyncio.sleep(0.5)
            # ...then its ticket's row, which the old order had the repeat hold: deadlock.
            await asyncio.wait_for(
                connection.execute(text("UPDATE tickets SET update_time = now() WHERE id = :id"), {"id": ticket_id}),
                timeout=10,
            )
            await transaction.commit()
        existing, reserved_again = await asyncio.wait_for(again, timeout=10)
        assert not reserved_again and existing.lease_token == "t1"
        # The repeat wrote nothing: the ticket's last comment is still the first attach's.
        async with settler.connect() as connection:
            row = (await connection.execute(
                text("SELECT last_comment_hash FROM tickets WHERE id = :id"), {"id": ticket_id}
            )).first()
        assert row is not None and row[0] == "h1"
    finally:
        await settler.dispose()
