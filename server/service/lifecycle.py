"""Following a ticket through its life: update, comment, resolve, reopen. Each is an operation in the
ledger under its own request_id (one namespace with creates), exactly once through the engine, with
the same replay and mismatch rules as creation. What a caller asks is checked in full first: an
unknown ticket is NOT_FOUND, bad input INVALID_ARGUMENT, a ticket not created (yet) FAILED_PRECONDITION.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from server.domain import errors
from server.domain.outcomes import operation_outcome
from server.domain.records import (
    COMMENT,
    CREATED,
    REOPEN,
    RESOLVE,
    UPDATE,
    OperationRecord,
    TicketRecord,
)
from server.domain.sla import BREACHED
from server.domain.validation import Violation, validate_update
from server.service.catalog import Catalog
from server.service.comments import INTERNAL, PUBLIC, CommentKind, comment_marker
from server.service.engine import Done, Engine, OperationKind, Request
from server.service.ports import Telemetry, TicketStore
from server.service.requests import check_ids, check_ticket_id, fingerprint, summary
from server.service.transitions import ReopenKind, ResolveKind
from server.service.updates import UpdateKind

MAX_RESOLUTION_CHARS = 255


class Lifecycle:
    def __init__(
        self,
        catalog: Catalog,
        engine: Engine,
        tickets: TicketStore,
        telemetry: Telemetry,
        on_breaches: Callable[[TicketRecord], Awaitable[None]],
    ) -> None:
        self._catalog = catalog
        self._engine = engine
        self._tickets = tickets
        self._telemetry = telemetry
        self._on_breaches = on_breaches  # a resolve may settle the SLA as breached: counted once
        self.kinds: dict[str, OperationKind] = {
            UPDATE: UpdateKind(catalog),
            COMMENT: CommentKind(catalog),
            RESOLVE: ResolveKind(catalog),
            REOPEN: ReopenKind(catalog),
        }

    async def update(
        self,
        *,
        ticket_id: str,
        request_id: str,
        fields: Mapping[str, str],
        caller: str,
        deadline: float | None,
    ) -> Done:
        async def checked(ticket: TicketRecord) -> dict[str, Any]:
            rules, limits = self._catalog.rules(ticket.platform), self._catalog.config.limits
            violations = validate_update(rules, fields, limits)
            if violations:
                self._telemetry.validation_errors(ticket.platform, [v.field for v in violations])
                raise errors.InvalidArgument(summary(violations), violations)
            return {"fields": dict(fields)}

        return await self._run(UPDATE, ticket_id, request_id, caller, deadline, checked)

    async def comment(
        self,
        *,
        ticket_id: str,
        request_id: str,
        body: str,
        visibility: str,
        caller: str,
        deadline: float | None,
    ) -> Done:
        async def checked(ticket: TicketRecord) -> dict[str, Any]:
            limit = self._catalog.config.limits.max_field_value_chars
            found = []
            if not body.strip():
                found.append(Violation("body", "is required", "REQUIRED"))
            elif len(body) > limit:
                too_long = f"must be at most {limit} characters, got {len(body)}"
                found.append(Violation("body", too_long, "MAX_LENGTH"))
            if found:
                raise errors.InvalidArgument(summary(found), found)
            return {"body": body, "visibility": visibility if visibility in (PUBLIC, INTERNAL) else INTERNAL}

        return await self._run(COMMENT, ticket_id, request_id, caller, deadline, checked)

    async def resolve(
        self,
        *,
        ticket_id: str,
        request_id: str,
        resolution: str,
        notes: str,
        caller: str,
        deadline: float | None,
    ) -> Done:
        async def checked(ticket: TicketRecord) -> dict[str, Any]:
            found = []
            if len(resolution) > MAX_RESOLUTION_CHARS:
                too_long = f"must be at most {MAX_RESOLUTION_CHARS} characters"
                found.append(Violation("resolution", too_long, "MAX_LENGTH"))
            limit = self._catalog.config.limits.max_field_value_chars
            if len(notes) > limit:
                found.append(Violation("notes", f"must be at most {limit} characters", "MAX_LENGTH"))
            if found:
                raise errors.InvalidArgument(summary(found), found)
            return {"resolution": resolution, "notes": notes}

        done = await self._run(RESOLVE, ticket_id, request_id, caller, deadline, checked)
        if not done.replayed and done.ticket.sla_state == BREACHED:
            await self._on_breaches(done.ticket)
        return done

    async def reopen(
        self, *, ticket_id: str, request_id: str, reason: str, caller: str, deadline: float | None
    ) -> Done:
        async def checked(ticket: TicketRecord) -> dict[str, Any]:
            limit = self._catalog.config.limits.max_field_value_chars
            if len(reason) > limit:
                found = [Violation("reason", f"must be at most {limit} characters", "MAX_LENGTH")]
                raise errors.InvalidArgument(summary(found), found)
            return {"reason": reason}

        return await self._run(REOPEN, ticket_id, request_id, caller, deadline, checked)

    async def _run(
        self,
        kind: str,
        ticket_id: str,
        request_id: str,
        caller: str,
        deadline: float | None,
        checked: Callable[[TicketRecord], Awaitable[dict[str, Any]]],
    ) -> Done:
        started, platform = time.perf_counter(), ""
        try:
            check_ids(request_id)
            ticket = await self._ticket(ticket_id)
            platform = ticket.platform
            self._telemetry.annotate(ticket_id=ticket.id, platform=platform)
            payload = await checked(ticket)
            request_id = request_id or f"gw-{uuid.uuid4()}"
            operation = OperationRecord(
                request_id=request_id,
                kind=kind,
                ticket_id=ticket.id,
                payload_hash=fingerprint(kind, ticket.id, payload),
                payload=payload,
                marker=comment_marker(request_id),
                created_by=caller,
            )
            done = await self._engine.execute(Request(operation, self.kinds[kind], None, deadline))
        except BaseException as exc:
            self._observe(platform, kind, operation_outcome(exc), started)
            raise
        self._observe(platform, kind, operation_outcome(None, replayed=done.replayed), started)
        self._telemetry.annotate(state=done.ticket.state, attempts=done.attempts)
        return done

    async def _ticket(self, ticket_id: str) -> TicketRecord:
        check_ticket_id(ticket_id)
        ticket = await self._tickets.get(ticket_id)
        if ticket is None:
            raise errors.NotFound(f"ticket {ticket_id} not found")
        self._catalog.enabled(ticket.platform)
        if ticket.state != CREATED:
            raise errors.FailedPrecondition(
                f"ticket {ticket_id} is {ticket.state}: only a created ticket can be changed (a PENDING "
                "one settles through its create's request_id)"
            )
        return ticket

    def _observe(self, platform: str, kind: str, outcome: str, started: float) -> None:
        self._telemetry.operation_finished(platform, kind, outcome, time.perf_counter() - started)
        self._telemetry.annotate(outcome=outcome)


