"""The ports the service works through. Storage and the observability layer implement them; the
platform clients implement clients.platform.PlatformClient. The composition root hands them in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from server.domain.records import OperationRecord, TicketRecord


class InvalidPageToken(ValueError):
    """A page token that is malformed or was issued for other filters: INVALID_ARGUMENT."""


@dataclass(frozen=True)
class TicketFilter:
    """Equality filters of a ticket list; "" means no filter. Field names are column names."""

    platform: str = ""
    state: str = ""
    job_id: str = ""
    request_id: str = ""
    external_key: str = ""
    sla_state: str = ""
    dedup_key: str = ""
    status: str = ""
    open_only: bool = False

    def fingerprint(self) -> str:
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SlaTargets:
    """A new ticket's SLA: its due times are the database's now plus these."""

    priority: str
    response_seconds: int
    resolution_seconds: int
    state: str


@dataclass(frozen=True)
class NewTicket:
    """A ticket to reserve with its create operation; the database stamps its times."""

    record: TicketRecord
    sla: SlaTargets | None = None


@dataclass(frozen=True)
class TicketPage:
    records: list[TicketRecord]
    next_page_token: str  # "" on the last page
    # The token of a page that starts after records[i]: a caller that must send fewer records (a
    # message size limit) ends its page there.
    token_after: Callable[[int], str] = field(repr=False, default=lambda index: "")


@dataclass(frozen=True, kw_only=True, slots=True)
class SlaUpdate:
    """One status sync's findings for one ticket."""

    id: str
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    sla_state: str
    platform_status: str
    status: str = ""  # the gateway's status; "" leaves it (and the ticket's dedup key) as it was
    resolution: str = ""


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


# Values of a ticket change the ledger fills in itself: the database's now, and "take the dedup key
# back if no other ticket holds it" (a reopen).
DB_NOW = _Sentinel("DB_NOW")
TAKE_DEDUP_KEY = _Sentinel("TAKE_DEDUP_KEY")


class KeyTaken(Exception):
    """A dedup decision lost a race (another create took the key, or reopened the ticket first):
    nothing was written; decide again."""


@dataclass(frozen=True)
class KeyClaim:
    """A dedup decision, made good in the same transaction as the operation's reservation: reopen a
    resolved ticket (it takes the key back), or attach to the ticket holding it (with a comment
    unless the last one the gateway added was the same)."""

    ticket_id: str
    key: str
    reopen: bool
    comment_hash: str = ""  # attach: sha256 of the comment it would add

class OperationLedger(Protocol):
    """The exactly-once ledger (server/storage/operations.py): one operation per request_id, its
    outcome and its ticket's change written together, every change fenced by the holder's token."""

    async def reserve(
        self,
        operation: OperationRecord,
        ticket: NewTicket | None,
        *,
        lease_seconds: float,
        claim: KeyClaim | None = None,
    ) -> tuple[OperationRecord, bool]: ...

    async def forget_failed(self, request_id: str) -> bool: ...

    async def get(self, request_id: str) -> OperationRecord | None: ...

    async def ticket(self, ticket_id: str) -> TicketRecord | None: ...

    async def take_over(
        self,
        request_id: str,
        *,
        token: str,
        lease_seconds: float,
        ticket_changes: Mapping[str, Any] | None = None,
        retry_failed: bool = True,
    ) -> OperationRecord | None: ...

    async def note_uncertain(
        self, request_id: str, *, token: str, attempts: int, error: str, release: bool, sent: bool = True
    ) -> OperationRecord | None: ...

    async def succeed(
        self,
        request_id: str,
        *,
        token: str,
        attempts: int,
        result: Mapping[str, Any],
        ticket_changes: Mapping[str, Any],
    ) -> TicketRecord | None: ...

    async def fail(
        self,
        request_id: str,
        *,
        token: str,
        attempts: int,
        error: str,
        error_kind: str,
        ticket_changes: Mapping[str, Any],
    ) -> TicketRecord | None: ...

    async def expired(self, limit: int) -> list[OperationRecord]: ...


class TicketStore(Protocol):
    """Ticket reads and the SLA sync's claims (server/storage/tickets.py)."""

    async def get(self, id: str) -> TicketRecord | None: ...

    async def page(self, filters: TicketFilter, page_size: int, page_token: str = "") -> TicketPage: ...

    async def key_holder(self, platform: str, key: str) -> TicketRecord | None: ...

    async def latest_with_key(
        self, platform: str, key: str, window_seconds: float
    ) -> tuple[TicketRecord, bool] | None: ...

    async def record_status(self, id: str, *, status: str, resolution: str) -> TicketRecord | None: ...

    async def claim_open(
        self, platform: str, *, token: str, lease_seconds: float, limit: int
    ) -> tuple[list[TicketRecord], datetime]: ...

    async def record_sla_batch(self, updates: list[SlaUpdate], *, token: str) -> None: ...

    async def claim_key(self, id: str) -> bool: ...

    async def record_breaches(self, id: str, *, before: str, after: str) -> bool: ...

    async def release_sync(self, ids: list[str], *, token: str) -> None: ...

    async def count_open(self) -> dict[tuple[str, str], int]: ...


class PlatformChecks(Protocol):
    """What the gateway learnt about each platform that every replica must know: whether it keeps
    the correlation marker (server/storage/platform_checks.py)."""

    async def record_marker(self, platform: str, *, kept: bool, detail: str) -> None: ...

    async def markers(self) -> dict[str, tuple[bool, str]]: ...


class Telemetry(Protocol):
    """What the service reports: metrics (server/observability/metrics.py) and the fields of the
    current call's log line (server/observability/logcontext.py)."""

    def ticket_created(self, platform: str, outcome: str, seconds: float) -> None: ...

    def validation_errors(self, platform: str, fields: Iterable[str]) -> None: ...

    def template_error(self, template_name: str) -> None: ...

    def idempotent_replay(self, platform: str) -> None: ...

    def sla_breach(self, platform: str, priority: str, kind: str) -> None: ...

    def marker_dropped(self, platform: str) -> None: ...

    def operation_finished(self, platform: str, operation: str, outcome: str, seconds: float) -> None: ...

    def dedup_decision(self, platform: str, decision: str) -> None: ...

    def set_open_tickets(self, counts: Mapping[tuple[str, str], int]) -> None: ...

    def annotate(self, **fields: Any) -> None: ...
