"""The tickets repository: reads and lists of tickets, and the SLA sync's claims and findings.

Tickets are created and changed by the operations ledger (storage/operations.py), in the same
transaction as the operation that does it. Every statement here runs on its own (AUTOCOMMIT), and
"now" is the database's clock. Calls that fail to reach the database raise
server.storage.database.DatabaseUnavailable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, and_, bindparam, case, exc, func, literal, or_, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from server.domain.records import CREATED, DONE_STATUSES, OPEN_STATUSES, RESOLVED, TicketRecord
from server.service.ports import SlaUpdate, TicketFilter, TicketPage
from server.storage.clock import db_time
from server.storage.database import run
from server.storage.page_tokens import Cursor, decode_page_token, encode_page_token
from server.storage.schema import UtcDateTime, operations, tickets, utc

MAX_PAGE_SIZE = 1000
MAX_BATCH = 1000

_BY_ID = select(tickets).where(tickets.c.id == bindparam("tid"))
_SLA_COLUMNS = ("acknowledged_at", "resolved_at", "sla_state", "platform_status")
_DONE = sorted(DONE_STATUSES)
# A new status ("" keeps the old one); a ticket no longer open gives its dedup key up.
_NEW_STATUS = case((bindparam("new_status") == "", tickets.c.status), else_=bindparam("new_status"))
# Equalities, not IN: an IN over a list is an "expanding" parameter, which executemany refuses.
_KEY_KEPT = case(
    (or_(*(bindparam("new_status") == status for status in _DONE)), None), else_=tickets.c.open_key
)
_RESOLUTION = case(
    (bindparam("new_status") == "", tickets.c.resolution), else_=bindparam("new_resolution")
)
# The sync's findings, fenced by its claim: a sync whose claim ran out and was taken by another
# gateway writes nothing. Breaches are not here: see record_breaches.
_RECORD_SLA = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"), tickets.c.sync_token == bindparam("claim"))
    .values(
        {
            **{name: bindparam(name) for name in _SLA_COLUMNS},
            "status": _NEW_STATUS,
            "resolution": _RESOLUTION,
            "open_key": _KEY_KEPT,
            "synced_at": db_time(),
            "sync_lease_until": None,
            "sync_token": "",
            "update_time": db_time(),
        }
    )
)
_RECORD_BREACHES = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"), tickets.c.sla_breaches == bindparam("before"))
    .values(sla_breaches=bindparam("after"))
)


class TicketStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # A batch of SLA updates is one transaction either way. asyncpg sends an executemany as
        # one pipelined implicit transaction, so PostgreSQL needs no BEGIN/COMMIT round trips;
        # SQLite gets an explicit one, so the batch is one commit (one WAL sync), not one per row.
        self._batch_in_transaction = engine.dialect.name == "sqlite"

    async def close(self) -> None:
        await self.engine.dispose()

    async def _many(self, statement: Any) -> list[TicketRecord]:
        rows = await run(self.engine, lambda connection: connection.execute(statement).all())
        return [_record(row) for row in rows]

    async def get(self, id: str) -> TicketRecord | None:
        row = await run(self.engine, lambda c: c.execute(_BY_ID, {"tid": id}).first())
        return None if row is None else _record(row)

    async def list(
        self, filters: TicketFilter, page_size: int, after: Cursor | None = None
    ) -> list[TicketRecord]:
        """Up to page_size records in (create_time DESC, id DESC) order, strictly after `after`."""
        _check_page_size(page_size)
        return await self._many(_list_statement(filters, page_size, after))

    async def page(self, filters: TicketFilter, page_size: int, page_token: str = "") -> TicketPage:
        """One page and the token of the next. Raises InvalidPageToken for a bad or foreign token."""
        _check_page_size(page_size)
        after = decode_page_token(page_token, filters)
        # One more than asked tells whether a next page exists, without a count.
        records = await self._many(_list_statement(filters, page_size + 1, after))
        more = len(records) > page_size
        records = records[:page_size]
        return TicketPage(
            records,
            encode_page_token(Cursor.after(records[-1]), filters) if more else "",
            lambda index: encode_page_token(Cursor.after(records[index]), filters),
        )

    async def claim_open(
        self,
        platform: str,
        *,
        token: str,
        lease_seconds: float,
        limit: int,
        resolved_horizon_seconds: float = 7 * 86400,
    ) -> tuple[list[TicketRecord], datetime]:
        """Claims up to `limit` open tickets of one platform for an SLA sync under `token`, least
        recently synced first, and says when (the database's now). Of several gateways claiming at
        once each ticket goes to one: the UPDATE re-checks the claim on every row it takes
        (PostgreSQL re-evaluates after waiting on a row; SQLite serialises writers)."""
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}")
        free = or_(tickets.c.sync_lease_until.is_(None), tickets.c.sync_lease_until <= db_time())
        # Every open ticket, SLA or not; and resolved ones for a while, so a person reopening one on
        # the platform shows up. Closed and cancelled tickets are final.
        watched = or_(
            tickets.c.status.not_in(_DONE),
            and_(tickets.c.status == RESOLVED, tickets.c.resolved_at > db_time(-resolved_horizon_seconds)),
        )
        candidates = (
            select(tickets.c.id)
            .where(tickets.c.platform == platform, tickets.c.state == CREATED, watched, free)
            .order_by(tickets.c.synced_at.asc().nulls_first(), tickets.c.id)
            .limit(limit)
            # PostgreSQL: concurrent claimers skip each other's rows instead of queueing on them
            # and coming back empty-handed (SQLite ignores it: writers are serialised anyway).
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(tickets)
            .where(tickets.c.id.in_(candidates.scalar_subquery()), free)
            .values(sync_lease_until=db_time(lease_seconds), sync_token=token)
            .returning(*tickets.c, db_time().label("observed_at"))
        )
        rows = await run(self.engine, lambda connection: connection.execute(statement).all())
        if not rows:
            return [], await self.now()
        return [_record(row) for row in rows], rows[0].observed_at

    async def now(self) -> datetime:
        """The database's clock."""
        return await run(self.engine, lambda c: c.execute(select(db_time())).scalar_one())

    async def record_sla_batch(self, updates: list[SlaUpdate], *, token: str) -> None:
        """Stores one sync round's findings for the tickets still claimed under `token` and releases
        their claims: one executemany, one round trip and one transaction for the whole batch."""
        if not updates:
            return
        # Rows in id order: two gateways writing overlapping batches lock them in the same order.
        params = [_sla_params(u, token) for u in sorted(updates, key=lambda u: u.id)]

        def write(connection: Connection) -> None:
            with connection.begin():  # under autocommit, a BEGIN and COMMIT that stay in Python
                connection.execute(_RECORD_SLA, params)

        await run(self.engine, write, autocommit=not self._batch_in_transaction)

    async def key_holder(self, platform: str, key: str) -> TicketRecord | None:
        """The ticket holding a dedup key: being created, or open."""
        statement = select(tickets).where(tickets.c.platform == platform, tickets.c.open_key == key)
        row = await run(self.engine, lambda c: c.execute(statement).first())
        return None if row is None else _record(row)

    async def latest_with_key(
        self, platform: str, key: str, window_seconds: float
    ) -> tuple[TicketRecord, bool] | None:
        """The newest ticket opened under a key, and whether it was resolved within the window (by
        the database's clock): the one a recurrence may reopen."""
        recent = and_(tickets.c.resolved_at.is_not(None), tickets.c.resolved_at > db_time(-window_seconds))
        statement = (
            select(tickets, recent.label("recently_resolved"))
            .where(tickets.c.platform == platform, tickets.c.dedup_key == key, tickets.c.state == CREATED)
            .order_by(tickets.c.create_time.desc(), tickets.c.id.desc())
            .limit(1)
        )
        row = await run(self.engine, lambda c: c.execute(statement).first())
        if row is None:
            return None
        return _record(row), bool(row.recently_resolved)

    async def record_status(self, id: str, *, status: str, resolution: str) -> TicketRecord | None:
        """What the platform said of a ticket just now (a person may have resolved it since the last
        sync): its status, and, no longer open, its dedup key given up and its resolution time."""
        done = status in DONE_STATUSES
        values: dict[str, Any] = {"status": status, "resolution": resolution[:255], "update_time": db_time()}
        if done:
            values["open_key"] = None
            values["resolved_at"] = func.coalesce(tickets.c.resolved_at, db_time())
        statement = update(tickets).where(tickets.c.id == id).values(values).returning(*tickets.c)
        row = await run(self.engine, lambda c: c.execute(statement).first())
        return None if row is None else _record(row)

    async def claim_key(self, id: str) -> bool:
        """An open ticket takes its dedup key back (a person reopened it), unless another holds it."""
        statement = (
            update(tickets)
            .where(tickets.c.id == id, tickets.c.open_key.is_(None), tickets.c.dedup_key != "")
            .values(open_key=tickets.c.dedup_key)
        )
        try:
            changed = await run(self.engine, lambda c: c.execute(statement).rowcount)
        except exc.IntegrityError:
            return False  # another ticket holds the key: this one stays open without it
        return changed == 1

    async def record_breaches(self, id: str, *, before: str, after: str) -> bool:
        """Compare-and-set of the breaches recorded on a ticket: of everyone who saw the same new
        breach (several gateways, one whose claim ran out), exactly one gets True and counts it."""
        params = {"tid": id, "before": before, "after": after}
        changed = await run(self.engine, lambda c: c.execute(_RECORD_BREACHES, params).rowcount)
        return changed == 1

    async def release_sync(self, ids: list[str], *, token: str) -> None:
        """Gives claimed tickets back early (the platform could not be asked this round)."""
        if ids:
            statement = (
                update(tickets)
                .where(tickets.c.id.in_(ids), tickets.c.sync_token == token)
                .values(sync_lease_until=None, sync_token="")
            )
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
        if not value:
            continue
        if f.name == "request_id":
            # The ticket that operation acted on: its create, or an update, a comment...
            acted_on = select(operations.c.ticket_id).where(operations.c.request_id == value)
            statement = statement.where(tickets.c.id.in_(acted_on.scalar_subquery()))
        elif f.name == "open_only":
            statement = statement.where(tickets.c.status.in_(sorted(OPEN_STATUSES)))
        else:
            statement = statement.where(tickets.c[f.name] == value)
    if after is not None:
        # Row-value comparison: one range scan of ix_tickets_create_time_id on both databases.
        position = tuple_(literal(utc(after.create_time), UtcDateTime()), literal(after.id, String()))
        statement = statement.where(tuple_(tickets.c.create_time, tickets.c.id) < position)
    return statement.order_by(tickets.c.create_time.desc(), tickets.c.id.desc()).limit(limit)


def _sla_params(update_: SlaUpdate, token: str) -> dict[str, Any]:
    return {
        "tid": update_.id,
        "claim": token,
        "new_status": update_.status,
        "new_resolution": update_.resolution[:255],
        "acknowledged_at": None if update_.acknowledged_at is None else utc(update_.acknowledged_at),
        "resolved_at": None if update_.resolved_at is None else utc(update_.resolved_at),
        "sla_state": update_.sla_state,
        "platform_status": update_.platform_status[:64],
    }


def _record(row: Row[Any]) -> TicketRecord:
    values: Mapping[str, Any] = row._mapping
    return TicketRecord(**{k: v for k, v in values.items() if k not in ("observed_at", "recently_resolved")})
