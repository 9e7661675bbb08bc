"""The tickets repository on SQLite and PostgreSQL: lists and pages, page tokens, the SLA sync's
claims and findings, the database's clock, and the engine's URL handling."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from server.domain.records import CREATED, PENDING, TicketRecord
from server.service.ports import InvalidPageToken, SlaUpdate, TicketFilter
from server.storage.database import (
    DEFAULT_DATABASE_URL,
    DatabaseUnavailable,
    UnsupportedDatabaseUrl,
    check_connection,
    create_engine,
)
from server.storage.page_tokens import Cursor, decode_page_token, encode_page_token
from server.storage.schema import operations, tickets
from server.storage.tickets import TicketStore

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


async def seed(store: TicketStore, request_id: str, *, at: datetime = NOW, **values: Any) -> TicketRecord:
    """A ticket row (and its create operation) as the ledger would have written it, at a chosen
    time: the repository's reads are what these tests are about."""
    ticket = TicketRecord(
        id=values.pop("id", f"00000000-0000-4000-8000-{abs(hash(request_id)) % 10**12:012d}"),
        platform=values.pop("platform", "servicenow"),
        request_id=request_id,
        job_id=values.pop("job_id", "job-1"),
        state=values.pop("state", PENDING),
        fields={"summary": "disk full", "description": "caf\u00e9 \u2603"},
        create_time=at,
        update_time=at,
        **values,
    )
    row = {name: getattr(ticket, name) for name in tickets.c.keys()}
    operation = {
        "request_id": request_id, "kind": "create", "ticket_id": ticket.id, "payload_hash": "h",
        "payload": {}, "state": "PENDING", "attempts": 0, "last_error": "", "error_kind": "",
        "marker": "", "result": {}, "created_by": "", "lease_token": "", "lease_until": at,
        "uncertain_since": None, "create_time": at, "update_time": at,
    }
    async with store.engine.begin() as connection:
        await connection.execute(insert(tickets).values(row))
        await connection.execute(insert(operations).values(operation))
    return ticket


async def test_get_reads_back_every_field(store: TicketStore) -> None:
    seeded = await seed(store, "r1", external_key="INC1", marker="m")
    assert await store.get(seeded.id) == seeded
    assert await store.get("00000000-0000-4000-8000-000000000999") is None


# ---------------------------------------------------------------------------------------------
# list and pages


async def test_list_filters(store: TicketStore) -> None:
    a = await seed(store, "a", platform="servicenow", job_id="nightly", at=NOW)
    b = await seed(store, "b", platform="jira", job_id="nightly", at=NOW + timedelta(seconds=1),
                   state=CREATED, external_key="OPS-10")
    c = await seed(store, "c", platform="jira", job_id="adhoc", at=NOW + timedelta(seconds=2))

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


async def test_request_id_finds_the_ticket_any_operation_acted_on(store: TicketStore) -> None:
    """request_ids share one namespace across kinds: an update's request_id finds its ticket."""
    ticket = await seed(store, "creating")
    async with store.engine.begin() as connection:
        await connection.execute(
            insert(operations).values(
                request_id="updating", kind="update", ticket_id=ticket.id, payload_hash="h", payload={},
                state="SUCCEEDED", attempts=1, last_error="", error_kind="", marker="", result={},
                created_by="", lease_token="", lease_until=None, uncertain_since=None,
                create_time=NOW, update_time=NOW,
            )
        )
    assert [r.id for r in await store.list(TicketFilter(request_id="updating"), 10)] == [ticket.id]


async def test_list_orders_ties_by_id(store: TicketStore) -> None:
    records = [await seed(store, f"tie-{i}") for i in range(5)]
    listed = await store.list(TicketFilter(), 10)
    assert [r.id for r in listed] == sorted((r.id for r in records), reverse=True)


async def test_pages_have_no_duplicates_or_gaps_while_rows_are_inserted(store: TicketStore) -> None:
    # 3 rows share each timestamp, so page boundaries fall inside ties too.
    expected = {(await seed(store, f"r{i}", at=NOW + timedelta(seconds=i // 3))).id for i in range(23)}
    filters, seen, token, pages = TicketFilter(job_id="job-1"), [], "", 0

    while True:
        page = await store.page(filters, 4, token)
        seen += [r.id for r in page.records]
        pages += 1
        # Newer tickets arrive between pages: they sort before the cursor and must not shift it.
        await seed(store, f"new-{pages}", at=NOW + timedelta(hours=1, seconds=pages))
        token = page.next_page_token
        if not token:
            break

    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == expected
    assert pages == 6


async def test_a_page_can_end_early_after_any_of_its_records(store: TicketStore) -> None:
    """A caller that must send fewer records (the message size limit) ends the page after record i
    with token_after(i), and the next page starts right there."""
    for i in range(6):
        await seed(store, f"r{i}", at=NOW + timedelta(seconds=i))
    page = await store.page(TicketFilter(), 5)
    rest = await store.page(TicketFilter(), 5, page.token_after(1))
    assert [r.id for r in page.records[:2]] + [r.id for r in rest.records] == [
        r.id for r in await store.list(TicketFilter(), 10)
    ]


async def test_page_sizes(store: TicketStore) -> None:
    for i in range(4):
        await seed(store, f"r{i}", at=NOW + timedelta(seconds=i))
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
        await seed(store, f"r{i}", at=NOW + timedelta(seconds=i))
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


def test_hole5_a_token_with_an_extreme_timestamp_is_invalid_not_a_crash() -> None:
    """Hole 5: a page token holding an extreme timestamp raised OverflowError -> INTERNAL."""
    ids = "00000000-0000-4000-8000-000000000000"
    fingerprint = TicketFilter().fingerprint()
    for when in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+00:00"):
        token = _b64(json.dumps({"t": when, "i": ids, "f": fingerprint}).encode())
        with pytest.raises(InvalidPageToken):
            decode_page_token(token, TicketFilter())


# ---------------------------------------------------------------------------------------------
# SLA sync: claims and findings


async def _open(store: TicketStore, count: int) -> list[TicketRecord]:
    return [
        await seed(store, f"open-{i}", platform="jira", state=CREATED, external_id=str(10000 + i),
                   sla_state="ON_TRACK", response_due=NOW, resolution_due=NOW)
        for i in range(count)
    ]


async def test_claims_are_exclusive_until_released_or_run_out(store: TicketStore) -> None:
    await _open(store, 30)
    claims = await asyncio.gather(
        *(store.claim_open("jira", token=f"t{i}", lease_seconds=60, limit=10) for i in range(5))
    )
    ids = [r.id for claimed, _ in claims for r in claimed]
    assert len(ids) == len(set(ids)) == 30  # every ticket claimed, none twice
    assert (await store.claim_open("jira", token="late", lease_seconds=60, limit=10))[0] == []
    first_ten = [r.id for r in claims[0][0]]
    await store.release_sync(first_ten, token="not-t0")  # only the claim's own token releases it
    assert (await store.claim_open("jira", token="late", lease_seconds=60, limit=10))[0] == []
    await store.release_sync(first_ten, token="t0")
    again, _ = await store.claim_open("jira", token="again", lease_seconds=-1, limit=50)
    assert sorted(r.id for r in again) == sorted(first_ten)
    # "again" claimed with a lease already over (by the database's clock): free for the next one.
    after, _ = await store.claim_open("jira", token="after", lease_seconds=60, limit=50)
    assert sorted(r.id for r in after) == sorted(first_ten)


async def test_claim_says_when_by_the_database_clock(store: TicketStore) -> None:
    await _open(store, 1)
    _, now = await store.claim_open("jira", token="t", lease_seconds=60, limit=1)
    assert abs((now - await store.now()).total_seconds()) < 5
    assert now.tzinfo is not None


async def test_findings_are_fenced_by_their_claim(store: TicketStore) -> None:
    (ticket,) = await _open(store, 1)
    (_,), now = await store.claim_open("jira", token="first", lease_seconds=-1, limit=1)
    await store.claim_open("jira", token="second", lease_seconds=60, limit=1)  # took it over
    finding = SlaUpdate(id=ticket.id, acknowledged_at=now, resolved_at=None, sla_state="AT_RISK",
                        platform_status="In Progress")
    await store.record_sla_batch([finding], token="first")
    assert (await store.get(ticket.id)).sla_state == "ON_TRACK"  # the stale claim wrote nothing
    await store.record_sla_batch([finding], token="second")
    stored = await store.get(ticket.id)
    assert (stored.sla_state, stored.platform_status, stored.acknowledged_at) == ("AT_RISK", "In Progress", now)
    assert (stored.sync_token, stored.sync_lease_until) == ("", None) and stored.synced_at is not None


async def test_breaches_are_recorded_once(store: TicketStore) -> None:
    (ticket,) = await _open(store, 1)
    results = await asyncio.gather(
        *(store.record_breaches(ticket.id, before="", after="response") for _ in range(5))
    )
    assert sorted(results) == [False] * 4 + [True]
    assert await store.record_breaches(ticket.id, before="response", after="resolution,response")
    assert (await store.get(ticket.id)).sla_breaches == "resolution,response"


# ---------------------------------------------------------------------------------------------
# time


async def test_times_come_back_utc_aware_with_microseconds(store: TicketStore) -> None:
    local = datetime(2026, 7, 1, 9, 15, 30, 654321, tzinfo=UTC) + timedelta(hours=0)
    ticket = await seed(store, "t", at=local)
    stored = await store.get(ticket.id)
    assert stored is not None and stored.create_time == local
    assert stored.create_time.utcoffset() == timedelta(0) and stored.create_time.microsecond == 654321
    now = await store.now()
    assert now.tzinfo is not None and abs((now - datetime.now(UTC)).total_seconds()) < 60


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
