"""TicketStore on SQLite and PostgreSQL, and the engine factory in server/database.py."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from server.domain.records import (
    CREATED,
    FAILED,
    PENDING,
    PERMANENT,
    TRANSIENT,
    TicketRecord,
)
from server.service.ports import InvalidPageToken, SlaUpdate, TicketFilter
from server.storage.database import (
    DEFAULT_DATABASE_URL,
    DatabaseUnavailable,
    UnsupportedDatabaseUrl,
    check_connection,
    create_engine,
)
from server.storage.page_tokens import Cursor, decode_page_token, encode_page_token
from server.storage.schema import tickets
from server.storage.tickets import TicketStore

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
LEASE = timedelta(seconds=120)


def new_record(request_id: str, *, now: datetime = NOW, **fields: str) -> TicketRecord:
    return TicketRecord.new(
        platform=fields.pop("platform", "servicenow"),
        request_id=request_id,
        now=now,
        lease_until=now + LEASE,
        job_id=fields.pop("job_id", "job-1"),
        template_name=fields.pop("template_name", ""),
        fields=fields or {"summary": "disk full", "description": "caf\u00e9 \u2603"},
        payload_hash="ab" * 32,
        marker=f"itsm-{request_id}",
        created_by="alice",
    )


async def reserve(store: TicketStore, request_id: str, *, now: datetime = NOW, **fields: str) -> TicketRecord:
    record, inserted = await store.reserve(new_record(request_id, now=now, **fields))
    assert inserted
    return record


async def failed(store: TicketStore, request_id: str, kind: str) -> TicketRecord:
    record = await reserve(store, request_id)
    settled = await store.record_failed(
        record.id, error="503 from platform", error_kind=kind, attempts=3, now=NOW + timedelta(seconds=1)
    )
    assert settled is not None
    return settled


# ---------------------------------------------------------------------------------------------
# reserve / get


async def test_reserve_stores_every_field(store: TicketStore) -> None:
    record = new_record("req-1", template_name="disk_alert")

    reserved, inserted = await store.reserve(record)

    assert inserted
    assert reserved == record
    assert await store.get(record.id) == record
    assert await store.get_by_request_id("req-1") == record
    assert reserved.state == PENDING and reserved.lease_until == NOW + LEASE


async def test_reserve_is_idempotent_on_request_id(store: TicketStore) -> None:
    first, _ = await store.reserve(new_record("req-1"))
    repeat = new_record("req-1", summary="another payload")

    existing, inserted = await store.reserve(repeat)

    assert not inserted
    assert existing == first
    assert existing.id != repeat.id
    assert len(await store.list(TicketFilter(), 10)) == 1


async def test_concurrent_reserves_of_one_request_id_have_one_winner(store: TicketStore) -> None:
    records = [new_record("req-race") for _ in range(50)]

    results = await asyncio.gather(*(store.reserve(r) for r in records))

    winners = [record for record, inserted in results if inserted]
    assert len(winners) == 1
    assert {record.id for record, _ in results} == {winners[0].id}
    assert len(await store.list(TicketFilter(), 100)) == 1


async def test_reserve_returns_the_row_as_stored(store: TicketStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    record = new_record("req-1", now=NOW.astimezone(india))

    reserved, _ = await store.reserve(record)

    # Built from the argument, not read back: the same values, zones (UTC) and key order.
    assert repr(reserved) == repr(await store.get(record.id))
    assert reserved.create_time.tzinfo is UTC


async def test_a_taken_id_is_a_statement_error_not_an_outage(store: TicketStore) -> None:
    record = await reserve(store, "req-1")
    with pytest.raises(IntegrityError):
        await store.reserve(replace(new_record("req-2"), id=record.id))
    assert await store.get_by_request_id("req-2") is None


async def test_every_write_is_committed_when_the_call_returns(
    store: TicketStore, migrated_database_url: str
) -> None:
    record = await reserve(store, "req-1")
    created = await store.record_created(
        record.id, external_id="1", external_key="K-1", url="u", attempts=1, now=NOW,
        lease=record.lease_until, record=record,
    )
    other = TicketStore(create_engine(migrated_database_url))  # its own pool: another session
    try:
        assert await other.get(record.id) == created
    finally:
        await other.close()


async def test_get_unknown_is_none(store: TicketStore) -> None:
    assert await store.get("00000000-0000-4000-8000-000000000000") is None
    assert await store.get_by_request_id("nope") is None


async def test_reserve_needs_a_lease(store: TicketStore) -> None:
    record = TicketRecord(id="00000000-0000-4000-8000-000000000001", platform="jira", request_id="r",
                          create_time=NOW, update_time=NOW)
    with pytest.raises(ValueError, match="lease_until"):
        await store.reserve(record)


async def test_over_long_values_are_rejected_on_both_databases(store: TicketStore) -> None:
    with pytest.raises(ValueError, match="request_id is longer than 255"):
        await store.reserve(new_record("r" * 256))
    record = await reserve(store, "req-1")
    with pytest.raises(ValueError, match="external_key is longer than 255"):
        await store.record_created(
            record.id, external_id="1", external_key="K" * 256, url="", attempts=1, now=NOW
        )
    assert (await store.get(record.id)) == record


# ---------------------------------------------------------------------------------------------
# record_created / record_failed


async def test_record_created_settles_a_pending_ticket(store: TicketStore) -> None:
    record = await reserve(store, "req-1")
    later = NOW + timedelta(seconds=2)

    created = await store.record_created(
        record.id, external_id="sys1", external_key="INC0010001", url="https://x/1", attempts=2, now=later
    )

    assert created is not None
    assert (created.state, created.external_id, created.external_key, created.url) == (
        CREATED, "sys1", "INC0010001", "https://x/1"
    )
    assert (created.attempts, created.last_error, created.error_kind, created.lease_until) == (2, "", "", None)
    assert (created.create_time, created.update_time) == (NOW, later)
    assert await store.get(record.id) == created


async def test_record_failed_settles_a_pending_ticket(store: TicketStore) -> None:
    record = await reserve(store, "req-1")

    result = await store.record_failed(record.id, error="x" * 5000, error_kind=PERMANENT, attempts=1, now=NOW)

    assert result is not None
    assert (result.state, result.error_kind, result.attempts, result.lease_until) == (FAILED, PERMANENT, 1, None)
    assert result.last_error == "x" * 2000
    assert await store.get(record.id) == result


async def test_records_apply_only_to_pending(store: TicketStore) -> None:
    record = await reserve(store, "req-1")
    created = await store.record_created(
        record.id, external_id="1", external_key="OPS-1", url="u", attempts=1, now=NOW
    )

    assert await store.record_failed(record.id, error="late", error_kind=TRANSIENT, attempts=9, now=NOW) is None
    assert await store.record_created(
        record.id, external_id="2", external_key="OPS-2", url="v", attempts=9, now=NOW
    ) is None
    assert await store.get(record.id) == created
    gone = "00000000-0000-4000-8000-000000000000"
    assert await store.record_created(gone, external_id="", external_key="", url="", attempts=0, now=NOW) is None


async def test_record_failed_needs_a_known_error_kind(store: TicketStore) -> None:
    record = await reserve(store, "req-1")
    with pytest.raises(ValueError, match="error_kind"):
        await store.record_failed(record.id, error="e", error_kind="flaky", attempts=1, now=NOW)
    assert await store.get(record.id) == record


async def test_a_failed_ticket_is_not_recorded_again(store: TicketStore) -> None:
    settled = await failed(store, "req-1", TRANSIENT)
    assert await store.record_created(
        settled.id, external_id="1", external_key="OPS-1", url="u", attempts=1, now=NOW
    ) is None
    assert await store.get(settled.id) == settled


# ---------------------------------------------------------------------------------------------
# settling with the holder's copy (record=, fenced by its lease)


async def settle(store: TicketStore, how: str, holder: TicketRecord, **kwargs: object) -> TicketRecord | None:
    later = NOW + timedelta(seconds=3)
    if how == "created":
        return await store.record_created(
            holder.id, external_id="sys1", external_key="INC1", url="u", attempts=2, now=later, **kwargs
        )
    if how == "failed":
        return await store.record_failed(
            holder.id, error="e" * 3000, error_kind=TRANSIENT, attempts=2, now=later, **kwargs
        )
    return await store.note_pending(
        holder.id, error="timed out", attempts=2, lease_until=later + LEASE, now=later, **kwargs
    )


@pytest.mark.parametrize("how", ["created", "failed", "pending"])
async def test_a_settle_built_from_the_holders_copy_is_the_stored_row(store: TicketStore, how: str) -> None:
    record = await reserve(store, "req-1")

    result = await settle(store, how, record, lease=record.lease_until, record=record)

    assert result is not None
    assert repr(result) == repr(await store.get(record.id))


@pytest.mark.parametrize("how", ["created", "failed", "pending"])
async def test_a_holder_that_was_taken_over_settles_nothing(store: TicketStore, how: str) -> None:
    record = await reserve(store, "req-1")
    assert record.lease_until is not None
    now = record.lease_until + timedelta(seconds=1)
    taken = await store.take_over(record.id, expected_state=PENDING, lease_until=now + LEASE, now=now)
    assert taken is not None

    assert await settle(store, how, record, lease=record.lease_until, record=record) is None
    assert await store.get(record.id) == taken

    settled = await settle(store, how, taken, lease=taken.lease_until, record=taken)
    assert settled is not None and settled == await store.get(record.id)


@pytest.mark.parametrize("fenced", [False, True])
async def test_a_copy_is_trusted_only_with_its_own_lease_as_the_fence(store: TicketStore, fenced: bool) -> None:
    record = await reserve(store, "req-1")
    async with store.engine.begin() as connection:  # a write the copy does not know about
        await connection.execute(update(tickets).where(tickets.c.id == record.id).values(template_name="edited"))
    # Unfenced, or fenced by a lease that is not the copy's: the row is read back.
    kwargs = {"lease": record.lease_until, "record": replace(record, lease_until=NOW)} if fenced else {"record": record}

    created = await settle(store, "created", record, **kwargs)

    assert created is not None and created.template_name == "edited"
    assert repr(created) == repr(await store.get(record.id))


async def test_a_copy_of_another_ticket_is_refused(store: TicketStore) -> None:
    a = await reserve(store, "a")
    b = await reserve(store, "b")
    with pytest.raises(ValueError, match="record"):
        await store.record_created(
            a.id, external_id="1", external_key="K", url="", attempts=1, now=NOW, lease=a.lease_until, record=b
        )
    assert await store.get(a.id) == a


# ---------------------------------------------------------------------------------------------
# take_over


async def test_take_over_retries_a_transient_failure(store: TicketStore) -> None:
    settled = await failed(store, "req-1", TRANSIENT)
    now = NOW + timedelta(minutes=5)

    taken = await store.take_over(settled.id, expected_state=FAILED, lease_until=now + LEASE, now=now)

    assert taken is not None
    assert (taken.state, taken.lease_until, taken.update_time) == (PENDING, now + LEASE, now)
    assert (taken.attempts, taken.last_error) == (3, "503 from platform")
    assert await store.take_over(settled.id, expected_state=FAILED, lease_until=now + LEASE, now=now) is None


async def test_take_over_refuses_a_permanent_failure(store: TicketStore) -> None:
    settled = await failed(store, "req-1", PERMANENT)
    assert await store.take_over(settled.id, expected_state=FAILED, lease_until=NOW + LEASE, now=NOW) is None
    assert await store.get(settled.id) == settled


async def test_take_over_claims_a_pending_ticket_only_once_its_lease_expired(store: TicketStore) -> None:
    record = await reserve(store, "req-1")
    assert record.lease_until is not None
    before = record.lease_until - timedelta(microseconds=1)
    after = record.lease_until + timedelta(microseconds=1)

    assert await store.take_over(record.id, expected_state=PENDING, lease_until=before + LEASE, now=before) is None
    claimed = await store.take_over(record.id, expected_state=PENDING, lease_until=after + LEASE, now=after)

    assert claimed is not None
    assert (claimed.state, claimed.lease_until) == (PENDING, after + LEASE)
    # The new lease protects the new holder.
    assert await store.take_over(record.id, expected_state=PENDING, lease_until=after + LEASE, now=after) is None


async def test_take_over_never_touches_created(store: TicketStore) -> None:
    record = await reserve(store, "req-1")
    await store.record_created(record.id, external_id="1", external_key="K-1", url="u", attempts=1, now=NOW)
    later = NOW + timedelta(days=1)
    for state in (PENDING, FAILED):
        assert await store.take_over(record.id, expected_state=state, lease_until=later, now=later) is None
    with pytest.raises(ValueError, match="take_over expects"):
        await store.take_over(record.id, expected_state=CREATED, lease_until=later, now=later)


@pytest.mark.parametrize("state", [FAILED, PENDING])
async def test_concurrent_take_overs_have_one_winner(store: TicketStore, state: str) -> None:
    record = await (failed(store, "req-1", TRANSIENT) if state == FAILED else reserve(store, "req-1"))
    now = NOW + timedelta(hours=1)

    results = await asyncio.gather(
        *(store.take_over(record.id, expected_state=state, lease_until=now + LEASE, now=now) for _ in range(20))
    )

    assert len([r for r in results if r is not None]) == 1


# ---------------------------------------------------------------------------------------------
# expired_pending


async def test_expired_pending_finds_only_abandoned_work(store: TicketStore) -> None:
    oldest = await reserve(store, "old", now=NOW - timedelta(minutes=10))
    older = await reserve(store, "older", now=NOW - timedelta(minutes=5))
    await reserve(store, "fresh", now=NOW)
    created = await reserve(store, "created", now=NOW - timedelta(minutes=20))
    await store.record_created(created.id, external_id="1", external_key="K-1", url="", attempts=1, now=NOW)
    await failed(store, "failed", TRANSIENT)
    now = NOW + timedelta(seconds=60)

    assert [r.id for r in await store.expired_pending(now, 10)] == [oldest.id, older.id]
    assert [r.id for r in await store.expired_pending(now, 1)] == [oldest.id]
    with pytest.raises(ValueError):
        await store.expired_pending(now, 0)


# ---------------------------------------------------------------------------------------------
# SLA sync writes


async def open_tickets(store: TicketStore, count: int) -> list[TicketRecord]:
    """CREATED tickets under an SLA policy, as the pipeline leaves them."""
    created = []
    for i in range(count):
        record, _ = await store.reserve(replace(new_record(f"sla-{i}"), priority="2", sla_state="ON_TRACK"))
        settled = await store.record_created(
            record.id, external_id=str(i), external_key=f"K-{i}", url="", attempts=1, now=NOW,
            lease=record.lease_until, record=record,
        )
        assert settled is not None
        created.append(settled)
    return created


async def test_record_sla_batch_stores_each_finding_and_releases_its_claim(store: TicketStore) -> None:
    first, second, third = await open_tickets(store, 3)
    later = NOW + timedelta(minutes=1)
    claimed = await store.claim_open("servicenow", now=later, lease_until=later + LEASE, limit=10)
    assert {r.id for r in claimed} == {first.id, second.id, third.id}

    await store.record_sla_batch(
        [
            SlaUpdate(id=second.id, acknowledged_at=None, resolved_at=None, sla_state="BREACHED",
                      sla_breaches="response", platform_status="x" * 100),
            SlaUpdate(id=first.id, acknowledged_at=later, resolved_at=later, sla_state="MET",
                      sla_breaches="", platform_status="Resolved"),
        ],
        now=later,
    )

    met, breached, untouched = [await store.get(r.id) for r in (first, second, third)]
    assert met is not None and breached is not None and untouched is not None
    assert (met.sla_state, met.acknowledged_at, met.resolved_at, met.platform_status) == ("MET", later, later, "Resolved")
    assert (breached.sla_state, breached.sla_breaches, breached.platform_status) == ("BREACHED", "response", "x" * 64)
    for synced in (met, breached):
        assert (synced.synced_at, synced.update_time, synced.sync_lease_until) == (later, later, None)
    assert (untouched.synced_at, untouched.sync_lease_until) == (None, later + LEASE)
    # Released, and still open: claimable again. Resolved: no longer polled.
    again = await store.claim_open("servicenow", now=later, lease_until=later + LEASE, limit=10)
    assert [r.id for r in again] == [second.id]


async def test_record_sla_batch_checks_every_finding_before_writing_any(store: TicketStore) -> None:
    first, second = await open_tickets(store, 2)
    findings = [
        SlaUpdate(id=first.id, acknowledged_at=None, resolved_at=None, sla_state="AT_RISK", sla_breaches="",
                  platform_status=""),
        SlaUpdate(id=second.id, acknowledged_at=None, resolved_at=None, sla_state="AT_RISK",
                  sla_breaches="b" * 33, platform_status=""),
    ]
    with pytest.raises(ValueError, match="sla_breaches"):
        await store.record_sla_batch(findings, now=NOW)
    assert await store.get(first.id) == first
    await store.record_sla_batch([], now=NOW)  # nothing to write


async def test_record_sla_returns_the_updated_row(store: TicketStore) -> None:
    (ticket,) = await open_tickets(store, 1)
    later = NOW + timedelta(minutes=1)

    updated = await store.record_sla(
        ticket.id, acknowledged_at=later, resolved_at=None, sla_state="ON_TRACK", sla_breaches="",
        platform_status="In Progress", now=later,
    )

    assert updated is not None and updated == await store.get(ticket.id)
    assert (updated.acknowledged_at, updated.platform_status, updated.synced_at) == (later, "In Progress", later)


# ---------------------------------------------------------------------------------------------
# list and pages


async def test_list_filters(store: TicketStore) -> None:
    a = await reserve(store, "a", platform="servicenow", job_id="nightly", now=NOW)
    b = await reserve(store, "b", platform="jira", job_id="nightly", now=NOW + timedelta(seconds=1))
    c = await reserve(store, "c", platform="jira", job_id="adhoc", now=NOW + timedelta(seconds=2))
    await store.record_created(b.id, external_id="10", external_key="OPS-10", url="", attempts=1, now=NOW)

    async def ids(**filters: str) -> list[str]:
        return [r.id for r in await store.list(TicketFilter(**filters), 10)]

    assert await ids() == [c.id, b.id, a.id]
    assert await ids(platform="jira") == [c.id, b.id]
    assert await ids(state=PENDING) == [c.id, a.id]
    assert await ids(state=CREATED, platform="jira") == [b.id]
    assert await ids(job_id="nightly") == [b.id, a.id]
    assert await ids(request_id="c") == [c.id]
    assert await ids(external_key="OPS-10") == [b.id]
    assert await ids(platform="servicenow", job_id="adhoc") == []


async def test_list_orders_ties_by_id(store: TicketStore) -> None:
    records = [await reserve(store, f"tie-{i}") for i in range(5)]
    listed = await store.list(TicketFilter(), 10)
    assert [r.id for r in listed] == sorted((r.id for r in records), reverse=True)


async def test_pages_have_no_duplicates_or_gaps_while_rows_are_inserted(store: TicketStore) -> None:
    # 3 rows share each timestamp, so page boundaries fall inside ties too.
    expected = {(await reserve(store, f"r{i}", now=NOW + timedelta(seconds=i // 3))).id for i in range(23)}
    filters, seen, token, pages = TicketFilter(job_id="job-1"), [], "", 0

    while True:
        page = await store.page(filters, 4, token)
        seen += [r.id for r in page.records]
        pages += 1
        # Newer tickets arrive between pages: they sort before the cursor and must not shift it.
        await reserve(store, f"new-{pages}", now=NOW + timedelta(hours=1, seconds=pages))
        token = page.next_page_token
        if not token:
            break

    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == expected
    assert pages == 6


async def test_page_sizes(store: TicketStore) -> None:
    for i in range(4):
        await reserve(store, f"r{i}", now=NOW + timedelta(seconds=i))
    full = await store.page(TicketFilter(), 4)
    assert len(full.records) == 4 and full.next_page_token == ""
    first = await store.page(TicketFilter(), 3)
    rest = await store.page(TicketFilter(), 3, first.next_page_token)
    assert len(rest.records) == 1 and rest.next_page_token == ""
    for size in (0, 1001):
        with pytest.raises(ValueError, match="page_size"):
            await store.page(TicketFilter(), size)


async def test_page_token_is_bound_to_its_filters(store: TicketStore) -> None:
    for i in range(3):
        await reserve(store, f"r{i}", now=NOW + timedelta(seconds=i))
    token = (await store.page(TicketFilter(platform="servicenow"), 1)).next_page_token
    assert token

    with pytest.raises(InvalidPageToken, match="other filters"):
        await store.page(TicketFilter(platform="jira"), 1, token)
    with pytest.raises(InvalidPageToken):
        await store.page(TicketFilter(), 1, token)
    assert len((await store.page(TicketFilter(platform="servicenow"), 1, token)).records) == 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        "%%%%",
        "\u00e9t\u00e9",
        "a",
        "A" * 600,
        _b64(b"\xff\xfe"),
        _b64(b"[]"),
        _b64(b'{"t": "2026-01-01T00:00:00+00:00"}'),
        _b64(json.dumps({"t": "yesterday", "i": "00000000-0000-4000-8000-000000000000", "f": ""}).encode()),
        _b64(json.dumps({"t": "2026-01-01T00:00:00", "i": "00000000-0000-4000-8000-000000000000", "f": ""}).encode()),
        _b64(json.dumps({"t": "2026-01-01T00:00:00+00:00", "i": "1; drop table tickets", "f": ""}).encode()),
        _b64(json.dumps({"t": "2026-01-01T00:00:00+00:00", "i": 7, "f": ""}).encode()),
    ],
)
def test_malformed_page_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidPageToken) as caught:
        decode_page_token(token, TicketFilter())
    assert isinstance(caught.value, ValueError)


def test_page_token_round_trips() -> None:
    cursor = Cursor(create_time=NOW, id="00000000-0000-4000-8000-000000000000")
    token = encode_page_token(cursor, TicketFilter(state=PENDING))
    assert decode_page_token(token, TicketFilter(state=PENDING)) == cursor
    assert decode_page_token("", TicketFilter(state=PENDING)) is None
    assert token.isascii() and "=" not in token


# ---------------------------------------------------------------------------------------------
# time


async def test_timestamps_are_utc_aware_with_microseconds(store: TicketStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2026, 7, 1, 9, 15, 30, 654321, tzinfo=india)

    record = await reserve(store, "req-1", now=local)
    stored = await store.get(record.id)

    assert stored is not None
    for value in (stored.create_time, stored.update_time, stored.lease_until):
        assert value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert stored.create_time == local
    assert stored.create_time.microsecond == 654321
    assert stored.create_time.hour == 3  # 09:15 +05:30 is 03:45 UTC


async def test_naive_times_are_refused(store: TicketStore) -> None:
    naive = datetime(2026, 1, 1, 0, 0, 0)
    record = await reserve(store, "req-1")
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.record_failed(record.id, error="e", error_kind=TRANSIENT, attempts=1, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.expired_pending(naive, 10)


# ---------------------------------------------------------------------------------------------
# engine (server/database.py)


@pytest.mark.parametrize(
    "url", ["mysql+aiomysql://u:hunter2@db/itsm", "postgresql://u:hunter2@db/itsm", "sqlite:///x.db"]
)
def test_other_urls_are_refused_without_showing_the_password(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseUrl) as caught:
        create_engine(url)
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message
    assert "sqlite+aiosqlite://" in message and "postgresql+asyncpg://" in message


def test_unparseable_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(UnsupportedDatabaseUrl) as caught:
        create_engine("::hunter2::")
    assert "hunter2" not in str(caught.value)


async def test_unreachable_database_is_one_clear_line() -> None:
    engine = create_engine("postgresql+asyncpg://u:hunter2@127.0.0.1:1/itsm", connect_timeout=2)
    store = TicketStore(engine)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await check_connection(engine)
        with pytest.raises(DatabaseUnavailable) as from_store:
            await store.get("00000000-0000-4000-8000-000000000000")
    finally:
        await store.close()
    for message in (str(caught.value), str(from_store.value)):
        assert message.startswith("cannot use database postgresql+asyncpg://u:***@127.0.0.1:1/itsm: ")
        assert "hunter2" not in message and "\n" not in message


async def test_default_sqlite_file_lives_under_the_working_directory_in_wal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = create_engine(DEFAULT_DATABASE_URL)
    try:
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            busy = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    finally:
        await engine.dispose()
    assert (tmp_path / "var" / "itsm.db").is_file()
    assert (mode, busy) == ("wal", 5000)
