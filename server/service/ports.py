"""The ports the service works through. Storage and the observability layer implement them; the
platform clients implement clients.platform.PlatformClient. The composition root hands them in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.domain.records import TicketRecord


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

    def fingerprint(self) -> str:
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TicketPage:
    records: list[TicketRecord]
    next_page_token: str  # "" on the last page


@dataclass(frozen=True, kw_only=True, slots=True)
class SlaUpdate:
    """One SLA sync's findings for one ticket."""

    id: str
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    sla_state: str
    sla_breaches: str
    platform_status: str


class TicketStore(Protocol):
    """The tickets ledger (server/storage/tickets.py)."""

    async def reserve(self, record: TicketRecord) -> tuple[TicketRecord, bool]: ...

    async def get(self, id: str) -> TicketRecord | None: ...

    async def page(self, filters: TicketFilter, page_size: int, page_token: str = "") -> TicketPage: ...

    async def take_over(
        self, id: str, *, expected_state: str, lease_until: datetime, now: datetime
    ) -> TicketRecord | None: ...

    async def record_created(self, id: str, **values: Any) -> TicketRecord | None: ...

    async def record_failed(self, id: str, **values: Any) -> TicketRecord | None: ...

    async def note_pending(self, id: str, **values: Any) -> TicketRecord | None: ...

    async def expired_pending(self, now: datetime, limit: int) -> list[TicketRecord]: ...

    async def claim_open(
        self, platform: str, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[TicketRecord]: ...

    async def record_sla_batch(self, updates: list[SlaUpdate], *, now: datetime) -> None: ...

    async def release_sync(self, ids: list[str]) -> None: ...

    async def count_open(self) -> dict[tuple[str, str], int]: ...


class Telemetry(Protocol):
    """What the service reports: metrics (server/observability/metrics.py) and the fields of the
    current call's log line (server/observability/logcontext.py)."""

    def ticket_created(self, platform: str, outcome: str, seconds: float) -> None: ...

    def retries(self, platform: str, count: int) -> None: ...

    def validation_errors(self, platform: str, fields: Iterable[str]) -> None: ...

    def template_error(self, template_name: str) -> None: ...

    def idempotent_replay(self, platform: str) -> None: ...

    def sla_breach(self, platform: str, priority: str, kind: str) -> None: ...

    def set_open_tickets(self, counts: Mapping[tuple[str, str], int]) -> None: ...

    def annotate(self, **fields: Any) -> None: ...
