"""The tickets repository: every statement the gateway runs on the tickets table.

SQLAlchemy Core, one statement per operation, each in its own implicit transaction (AUTOCOMMIT):
nothing here holds a transaction or a pooled connection while a platform call is in flight. The
same statements run on SQLite and PostgreSQL; concurrency is settled by the database (a unique key
for reservations, compare-and-set UPDATEs for state changes and leases), never by locks in Python.

Times are timezone-aware UTC datetimes with microsecond precision on both databases; callers pass
`now` in. Every call that fails to reach the database raises server.storage.database.DatabaseUnavailable.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, bindparam, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert, Update

from server.domain.records import (
    CREATED,
    FAILED,
    PENDING,
    PERMANENT_KINDS,
    TRANSIENT_KINDS,
    TicketRecord,
)
from server.service.ports import SlaUpdate, TicketFilter, TicketPage
from server.storage.database import run
from server.storage.page_tokens import Cursor, decode_page_token, encode_page_token
from server.storage.schema import MAX_CHARS, UtcDateTime, tickets, utc

MAX_PAGE_SIZE = 1000
MAX_BATCH = 1000  # expired_pending
MAX_LAST_ERROR_CHARS = 2000

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(TicketRecord))
if set(_RECORD_FIELDS) != set(tickets.c.keys()):
    raise RuntimeError("TicketRecord and the tickets table disagree on columns")

_Records = list[TicketRecord]


# The statements every request runs are built once, here. Building a statement and computing its
# cache key costs more CPU than binding and running it; a statement object reused keeps its cache
# key (memoised on the object), so SQLAlchemy finds it compiled and only binds the parameters.
# Values arrive as bindparam()s named after their columns; keys of the WHERE clause are named
# otherwise (SQLAlchemy reserves a SET column's name for its value).
_TICKET_ID = "ticket_id"
_FENCE = "fence"
_BY_ID = select(tickets).where(tickets.c.id == bindparam(_TICKET_ID))
_BY_REQUEST_ID = select(tickets).where(tickets.c.request_id == bindparam("by_request_id"))


def _reserve_statement(dialect_insert: Any) -> Insert:
    return (
        dialect_insert(tickets)
        .values({name: bindparam(name) for name in _RECORD_FIELDS})
        .on_conflict_do_nothing(index_elements=["request_id"])
    )


_RESERVE = {"postgresql": _reserve_statement(postgresql.insert), "sqlite": _reserve_statement(sqlite.insert)}


@functools.cache  # a handful of variants: (the columns of record_created/_failed/note_pending) x 2 x 2
def _settle_statement(columns: tuple[str, ...], fenced: bool, returning: bool) -> Update:
    condition = [tickets.c.id == bindparam(_TICKET_ID), tickets.c.state == PENDING]
    if fenced:
        # The lease a holder got from reserve/take_over is its fencing token: a holder that was
        # taken over (its lease ran out) cannot settle the ticket under the new holder's feet.
        condition.append(tickets.c.lease_until == bindparam(_FENCE))
    statement = update(tickets).where(*condition).values({name: bindparam(name) for name in columns})
    return statement.returning(*tickets.c) if returning else statement


def _take_over_statement(expected_state: str) -> Update:
    condition = [tickets.c.id == bindparam(_TICKET_ID), tickets.c.state == expected_state]
    if expected_state == FAILED:
        condition.append(tickets.c.error_kind.in_(sorted(TRANSIENT_KINDS)))
    else:
        condition.append(tickets.c.lease_until < bindparam("now"))
    return (
        update(tickets)
        .where(*condition)
        .values(state=PENDING, lease_until=bindparam("lease_until"), update_time=bindparam("update_time"))
        .returning(*tickets.c)
    )


_TAKE_OVER = {state: _take_over_statement(state) for state in (FAILED, PENDING)}
_SLA_COLUMNS = (
    "acknowledged_at", "resolved_at", "sla_state", "sla_breaches", "platform_status", "synced_at",
    "sync_lease_until", "update_time",
)
_RECORD_SLA = update(tickets).where(tickets.c.id == bindparam(_TICKET_ID)).values(
    {name: bindparam(name) for name in _SLA_COLUMNS}
)
_RECORD_SLA_RETURNING = _RECORD_SLA.returning(*tickets.c)


class TicketStore:
    def __init__(self, engine: AsyncEngine) -> None:
        # Every call runs through server.storage.database.run(): one statement per round trip, each in
        # its own implicit transaction, no BEGIN/COMMIT.
        self.engine = engine
        self._reserve = _RESERVE[engine.dialect.name]
        # A batch of SLA updates is one transaction either way. asyncpg sends an executemany as
        # one pipelined implicit transaction, so PostgreSQL needs no BEGIN/COMMIT round trips;
        # SQLite gets an explicit one, so the batch is one commit (one WAL sync), not one per row.
        self._batch_in_transaction = engine.dialect.name == "sqlite"

    async def close(self) -> None:
        await self.engine.dispose()

    dispose = close

    async def _one(self, statement: Any, params: Mapping[str, Any]) -> TicketRecord | None:
        row = await run(self.engine, lambda connection: connection.execute(statement, params).first())
        return None if row is None else _record(row)

    async def _many(self, statement: Any) -> _Records:
        rows = await run(self.engine, lambda connection: connection.execute(statement).all())
        return [_record(row) for row in rows]

    async def reserve(self, record: TicketRecord) -> tuple[TicketRecord, bool]:
        """Insert record as PENDING under its request_id: (it, True); or (the existing row, False)."""
        if record.lease_until is None:
            raise ValueError("a reserved ticket needs lease_until")
        stored = _as_stored(record)
        values = {name: getattr(stored, name) for name in _RECORD_FIELDS}
        _check(values)

        def insert_or_read(connection: Connection) -> Row[Any] | None:
            # No RETURNING: an inserted row is exactly `stored`, and rowcount tells whether it was.
            if connection.execute(self._reserve, values).rowcount == 1:
                return None
            # Rows are never deleted, so the one that won the unique key is there to read.
            return connection.execute(_BY_REQUEST_ID, {"by_request_id": record.request_id}).one()

        existing = await run(self.engine, insert_or_read)
        return (stored, True) if existing is None else (_record(existing), False)

    async def record_created(
        self,
        id: str,
        *,
        external_id: str,
        external_key: str,
        url: str,
        attempts: int,
        now: datetime,
        lease: datetime | None = None,
        record: TicketRecord | None = None,
    ) -> TicketRecord | None:
        """PENDING -> CREATED. None when the ticket is not PENDING (someone else settled it), or
        when `lease` is given and no longer the row's: another holder took the ticket over.

        `record`: the holder's copy of the row (what reserve/take_over returned with `lease`). Given
        with its own lease as `lease`, the result is built from it instead of read back."""
        values = {
            "state": CREATED,
            "external_id": external_id,
            "external_key": external_key,
            "url": url,
            "attempts": attempts,
            "last_error": "",
            "error_kind": "",
            "lease_until": None,
            "update_time": utc(now),
        }
        _check(values)
        return await self._settle(id, values, lease, record)

    async def record_failed(
        self,
        id: str,
        *,
        error: str,
        error_kind: str,
        attempts: int,
        now: datetime,
        lease: datetime | None = None,
        record: TicketRecord | None = None,
    ) -> TicketRecord | None:
        """PENDING -> FAILED. None when the ticket is not PENDING (someone else settled it).

        A kind in TRANSIENT_KINDS lets a repeat of the request_id retry (take_over); one in
        PERMANENT_KINDS does not. `lease` and `record` as in record_created.
        """
        if error_kind not in TRANSIENT_KINDS | PERMANENT_KINDS:
            raise ValueError(f"unknown error_kind {error_kind!r}")
        values = {
            "state": FAILED,
            "last_error": error[:MAX_LAST_ERROR_CHARS],
            "error_kind": error_kind,
            "attempts": attempts,
            "lease_until": None,
            "update_time": utc(now),
        }
        _check(values)
        return await self._settle(id, values, lease, record)

    async def note_pending(
        self,
        id: str,
        *,
        error: str,
        attempts: int,
        lease: datetime,
        lease_until: datetime,
        now: datetime,
        record: TicketRecord | None = None,
    ) -> TicketRecord | None:
        """Keeps a PENDING ticket PENDING after an outcome that may have been applied (a timeout, a
        cut connection): records the error and moves the lease to lease_until, after which a repeat
        or the reconciler settles it through the correlation marker. Fenced by `lease` like the
        record_* calls; `record` as in record_created."""
        values = {
            "last_error": error[:MAX_LAST_ERROR_CHARS],
            "attempts": attempts,
            "lease_until": utc(lease_until),
            "update_time": utc(now),
        }
        _check(values)
        return await self._settle(id, values, lease, record)

    async def _settle(
        self, id: str, values: dict[str, Any], lease: datetime | None, record: TicketRecord | None
    ) -> TicketRecord | None:
        """One compare-and-set UPDATE of a PENDING ticket (fenced by lease when given)."""
        if record is not None and record.id != id:
            raise ValueError("record is not the ticket being settled")
        params = {_TICKET_ID: id, **values}
        if lease is not None:
            params[_FENCE] = utc(lease)
        columns = tuple(values)
        # Only the fence makes the holder's copy the row as it stands: no one else writes a
        # PENDING ticket while its lease is held, and this UPDATE sets every column that changes.
        if record is None or lease is None or record.lease_until != lease:
            return await self._one(_settle_statement(columns, lease is not None, True), params)
        statement = _settle_statement(columns, True, False)
        settled = await run(self.engine, lambda connection: connection.execute(statement, params).rowcount)
        return dataclasses.replace(record, **values) if settled == 1 else None

    async def take_over(
        self, id: str, *, expected_state: str, lease_until: datetime, now: datetime
    ) -> TicketRecord | None:
        """Compare-and-set a new lease; of concurrent callers exactly one gets the record, the rest None.

        expected_state FAILED: a repeat request retries a transient failure (-> PENDING, attempts
        and last_error kept). expected_state PENDING: the reconciler claims a ticket whose lease
        expired before now.
        """
        statement = _TAKE_OVER.get(expected_state)
        if statement is None:
            raise ValueError(f"take_over expects state {PENDING} or {FAILED}, not {expected_state!r}")
        now = utc(now)
        params = {_TICKET_ID: id, "lease_until": utc(lease_until), "update_time": now}
        if expected_state == PENDING:
            params["now"] = now
        return await self._one(statement, params)

    async def get(self, id: str) -> TicketRecord | None:
        return await self._one(_BY_ID, {_TICKET_ID: id})

    async def get_by_request_id(self, request_id: str) -> TicketRecord | None:
        return await self._one(_BY_REQUEST_ID, {"by_request_id": request_id})

    async def list(self, filters: TicketFilter, page_size: int, after: Cursor | None = None) -> _Records:
        """Up to page_size records in (create_time DESC, id DESC) order, strictly after `after`."""
        _check_page_size(page_size)
        return await self._many(_list_statement(filters, page_size, after))

    async def page(self, filters: TicketFilter, page_size: int, page_token: str = "") -> TicketPage:
        """One page and the token of the next. Raises InvalidPageToken for a bad or foreign token."""
        _check_page_size(page_size)
        after = decode_page_token(page_token, filters)
        # One more than asked tells whether a next page exists, without a count.
        records = await self._many(_list_statement(filters, page_size + 1, after))
        if len(records) <= page_size:
            return TicketPage(records, "")
        records = records[:page_size]
        return TicketPage(records, encode_page_token(Cursor.after(records[-1]), filters))

    async def expired_pending(self, now: datetime, limit: int) -> _Records:
        """PENDING tickets whose lease ran out before now, oldest lease first."""
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}")
        statement = (
            select(tickets)
            .where(tickets.c.state == PENDING, tickets.c.lease_until < utc(now))
            .order_by(tickets.c.lease_until, tickets.c.id)
            .limit(limit)
        )
        return await self._many(statement)

    async def claim_open(
        self, platform: str, *, now: datetime, lease_until: datetime, limit: int
    ) -> _Records:
        """Claims up to `limit` open tickets of one platform for an SLA sync, least recently synced
        first. Of several gateways claiming at once each ticket goes to one: the UPDATE re-checks the
        lease on every row it takes (PostgreSQL re-evaluates after waiting on a row; SQLite
        serialises writers), and no row lock outlives this one statement."""
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}")
        now = utc(now)
        free = or_(tickets.c.sync_lease_until.is_(None), tickets.c.sync_lease_until < now)
        candidates = (
            select(tickets.c.id)
            .where(
                tickets.c.platform == platform,
                tickets.c.state == CREATED,
                tickets.c.resolved_at.is_(None),
                tickets.c.sla_state != "",
                free,
            )
            .order_by(tickets.c.synced_at.asc().nulls_first(), tickets.c.id)
            .limit(limit)
            # PostgreSQL: concurrent claimers skip each other's rows instead of queueing on them
            # and coming back empty-handed (SQLite ignores it: writers are serialised anyway).
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(tickets)
            .where(tickets.c.id.in_(candidates.scalar_subquery()), free)
            .values(sync_lease_until=utc(lease_until))
            .returning(*tickets.c)
        )
        return await self._many(statement)

    async def record_sla(
        self,
        id: str,
        *,
        acknowledged_at: datetime | None,
        resolved_at: datetime | None,
        sla_state: str,
        sla_breaches: str,
        platform_status: str,
        now: datetime,
    ) -> TicketRecord | None:
        """Stores one sync's findings and releases the sync lease (record_sla_batch for many)."""
        update_ = SlaUpdate(
            id=id,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            sla_state=sla_state,
            sla_breaches=sla_breaches,
            platform_status=platform_status,
        )
        return await self._one(_RECORD_SLA_RETURNING, _sla_params(update_, utc(now)))

    async def record_sla_batch(self, updates: list[SlaUpdate], *, now: datetime) -> None:
        """Stores one sync round's findings for many tickets and releases their sync leases: one
        executemany, one round trip and one transaction for the whole batch."""
        if not updates:
            return
        now = utc(now)
        # Rows in id order: two gateways writing overlapping batches lock them in the same order.
        params = [_sla_params(u, now) for u in sorted(updates, key=lambda u: u.id)]

        def write(connection: Connection) -> None:
            with connection.begin():  # under autocommit, a BEGIN and COMMIT that stay in Python
                connection.execute(_RECORD_SLA, params)

        await run(self.engine, write, autocommit=not self._batch_in_transaction)

    async def release_sync(self, ids: list[str]) -> None:
        """Gives claimed tickets back early (the platform could not be asked this round)."""
        if ids:
            statement = update(tickets).where(tickets.c.id.in_(ids)).values(sync_lease_until=None)
            await run(self.engine, lambda connection: connection.execute(statement))

    async def count_open(self) -> dict[tuple[str, str], int]:
        """Open (CREATED, unresolved) tickets under an SLA policy, by (platform, sla_state)."""
        statement = (
            select(tickets.c.platform, tickets.c.sla_state, func.count())
            .where(tickets.c.state == CREATED, tickets.c.resolved_at.is_(None), tickets.c.sla_state != "")
            .group_by(tickets.c.platform, tickets.c.sla_state)
        )
        rows = await run(self.engine, lambda connection: connection.execute(statement).all())
        return {(platform, state): count for platform, state, count in rows}


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")


def _list_statement(filters: TicketFilter, limit: int, after: Cursor | None) -> Select[Any]:
    statement = select(tickets)
    for f in dataclasses.fields(filters):
        value = getattr(filters, f.name)
        if value:
            statement = statement.where(tickets.c[f.name] == value)
    if after is not None:
        # Row-value comparison: one range scan of ix_tickets_create_time_id on both databases.
        position = tuple_(literal(utc(after.create_time), UtcDateTime()), literal(after.id, String()))
        statement = statement.where(tuple_(tickets.c.create_time, tickets.c.id) < position)
    return statement.order_by(tickets.c.create_time.desc(), tickets.c.id.desc()).limit(limit)


def _sla_params(update_: SlaUpdate, now: datetime) -> dict[str, Any]:
    values = {
        _TICKET_ID: update_.id,
        "acknowledged_at": None if update_.acknowledged_at is None else utc(update_.acknowledged_at),
        "resolved_at": None if update_.resolved_at is None else utc(update_.resolved_at),
        "sla_state": update_.sla_state,
        "sla_breaches": update_.sla_breaches,
        "platform_status": update_.platform_status[:64],
        "synced_at": now,
        "sync_lease_until": None,
        "update_time": now,
    }
    _check(values)
    return values


_TIMES = tuple(c.name for c in tickets.c if isinstance(c.type, UtcDateTime))


def _as_stored(record: TicketRecord) -> TicketRecord:
    """record as a PENDING row, exactly as reading it back would give it: times in UTC, fields in
    the key order of their JSON."""
    times = {name: utc(value) for name in _TIMES if (value := getattr(record, name)) is not None}
    fields = dict(sorted(record.fields.items()))
    return dataclasses.replace(record, state=PENDING, fields=fields, **times)


def _check(values: Mapping[str, Any]) -> None:
    """PostgreSQL rejects an over-long string and SQLite keeps it: reject it here, on both."""
    for name, limit in MAX_CHARS.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise ValueError(f"{name} is longer than {limit} characters")


def _record(row: Row[Any]) -> TicketRecord:
    return TicketRecord(**row._mapping)
