"""The operations ledger: every statement the exactly-once engine runs.

One row per request_id, whatever its kind. Its outcome and the change it makes to its ticket are
written in one transaction, so the ledger and the tickets never disagree. Every state change of a
PENDING operation is fenced by the holder's lease token: a holder whose lease ran out (and was taken
over) can no longer record anything. Leases and "now" are the database's clock (storage/clock.py).

On PostgreSQL the hot path is one statement per step, each its own implicit transaction (one round
trip, no BEGIN/COMMIT): a reservation with its new ticket is one INSERT ... ON CONFLICT DO NOTHING
RETURNING whose new ticket is inserted by a data-modifying CTE only when the operation row was; an
outcome with its ticket's change is one UPDATE of the operation (fenced) in a CTE and an UPDATE of the
ticket joined to it. A statement is atomic as a transaction is, so nothing lands half. These are built
with SQLAlchemy once per shape, then compiled once and run on the asyncpg connection directly
(storage/prepared.py: under half the CPU that SQLAlchemy's execute costs per statement).
SQLite (no data-modifying CTEs) runs the same steps as several statements in one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy import Float, Row, and_, bindparam, case, delete, exc, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement

from server.domain.records import (
    FAILED,
    PENDING,
    PERMANENT_KINDS,
    RESOLVED,
    SUCCEEDED,
    OperationRecord,
    TicketRecord,
)
from server.service.ports import DB_NOW, TAKE_DEDUP_KEY, KeyClaim, KeyTaken, NewTicket
from server.storage.clock import db_time
from server.storage.database import in_transaction, run
from server.storage.prepared import Prepared, fetch_row
from server.storage.schema import (
    MAX_CHARS,
    OPERATION_MAX_CHARS,
    operations,
    tickets,
)

MAX_LAST_ERROR_CHARS = 2000
MAX_BATCH = 1000

_OPERATION_COLUMNS = tuple(c.name for c in operations.c)
_TICKET_COLUMNS = tuple(c.name for c in tickets.c)
# The database's "now" as SQL: one immutable element, reused rather than built per statement.
_NOW = db_time()
_OBSERVED = _NOW.label("observed_at")
_RETURN_OPERATION = (*operations.c, _OBSERVED)

if set(_OPERATION_COLUMNS) != {f.name for f in dataclasses.fields(OperationRecord)} - {"observed_at"}:
    raise RuntimeError("OperationRecord and the operations table disagree on columns")
if set(_TICKET_COLUMNS) != {f.name for f in dataclasses.fields(TicketRecord)}:
    raise RuntimeError("TicketRecord and the tickets table disagree on columns")

_BY_REQUEST_ID = select(*_RETURN_OPERATION).where(operations.c.request_id == bindparam("rid"))
_TICKET_BY_ID = select(tickets).where(tickets.c.id == bindparam("tid"))
_FENCE = and_(
    operations.c.request_id == bindparam("rid"),
    operations.c.state == PENDING,
    operations.c.lease_token == bindparam("token"),
)


def _param(column: ColumnElement[Any], prefix: str) -> BindParameter[Any]:
    # Prefixed: a bound parameter named as the column it sets is reserved by SQLAlchemy.
    return bindparam(f"{prefix}{column.name}", type_=column.type)


def _reserve_statement(with_ticket: bool, sla: bool) -> Any:
    """PostgreSQL: the reservation (and its new ticket) as one statement, returning the operation
    row when it was inserted, nothing when the request_id was taken."""
    values: dict[str, Any] = {name: _param(operations.c[name], "o_") for name in _OPERATION_COLUMNS}
    values.update(
        lease_until=db_time(bindparam("lease_seconds", type_=Float())),
        create_time=_NOW,
        update_time=_NOW,
    )
    reserved = (
        postgresql.insert(operations)
        .values(values)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(*_RETURN_OPERATION)
        .cte("reserved")
    )
    statement = select(*reserved.c)
    if with_ticket:
        ticket: dict[str, Any] = {name: _param(tickets.c[name], "t_") for name in _TICKET_COLUMNS}
        ticket.update(create_time=_NOW, update_time=_NOW)
        if sla:
            ticket.update(
                response_due=db_time(bindparam("response_seconds", type_=Float())),
                resolution_due=db_time(bindparam("resolution_seconds", type_=Float())),
            )
        names = list(ticket)
        rows = select(*(ticket[name].label(name) for name in names)).where(
            exists(select(reserved.c.request_id))
        )
        statement = statement.add_cte(tickets.insert().from_select(names, rows).cte("new_ticket"))
    return statement


_RESERVE = {(t, sla): _reserve_statement(t, sla) for t in (False, True) for sla in (False, True)}


def _settle_statement(outcome: tuple[str, ...], changes: tuple[tuple[str, bool], ...]) -> Any:
    """PostgreSQL: an outcome (fenced) and its ticket's change as one statement, returning the ticket
    as changed; nothing when the holder was fenced out. changes: (column, whether it is DB_NOW)."""
    settled = (
        update(operations)
        .where(_FENCE)
        .values({**{name: _param(operations.c[name], "o_") for name in outcome}, "update_time": _NOW})
        .returning(operations.c.ticket_id)
        .cte("settled")
    )
    ticket_values = {name: _NOW if now else _param(tickets.c[name], "t_") for name, now in changes}
    return (
        update(tickets)
        .where(tickets.c.id == settled.c.ticket_id)
        .values({**ticket_values, "update_time": _NOW})
        .returning(*tickets.c)
        .add_cte(settled)
    )


def _insert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(operations).on_conflict_do_nothing(index_elements=["request_id"])


class OperationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = _insert(engine.dialect.name)
        self._one_statement = engine.dialect.name == "postgresql"
        if self._one_statement:
            self._reserves = {shape: Prepared(stmt, engine.dialect) for shape, stmt in _RESERVE.items()}
            self._by_request_id = Prepared(_BY_REQUEST_ID, engine.dialect)
        # (outcome columns, ticket change columns) -> its statement: bounded by the code's shapes.
        self._settles: dict[tuple[tuple[str, ...], tuple[tuple[str, bool], ...]], Prepared] = {}

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, request_id: str) -> OperationRecord | None:
        if self._one_statement:
            found = await fetch_row(self.engine, self._by_request_id, {"rid": request_id})
            return None if found is None else OperationRecord(**found)
        row = await run(self.engine, lambda c: c.execute(_BY_REQUEST_ID, {"rid": request_id}).first())
        return None if row is None else _operation(row)

    async def ticket(self, ticket_id: str) -> TicketRecord | None:
        row = await run(self.engine, lambda c: c.execute(_TICKET_BY_ID, {"tid": ticket_id}).first())
        return None if row is None else _ticket(row)

    async def expired(self, limit: int) -> list[OperationRecord]:
        """PENDING operations whose holder's lease ran out (by the database's clock), oldest first."""
        if not 1 <= limit <= MAX_BATCH:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH}")
        statement = (
            select(*_RETURN_OPERATION)
            .where(operations.c.state == PENDING, operations.c.lease_until <= _NOW)
            .order_by(operations.c.lease_until, operations.c.request_id)
            .limit(limit)
        )
        rows = await run(self.engine, lambda c: c.execute(statement).all())
        return [_operation(row) for row in rows]

    # -- writes ---------------------------------------------------------------------------------

    async def reserve(
        self,
        operation: OperationRecord,
        ticket: NewTicket | None,
        *,
        lease_seconds: float,
        claim: KeyClaim | None = None,
    ) -> tuple[OperationRecord, bool]:
        """Insert the operation PENDING under its request_id, holding its lease, in one transaction
        with what it needs: a create's new ticket, or a dedup decision (claim). Returns (it, True);
        or (the existing one, False). A dedup decision that lost its race raises KeyTaken, and
        nothing is written: a new ticket whose key another holds, a reopen of a ticket that
        someone reopened first, an attach to a ticket that gave its key up."""
        columns = {name: getattr(operation, name) for name in _OPERATION_COLUMNS}
        columns.update(state=PENDING, last_error="", error_kind="", uncertain_since=None)
        _check(columns, OPERATION_MAX_CHARS)
        ticket_columns = None if ticket is None else _new_ticket_columns(ticket)
        if self._one_statement and claim is None:
            return await self._reserve_one(operation, ticket, ticket_columns, lease_seconds)
        values = {
            **columns,
            "lease_until": db_time(lease_seconds),
            "create_time": _NOW,
            "update_time": _NOW,
        }
        ticket_values = None if ticket is None else _with_times(ticket, ticket_columns or {})
        statement = self._insert.values(values).returning(*_RETURN_OPERATION)

        def work(connection: Connection) -> tuple[Row[Any] | None, bool]:
            inserted = connection.execute(statement).first()
            if inserted is None:
                # Taken: read the one that won (a failed dedup create may have been forgotten
                # in between, then None: the caller tries again).
                existing = connection.execute(_BY_REQUEST_ID, {"rid": operation.request_id}).first()
                raise _Existing(existing)
            if claim is not None:
                # The operation's row first, then its ticket's, as every transaction that writes both
                # does (an outcome, a take-over): claiming the ticket first deadlocked on PostgreSQL
                # against the same request_id being settled by another gateway.
                payload = {**operation.payload, **_claimed(connection, claim)}
                inserted = connection.execute(
                    update(operations)
                    .where(operations.c.request_id == operation.request_id)
                    .values(payload=payload)
                    .returning(*_RETURN_OPERATION)
                ).first()
            if ticket_values is not None:
                try:
                    connection.execute(tickets.insert().values(ticket_values))
                except exc.IntegrityError:
                    raise KeyTaken from None  # another ticket holds the dedup key
            return inserted, True

        try:
            row, reserved = await in_transaction(self.engine, work)
        except _Existing as taken:
            row, reserved = taken.row, False
        if row is None:
            return await self.reserve(operation, ticket, lease_seconds=lease_seconds, claim=claim)
        return _operation(row), reserved

    async def _reserve_one(
        self,
        operation: OperationRecord,
        ticket: NewTicket | None,
        ticket_columns: Mapping[str, Any] | None,
        lease_seconds: float,
    ) -> tuple[OperationRecord, bool]:
        """reserve() without a claim on PostgreSQL: one statement, then (only when the request_id
        was taken) one read of the operation that holds it."""
        params: dict[str, Any] = {f"o_{name}": getattr(operation, name) for name in _OPERATION_COLUMNS}
        params.update(
            o_state=PENDING, o_last_error="", o_error_kind="", o_uncertain_since=None,
            lease_seconds=float(lease_seconds),
        )  # fmt: skip
        sla = ticket is not None and ticket.sla is not None
        if ticket is not None and ticket_columns is not None:
            params.update({f"t_{k}": v for k, v in ticket_columns.items()})
            if ticket.sla is not None:
                params["response_seconds"] = float(ticket.sla.response_seconds)
                params["resolution_seconds"] = float(ticket.sla.resolution_seconds)
        try:
            found = await fetch_row(self.engine, self._reserves[ticket is not None, sla], params)
        except asyncpg.IntegrityConstraintViolationError:
            raise KeyTaken from None  # another ticket holds the dedup key: nothing was written
        if found is not None:
            return OperationRecord(**found), True
        # Taken: the one that won (a failed dedup create may have been forgotten in between, then
        # None: try again).
        existing = await self.get(operation.request_id)
        if existing is None:
            return await self._reserve_one(operation, ticket, ticket_columns, lease_seconds)
        return existing, False

    async def forget_failed(self, request_id: str) -> bool:
        """Drops an operation that FAILED for a reason a repeat may retry, so that repeat decides
        afresh (a dedup create: the key may have passed to another ticket meanwhile). Nothing it did
        reached the platform; its ticket stays, FAILED."""
        statement = delete(operations).where(
            operations.c.request_id == request_id,
            operations.c.state == FAILED,
            operations.c.error_kind.not_in(sorted(PERMANENT_KINDS)),
        )
        return await run(self.engine, lambda c: c.execute(statement).rowcount) == 1

    async def take_over(
        self,
        request_id: str,
        *,
        token: str,
        lease_seconds: float,
        ticket_changes: Mapping[str, Any] | None = None,
        retry_failed: bool = True,
    ) -> OperationRecord | None:
        """Compare-and-set a new holder: a PENDING operation whose lease ran out, or (retry_failed,
        for a repeat of its request_id) one that FAILED for a reason a repeat may retry. Of
        concurrent callers exactly one gets it, the rest None.

        A PENDING operation's earlier holder may have sent it without recording so: it becomes
        uncertain (as of its lease's end, if it was not already), so the new holder looks before
        it sends. ticket_changes apply to its ticket in the same transaction."""
        expired = and_(operations.c.state == PENDING, operations.c.lease_until <= _NOW)
        retryable = and_(
            operations.c.state == FAILED, operations.c.error_kind.not_in(sorted(PERMANENT_KINDS))
        )
        earlier_send_ended = func.coalesce(operations.c.uncertain_since, operations.c.lease_until)
        statement = (
            update(operations)
            .where(
                operations.c.request_id == request_id, or_(expired, retryable) if retry_failed else expired
            )
            .values(
                state=PENDING,
                lease_token=token,
                lease_until=db_time(lease_seconds),
                uncertain_since=case(
                    (operations.c.state == PENDING, earlier_send_ended),
                    else_=operations.c.uncertain_since,
                ),
                update_time=_NOW,
            )
            .returning(*_RETURN_OPERATION)
        )
        changes = dict(ticket_changes or {})

        def work(connection: Connection) -> Row[Any] | None:
            row = connection.execute(statement).first()
            if row is not None and changes:
                connection.execute(_ticket_update(row.ticket_id, changes))
            return row

        row = await in_transaction(self.engine, work)
        return None if row is None else _operation(row)

    async def note_uncertain(
        self, request_id: str, *, token: str, attempts: int, error: str, release: bool, sent: bool = True
    ) -> OperationRecord | None:
        """An attempt's outcome is unknown: it may still be applied. Records when (the database's
        now), so the look-up comes only once the platform can no longer be applying it; sent=False
        (nothing went out since it was last marked) keeps an earlier mark. release: the holder gives
        up (its caller's time ran out) and lets a repeat or the reconciler finish; else it keeps its
        lease and looks itself. None when the holder was fenced out."""
        since = _NOW if sent else func.coalesce(operations.c.uncertain_since, _NOW)
        values: dict[str, Any] = {
            "uncertain_since": since,
            "attempts": attempts,
            "last_error": error[:MAX_LAST_ERROR_CHARS],
            "update_time": _NOW,
        }
        if release:
            values["lease_until"] = _NOW
        statement = update(operations).where(_FENCE).values(values).returning(*_RETURN_OPERATION)
        params = {"rid": request_id, "token": token}
        row = await run(self.engine, lambda c: c.execute(statement, params).first())
        return None if row is None else _operation(row)

    async def succeed(
        self,
        request_id: str,
        *,
        token: str,
        attempts: int,
        result: Mapping[str, Any],
        ticket_changes: Mapping[str, Any],
    ) -> TicketRecord | None:
        """PENDING -> SUCCEEDED with its result, and the ticket's change, in one transaction.
        Returns the ticket as changed; None when the holder was fenced out (nothing written)."""
        values = {
            "state": SUCCEEDED,
            "attempts": attempts,
            "result": dict(result),
            "last_error": "",
            "error_kind": "",
            "lease_token": "",
            "lease_until": None,
            "uncertain_since": None,
            "update_time": _NOW,
        }
        return await self._settle(request_id, token, values, ticket_changes)

    async def fail(
        self,
        request_id: str,
        *,
        token: str,
        attempts: int,
        error: str,
        error_kind: str,
        ticket_changes: Mapping[str, Any],
    ) -> TicketRecord | None:
        """PENDING -> FAILED: definitely not applied. error_kind in PERMANENT_KINDS replays as the
        same error; any other lets a repeat of the request_id try again (take_over)."""
        if not error_kind:
            raise ValueError("a failure needs its error_kind")
        values = {
            "state": FAILED,
            "attempts": attempts,
            "last_error": error[:MAX_LAST_ERROR_CHARS],
            "error_kind": error_kind,
            "lease_token": "",
            "lease_until": None,
            "uncertain_since": None,
            "update_time": _NOW,
        }
        return await self._settle(request_id, token, values, ticket_changes)

    async def _settle(
        self, request_id: str, token: str, values: dict[str, Any], ticket_changes: Mapping[str, Any]
    ) -> TicketRecord | None:
        changes = dict(ticket_changes)
        _check(changes, MAX_CHARS)

        # TAKE_DEDUP_KEY is a compare-and-set of its own; a None open_key (a failed create, a resolve
        # giving the key up) is an ordinary change and must stay in the update.
        take_key = changes.get("open_key") is TAKE_DEDUP_KEY
        if take_key:
            del changes["open_key"]

        if self._one_statement and not take_key:
            return await self._settle_one(request_id, token, values, changes)
        statement = update(operations).where(_FENCE).values(values).returning(operations.c.ticket_id)

        def work(connection: Connection) -> Row[Any] | None:
            settled = connection.execute(statement, {"rid": request_id, "token": token}).first()
            if settled is None:
                return None
            if take_key:
                _take_key(connection, settled.ticket_id)
            return connection.execute(
                _ticket_update(settled.ticket_id, changes).returning(*tickets.c)
            ).first()

        row = await in_transaction(self.engine, work)
        return None if row is None else _ticket(row)

    async def _settle_one(
        self, request_id: str, token: str, values: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> TicketRecord | None:
        """_settle on PostgreSQL: one statement, built once per shape of outcome and change."""
        outcome = tuple(name for name, value in values.items() if not isinstance(value, ClauseElement))
        shape = tuple((name, value is DB_NOW) for name, value in changes.items())
        statement = self._settles.get((outcome, shape))
        if statement is None:
            statement = Prepared(_settle_statement(outcome, shape), self.engine.dialect)
            self._settles[outcome, shape] = statement
        params: dict[str, Any] = {"rid": request_id, "token": token}
        params.update({f"o_{name}": values[name] for name in outcome})
        params.update({f"t_{name}": value for name, value in changes.items() if value is not DB_NOW})
        found = await fetch_row(self.engine, statement, params)
        return None if found is None else TicketRecord(**found)


class _Existing(Exception):
    """The request_id was taken: carries the row out of the rolled-back transaction."""

    def __init__(self, row: Row[Any] | None) -> None:
        super().__init__("request_id taken")
        self.row = row


def _claimed(connection: Connection, claim: KeyClaim) -> dict[str, Any]:
    """Makes a dedup decision good inside the reservation's transaction; raises KeyTaken when it
    lost a race. Returns what the operation's payload records of it."""
    if claim.reopen:
        statement = (
            update(tickets)
            .where(
                tickets.c.id == claim.ticket_id, tickets.c.open_key.is_(None), tickets.c.status == RESOLVED
            )
            .values(open_key=claim.key, update_time=_NOW)
        )
        try:
            taken = connection.execute(statement).rowcount
        except exc.IntegrityError:
            raise KeyTaken from None
        if taken != 1:
            raise KeyTaken
        return {}
    holds = and_(tickets.c.id == claim.ticket_id, tickets.c.open_key == claim.key)
    # Of concurrent identical attaches exactly one sees a different hash and adds the comment.
    first = (
        update(tickets)
        .where(holds, tickets.c.last_comment_hash != claim.comment_hash)
        .values(last_comment_hash=claim.comment_hash)
    )
    if connection.execute(first).rowcount == 1:
        return {"comment": True}
    if connection.execute(select(tickets.c.id).where(holds)).first() is None:
        raise KeyTaken
    return {"comment": False}


def _take_key(connection: Connection, ticket_id: str) -> None:
    """A reopened ticket takes its dedup key back, unless another ticket opened under it meanwhile
    (then it stays open without the key: the unique index says no, and only this part is undone)."""
    statement = (
        update(tickets)
        .where(tickets.c.id == ticket_id, tickets.c.open_key.is_(None), tickets.c.dedup_key != "")
        .values(open_key=tickets.c.dedup_key)
    )
    try:
        with connection.begin_nested():
            connection.execute(statement)
    except exc.IntegrityError:
        pass


def _ticket_update(ticket_id: str, changes: Mapping[str, Any]) -> Any:
    values = {name: _NOW if value is DB_NOW else value for name, value in changes.items()}
    return update(tickets).where(tickets.c.id == ticket_id).values({**values, "update_time": _NOW})


def _new_ticket_columns(new: NewTicket) -> dict[str, Any]:
    """A new ticket's columns but its times (the database's clock sets those), checked."""
    record = new.record
    values = {name: getattr(record, name) for name in _TICKET_COLUMNS}
    del values["create_time"], values["update_time"], values["response_due"], values["resolution_due"]
    if new.sla is not None:
        values.update(priority=new.sla.priority, sla_state=new.sla.state)
    _check(values, MAX_CHARS)
    return values


def _with_times(new: NewTicket, columns: Mapping[str, Any]) -> dict[str, Any]:
    """The new ticket's columns with its times, as SQL on the database's clock."""
    values = {**columns, "create_time": _NOW, "update_time": _NOW}
    if new.sla is not None:
        values.update(
            response_due=db_time(new.sla.response_seconds),
            resolution_due=db_time(new.sla.resolution_seconds),
        )
    return values


def _check(values: Mapping[str, Any], limits: Mapping[str, int]) -> None:
    """PostgreSQL rejects an over-long string and SQLite keeps it: reject it here, on both."""
    for name, limit in limits.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise ValueError(f"{name} is longer than {limit} characters")


def _operation(row: Row[Any]) -> OperationRecord:
    return OperationRecord(**row._mapping)


def _ticket(row: Row[Any]) -> TicketRecord:
    return TicketRecord(**row._mapping)
