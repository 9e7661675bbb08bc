"""The create operation kind. A create without a dedup key opens a ticket: send the payload with the
ticket's marker; look the marker up. With a dedup key, the decision made at reservation (see
service/dedup.py) may instead attach to the open ticket holding the key (a more urgent priority, a
comment) or reopen the one last resolved under it (a transition, a comment): each step is checked
before it is written again, so the whole stays exactly once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from clients.errors import ErrorKind, PlatformError
from clients.platform import CreatedTicket
from server.domain import errors
from server.domain.payload import build_payload
from server.domain.records import CREATE, CREATED, FAILED, OPEN, PENDING, OperationRecord
from server.service.catalog import Catalog
from server.service.comments import ensure_comment
from server.service.engine import Applied, Work
from server.service.marker_watch import MarkerWatch
from server.service.platform_errors import to_caller
from server.service.transitions import ensure_reopened, reopened_changes
from server.service.updates import apply_fields

log = logging.getLogger("itsm.dedup")

CREATED_OUTCOME, ATTACHED, REOPENED = "CREATED", "ATTACHED", "REOPENED"
# payload["decision"]
NEW, ATTACH, REOPEN_DECISION = "create", "attach", "reopen"


class CreateKind:
    kind = CREATE
    searches = True  # a new ticket is found by its marker through the platform's search

    def __init__(self, catalog: Catalog, markers: MarkerWatch) -> None:
        self._catalog = catalog
        self._markers = markers

    async def send(self, work: Work) -> Applied:
        decision = work.operation.payload.get("decision", NEW)
        if decision == ATTACH:
            return await self._attach(work)
        if decision == REOPEN_DECISION:
            return await self._reopen(work)
        return await self._create(work)

    async def look_up(self, work: Work) -> Applied | None:
        decision = work.operation.payload.get("decision", NEW)
        if decision == NEW:
            found = await work.client.find_by_marker(work.ticket.marker, deadline=work.deadline)
            return None if found is None else self._created(work, found)
        # Attach and reopen check each of their steps before writing it again: sending again is
        # the look-up.
        return None

    # -- a new ticket ---------------------------------------------------------------------------

    async def _create(self, work: Work) -> Applied:
        ticket = work.ticket
        try:
            payload = build_payload(self._catalog.rules(ticket.platform), ticket.fields)
        except (KeyError, ValueError) as exc:  # the field mapping changed under a stored ticket
            raise errors.FailedPrecondition(
                f"ticket {ticket.id}'s stored fields no longer fit the configured field mapping: {exc}"
            ) from None
        created = await work.client.create(
            payload, ticket.marker, deadline=work.deadline, dedup_key=ticket.dedup_key
        )
        await self._markers.observe(ticket.platform, created.marker_kept, ticket.id, created.external_key)
        return self._created(work, created)

    def _created(self, work: Work, created: CreatedTicket) -> Applied:
        changes: dict[str, Any] = {
            "state": CREATED,
            "status": OPEN,
            "external_id": created.external_id,
            "external_key": created.external_key,
            "url": created.url,
            "last_error": "",
            "attempts": work.total_attempts + created.retry.attempts,
        }
        return Applied(changes, created.retry.attempts, {"outcome": CREATED_OUTCOME})

    # -- a repeat of an open ticket's problem ---------------------------------------------------

    async def _attach(self, work: Work) -> Applied:
        payload, attempts = work.operation.payload, 0
        changes: dict[str, Any] = {}
        if payload.get("raise"):
            try:
                raised = await apply_fields(self._catalog, work, payload["raise"])
                changes.update(raised.ticket_changes)
                attempts += raised.attempts
            except PlatformError as exc:
                if exc.kind is not ErrorKind.NOT_APPLIED:
                    raise
                # The platform keeps the priority (an ACL): the repeat still attaches.
                log.warning("raising the priority of ticket %s was not applied: %s", work.ticket.id, exc)
        if payload.get("comment"):
            text = payload["comment_text"]
            _, more = await ensure_comment(work, text, work.operation.marker, internal=True)
            attempts += more
        return Applied(changes, attempts, {"outcome": ATTACHED})

    # -- a recurrence of a resolved ticket's problem --------------------------------------------

    async def _reopen(self, work: Work) -> Applied:
        status, attempts = await ensure_reopened(self._catalog, work)
        _, more = await ensure_comment(
            work, work.operation.payload["comment_text"], work.operation.marker, internal=True
        )
        return Applied(reopened_changes(work.ticket, status), attempts + more, {"outcome": REOPENED})

    # -- what the engine asks of every kind -----------------------------------------------------

    def failed(self, work: Work, error: str) -> Mapping[str, Any]:
        decision = work.operation.payload.get("decision", NEW)
        if decision == NEW:
            # Not on the platform: the ticket never existed there, and gives its dedup key up.
            return {
                "state": FAILED, "last_error": error[:2000], "attempts": work.total_attempts, "open_key": None
            }
        if decision == REOPEN_DECISION:
            return {"open_key": None}  # the key the reopen took at reservation
        return {}

    def retried(self, operation: OperationRecord) -> Mapping[str, Any]:
        return {"state": PENDING} if operation.payload.get("decision", NEW) == NEW else {}

    def decides_afresh(self, operation: OperationRecord) -> bool:
        # A failed dedup create gave its key up (failed()): retried as it stands, it would open a
        # second ticket for a key another create may hold by now.
        return "decision" in operation.payload

    def to_error(self, work: Work, error: PlatformError) -> errors.GatewayError:
        return to_caller(self._catalog, work, error)
