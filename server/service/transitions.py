"""Resolve and reopen: moves through the platform's workflow, exactly once. Each first reads where
the ticket stands (a person may have moved it; Alertmanager repeats resolved notifications), so
resolving a resolved ticket and reopening an open one send nothing; after an ambiguous failure the
look-up is that same read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clients.errors import ErrorKind, PlatformError
from clients.platform import TicketStatus
from server.domain.records import (
    CLOSED,
    DONE_STATUSES,
    OPEN_STATUSES,
    REOPEN,
    RESOLVE,
    RESOLVED,
    TicketRecord,
)
from server.domain.sla import SlaConfig, standing
from server.service.catalog import Catalog
from server.service.comments import ensure_comment
from server.service.engine import Applied, Work
from server.service.follow_up import FollowUpKind
from server.service.ports import DB_NOW, TAKE_DEDUP_KEY


def resolved_changes(
    ticket: TicketRecord, status: str, resolution: str, sla: SlaConfig, now: datetime | None
) -> dict[str, Any]:
    """A ticket resolved now: its status, its resolution, its dedup key given up, and its SLA
    settled (MET, or BREACHED when a target was missed) at the database's now."""
    changes: dict[str, Any] = {"status": status, "resolution": resolution, "open_key": None}
    if ticket.resolved_at is None:
        changes["resolved_at"] = DB_NOW
    tracked = ticket.response_due and ticket.resolution_due and ticket.create_time
    if tracked and now is not None and ticket.resolved_at is None:
        assert ticket.response_due and ticket.resolution_due and ticket.create_time
        result = standing(
            created=ticket.create_time,
            response_due=ticket.response_due,
            resolution_due=ticket.resolution_due,
            acknowledged_at=ticket.acknowledged_at or now,
            resolved_at=now,
            now=now,
            at_risk_ratio=sla.at_risk_ratio,
        )
        changes["sla_state"] = result.state
        if ticket.acknowledged_at is None:
            changes["acknowledged_at"] = DB_NOW
    return changes


def reopened_changes(ticket: TicketRecord, status: str) -> dict[str, Any]:
    """A ticket reopened: at work again, unresolved; its SLA resolution clock keeps running from
    creation (the targets stay), and it takes its dedup key back unless another ticket holds it."""
    changes: dict[str, Any] = {"status": status, "resolution": "", "resolved_at": None}
    if ticket.sla_state:
        changes["sla_state"] = "ON_TRACK"
    if ticket.dedup_key:
        changes["open_key"] = TAKE_DEDUP_KEY
    return changes


class ResolveKind(FollowUpKind):
    kind = RESOLVE

    async def send(self, work: Work) -> Applied:
        platform, external_id = work.ticket.platform, work.ticket.external_id
        now = await work.client.status(external_id, deadline=work.deadline)
        if self._catalog.status(platform, now) in DONE_STATUSES:
            return self._applied(work, now, 1)  # already resolved: nothing to send
        payload = work.operation.payload
        after = await work.client.resolve(
            external_id, payload["resolution"], payload["notes"], deadline=work.deadline
        )
        return self._applied(work, after, 2)

    async def look_up(self, work: Work) -> Applied | None:
        now = await work.client.status(work.ticket.external_id, deadline=work.deadline)
        if self._catalog.status(work.ticket.platform, now) not in DONE_STATUSES:
            return None
        return self._applied(work, now, 1)

    def _applied(self, work: Work, found: TicketStatus, attempts: int) -> Applied:
        status = self._catalog.status(work.ticket.platform, found)
        changes = resolved_changes(
            work.ticket, status, found.resolution, self._catalog.config.sla, work.operation.observed_at
        )
        return Applied(changes, attempts, {"status": status})


class ReopenKind(FollowUpKind):
    kind = REOPEN

    async def send(self, work: Work) -> Applied:
        status, attempts = await ensure_reopened(self._catalog, work)
        reason = work.operation.payload.get("reason", "")
        if reason:
            _, more = await ensure_comment(work, reason, work.operation.marker, internal=True)
            attempts += more
        return Applied(reopened_changes(work.ticket, status), attempts, {"status": status})

    async def look_up(self, work: Work) -> Applied | None:
        now = await work.client.status(work.ticket.external_id, deadline=work.deadline)
        status = self._catalog.status(work.ticket.platform, now)
        if status not in OPEN_STATUSES:
            return None
        if work.operation.payload.get("reason"):
            found = await work.client.find_comment(
                work.ticket.external_id, work.operation.marker, deadline=work.deadline
            )
            if found is None:
                return None
        return Applied(reopened_changes(work.ticket, status), 1, {"status": status})


async def ensure_reopened(catalog: Catalog, work: Work) -> tuple[str, int]:
    """The ticket at work again: (its status, HTTP attempts). A Closed ticket cannot be reopened,
    whatever the platform would let an admin account do: the gateway refuses it itself."""
    platform, external_id = work.ticket.platform, work.ticket.external_id
    now = await work.client.status(external_id, deadline=work.deadline)
    status = catalog.status(platform, now)
    if status in OPEN_STATUSES:
        return status, 1
    if status != RESOLVED:
        raise PlatformError(
            platform=platform, operation="reopen", kind=ErrorKind.NOT_APPLIED, attempts=1,
            message=f"ticket {work.ticket.id} is {status.lower()}"
            + (": a Closed ticket cannot be reopened; open a new one" if status == CLOSED else
               ": a cancelled (or won't-fix) ticket is not reopened; open a new one"),
        )
    after = await work.client.reopen(external_id, deadline=work.deadline)
    return catalog.status(platform, after), 2

