"""One open ticket per dedup key: create, attach or reopen, decided by the database, never a search.

A create with a dedup key K for platform P:
- an open ticket holds K (tickets.open_key, unique per platform): attach to it (a comment, unless
  the gateway's last comment there was the same; a more urgent priority raises it), after checking
  on the platform that it is still open (a person may have resolved it since the last sync); a
  ticket still being created is waited for, bounded by the caller's deadline;
- else the latest ticket opened under K was resolved within the reopen window, is not closed and
  not resolved as won't-fix: reopen it (it takes K back) and comment;
- else create a ticket holding K.
Each decision is made good in the same transaction as the operation's reservation (a unique insert,
a compare-and-set); one that lost a race to another create is made again. So concurrent creates with
one key, on any number of gateways, end with one ticket, one CREATED and the rest ATTACHED.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from clients.errors import PlatformError
from clients.platform import TicketStatus
from server.domain import errors
from server.domain.records import (
    CREATE,
    FAILED,
    OPEN_STATUSES,
    PENDING,
    RESOLVED,
    OperationRecord,
    TicketRecord,
)
from server.service.catalog import Catalog
from server.service.comments import comment_hash
from server.service.creation import ATTACH, NEW, REOPEN_DECISION, CreateKind
from server.service.engine import DecideAfresh, Done, Engine, Request
from server.service.platform_errors import caller_error
from server.service.ports import KeyClaim, KeyTaken, NewTicket, OperationLedger, TicketStore

MAX_DECISIONS = 20  # races lost in a row before giving up: bounded work whatever the contention
_POLL = 0.05  # how often a create waiting for the key's ticket to be created looks again
_WAITED = object()


@dataclass(frozen=True)
class Create:
    """One create, as the caller asked it."""

    operation: OperationRecord  # request_id, payload hash, marker, created_by
    ticket: TicketRecord  # the ticket it would open (fields, marker, job, template, caller)
    new: NewTicket  # with its SLA targets
    comment: str  # what a repeat adds to the open ticket
    deadline: float | None


class Deduplication:
    def __init__(
        self,
        catalog: Catalog,
        engine: Engine,
        ledger: OperationLedger,
        tickets: TicketStore,
        kind: CreateKind,
        in_flight_wait_seconds: float,
    ) -> None:
        self._catalog = catalog
        self._engine = engine
        self._ledger = ledger
        self._tickets = tickets
        self._kind = kind
        self._wait = in_flight_wait_seconds

    async def create(self, create: Create) -> Done:
        request_id = create.operation.request_id
        existing = await self._ledger.get(request_id)
        if existing is not None:
            if existing.state == FAILED and existing.kind == CREATE and not existing.permanent:
                await self._forget(request_id)
            else:  # a repeat: the engine's rules (replay, wait, mismatch), nothing decided
                repeat = Request(create.operation, self._kind, None, create.deadline)
                try:
                    return await self._engine.execute(repeat)
                except DecideAfresh:  # it failed while this repeat waited for it
                    await self._forget(request_id)
        until = self._end(create.deadline)
        lost = 0
        while lost < MAX_DECISIONS:
            request = await self._decide(create, until)
            if request is _WAITED:
                continue  # bounded by the caller's time, not by the count
            if isinstance(request, Request):
                try:
                    return await self._engine.execute(request)
                except KeyTaken:
                    pass  # another create won that race
                except DecideAfresh:  # a repeat of this request_id reserved it first, and it failed
                    await self._forget(request_id)
            lost += 1  # a race lost, or a ticket found closed meanwhile: decide again
        raise errors.Unavailable(
            f"dedup key {create.ticket.dedup_key!r} is contended (decided {MAX_DECISIONS} times); retry",
            retry_after_seconds=1.0,
        )

    async def _forget(self, request_id: str) -> None:
        """Nothing of a failed create reached the platform, and it gave its key up: its repeat
        decides afresh (the key may have passed to another ticket meanwhile), never retries it as
        it stands. (A concurrent repeat may have forgotten it first: then this one follows that.)"""
        await self._ledger.forget_failed(request_id)

    async def _decide(self, create: Create, until: float) -> Request | object | None:
        """The next decision; _WAITED after waiting for the key's ticket to be created, None after
        correcting what the gateway knew of the key's tickets (either way: decide again)."""
        platform, key = create.ticket.platform, create.ticket.dedup_key
        holder = await self._tickets.key_holder(platform, key)
        if holder is not None:
            if holder.state == PENDING:
                await self._await_creation(holder, until)
                return _WAITED
            if not await self._still_open(holder, create.deadline):
                return None
            return self._attach(create, holder)
        window = self._catalog.policy(platform).reopen_window_seconds
        latest = await self._tickets.latest_with_key(platform, key, window)
        if latest is not None and self._reopenable(*latest):
            ticket = latest[0]
            if not await self._still_resolved(ticket, create.deadline):
                return None
            return self._reopen(create, ticket)
        new = replace(create.new, record=replace(create.ticket, open_key=key))
        operation = replace(create.operation, payload={**create.operation.payload, "decision": NEW})
        return Request(operation, self._kind, new, create.deadline)

    # -- attach ---------------------------------------------------------------------------------

    def _attach(self, create: Create, holder: TicketRecord) -> Request:
        spec = self._catalog.specs[holder.platform]
        raised: dict[str, str] = {}
        if self._catalog.policy(holder.platform).raise_priority_on_attach:
            wanted = spec.priority_rank(spec.priority_of(create.ticket.fields))
            current = spec.priority_rank(spec.priority_of(holder.fields))
            if wanted is not None and (current is None or wanted < current):
                fields = create.ticket.fields
                raised = {f: fields[f] for f in spec.priority_fields if f in fields}
        payload = {
            **create.operation.payload,
            "decision": ATTACH,
            "comment_text": create.comment,
            "raise": raised,
        }
        operation = replace(create.operation, ticket_id=holder.id, payload=payload)
        claim = KeyClaim(
            holder.id, create.ticket.dedup_key, reopen=False, comment_hash=comment_hash(create.comment)
        )
        return Request(operation, self._kind, None, create.deadline, claim)

    async def _still_open(self, holder: TicketRecord, deadline: float | None) -> bool:
        """A person may have resolved it since the last sync: the platform says. Not open any more,
        it gives the key up (recorded), and the caller decides again."""
        found = await self._status(holder, deadline)
        status = self._catalog.status(holder.platform, found)
        if status in OPEN_STATUSES:
            return True
        await self._tickets.record_status(holder.id, status=status, resolution=found.resolution)
        return False

    async def _await_creation(self, holder: TicketRecord, until: float) -> None:
        """The ticket holding the key is being created: wait for it (its creation may fail for good,
        then the key is free). Abandoned by a crashed gateway, it is settled here and now."""
        operation = await self._ledger.get(holder.request_id)
        if operation is not None and operation.lease_expired:
            await self._engine.settle(operation, self._kind)
            return
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise errors.Unavailable(
                f"ticket {holder.id}, which holds dedup key {holder.dedup_key!r}, is still being "
                "created; repeat the request later (nothing of it was sent)",
                retry_after_seconds=1.0,
            )
        await asyncio.sleep(min(_POLL, remaining))

    # -- reopen ---------------------------------------------------------------------------------

    def _reopenable(self, ticket: TicketRecord, recently_resolved: bool) -> bool:
        policy = self._catalog.policy(ticket.platform)
        return (
            policy.reopen_window_seconds > 0
            and recently_resolved
            and ticket.status == RESOLVED
            and ticket.resolution not in policy.wont_fix_resolutions
        )

    async def _still_resolved(self, ticket: TicketRecord, deadline: float | None) -> bool:
        found = await self._status(ticket, deadline)
        status = self._catalog.status(ticket.platform, found)
        if status == RESOLVED:
            return True
        # Closed since, cancelled, or reopened by a person (who then holds no key: it may take it).
        await self._tickets.record_status(ticket.id, status=status, resolution=found.resolution)
        if status in OPEN_STATUSES:
            await self._tickets.claim_key(ticket.id)
        return False

    async def _status(self, ticket: TicketRecord, deadline: float | None) -> TicketStatus:
        """The ticket's status on its platform. This read is outside the engine, so its failure is
        told to the caller here, as the engine tells a write's (a platform down: UNAVAILABLE)."""
        client = self._engine.client(ticket.platform)
        try:
            return await client.status(ticket.external_id, deadline=deadline)
        except PlatformError as exc:
            rules, spec = self._catalog.rules(ticket.platform), self._catalog.specs[ticket.platform]
            raise caller_error(exc, rules, spec, ticket.id) from None

    def _reopen(self, create: Create, ticket: TicketRecord) -> Request:
        payload = {
            **create.operation.payload, "decision": REOPEN_DECISION, "comment_text": create.comment
        }
        operation = replace(create.operation, ticket_id=ticket.id, payload=payload)
        claim = KeyClaim(ticket.id, create.ticket.dedup_key, reopen=True)
        return Request(operation, self._kind, None, create.deadline, claim)

    def _end(self, deadline: float | None) -> float:
        own = time.monotonic() + self._wait
        return own if deadline is None else min(own, deadline - 0.1)


def attach_comment(fields: Mapping[str, str], template_comment: str) -> str:
    """What a repeat adds to the open ticket: the template's repeat comment, else the rendered
    summary and description."""
    if template_comment:
        return template_comment
    parts = [fields.get("summary", ""), fields.get("description", "")]
    return "\n\n".join(p for p in parts if p) or "The problem happened again."
