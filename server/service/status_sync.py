"""Background status sync: keeps every open ticket's status current (whether or not an SLA applies),
and records SLA outcomes. A person resolving, closing or reopening a ticket on the platform shows up
after the next round; a ticket no longer open gives its dedup key up, one reopened takes it back.

Every sync_interval_seconds, per platform, it claims batches of tickets (open ones, and those resolved
within the last days, which a person might reopen) under a token of its own
(so several gateways on one database never poll the same ticket in one round), asks the platform for
their status in one request per batch, within max_requests_per_second, and records when work started
and ended, fenced by its claim: a sync whose claim ran out and was taken by another writes nothing.
A breach is recorded with a compare-and-set and counted only by the one that recorded it: once per
ticket and kind, across replicas. Times are the database's clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from clients.errors import PlatformError
from clients.platform import PlatformClient, TicketStatus
from clients.settings import TimeoutConfig
from server.domain.records import DONE_STATUSES, OPEN_STATUSES, TicketRecord
from server.domain.sla import SlaConfig, standing
from server.service.catalog import Catalog
from server.service.ports import SlaUpdate, Telemetry, TicketStore

log = logging.getLogger("itsm.sla")


class StatusSync:
    def __init__(
        self,
        store: TicketStore,
        clients: Mapping[str, PlatformClient],
        catalog: Catalog,
        timeout: TimeoutConfig,
        metrics: Telemetry,
    ) -> None:
        self._store = store
        self._clients = clients
        self._catalog = catalog
        self._config: SlaConfig = catalog.config.sla
        self._timeout = timeout
        self._metrics = metrics
        self._next_request = 0.0

    async def run_once(self) -> int:
        """One round over every platform; returns how many tickets were checked."""
        checked = 0
        # Bound a round's requests so it fits its interval at the configured rate.
        batches = max(1, int(self._config.max_requests_per_second * self._config.sync_interval_seconds))
        for platform, client in self._clients.items():
            for _ in range(batches):
                done = await self._sync_batch(platform, client)
                checked += done
                if done < self._config.batch_size:
                    break
        self._metrics.set_open_tickets(await self._store.count_open())
        return checked

    async def _sync_batch(self, platform: str, client: PlatformClient) -> int:
        token = str(uuid.uuid4())
        claimed, now = await self._store.claim_open(
            platform, token=token, lease_seconds=self._config.lease_seconds, limit=self._config.batch_size
        )
        if not claimed:
            return 0
        await self._pace()
        try:
            statuses = await client.get_statuses(
                [r.external_id for r in claimed], deadline=time.monotonic() + self._timeout.total
            )
        except PlatformError as exc:
            log.warning("SLA sync of %d %s tickets failed: %s", len(claimed), platform, exc)
            await self._store.release_sync([r.id for r in claimed], token=token)
            return 0
        by_id = {s.external_id: s for s in statuses}
        findings = [self._finding(record, by_id.get(record.external_id), now) for record in claimed]
        # One write for the whole batch: a round trip per ticket made large rounds CPU-bound.
        await self._store.record_sla_batch([f for f, _ in findings], token=token)
        for record, (finding, breaches) in zip(claimed, findings, strict=True):
            if breaches:
                await self.record_breaches(record, breaches)
            if record.dedup_key and record.open_key is None and finding.status in OPEN_STATUSES:
                await self._store.claim_key(record.id)  # reopened on the platform by a person
        return len(claimed)

    def _finding(
        self, record: TicketRecord, status: TicketStatus | None, now: datetime
    ) -> tuple[SlaUpdate, frozenset[str]]:
        """What this sync learnt about one ticket, and the SLA breaches it shows."""
        gateway = self._catalog.status(record.platform, status) if status else ""
        done = gateway in DONE_STATUSES
        # A person reopening it on the platform clears its resolution time.
        resolved_at = (record.resolved_at or now) if done else (None if gateway else record.resolved_at)
        # Resolving a ticket is also responding to it, even if no one moved it to "in progress".
        acknowledged_at = record.acknowledged_at or (
            now if status and (status.acknowledged or status.resolved) else None
        )
        update = SlaUpdate(
            id=record.id,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            sla_state=record.sla_state,
            platform_status=status.status if status else record.platform_status,
            status=gateway,
            resolution=status.resolution if status else record.resolution,
        )
        if record.response_due is None or record.resolution_due is None or record.create_time is None:
            return update, frozenset()
        result = standing(
            created=record.create_time,
            response_due=record.response_due,
            resolution_due=record.resolution_due,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            now=now,
            at_risk_ratio=self._config.at_risk_ratio,
        )
        return replace(update, sla_state=result.state), result.breaches

    async def record_breaches(self, record: TicketRecord, breaches: frozenset[str] | None = None) -> None:
        """Records (and counts, once per ticket and kind across replicas) the SLA targets a ticket
        missed; a resolve settles them too. None: those its stored times show."""
        if breaches is None:
            breaches = _breaches(record, self._config)
        recorded = record.sla_breaches
        for _ in range(3):  # another gateway may record one between our read and our write
            counted = set(filter(None, recorded.split(",")))
            new = breaches - counted
            if not new:
                return
            after = ",".join(sorted(counted | breaches))
            if await self._store.record_breaches(record.id, before=recorded, after=after):
                self._count(record, new)
                return
            latest = await self._store.get(record.id)
            if latest is None:
                return
            recorded = latest.sla_breaches

    def _count(self, record: TicketRecord, new: set[str]) -> None:
        for kind in sorted(new):
            self._metrics.sla_breach(record.platform, record.priority, kind)
            log.warning(
                "SLA %s target breached", kind,
                extra={"ticket_id": record.id, "platform": record.platform, "priority": record.priority},
            )

    async def _pace(self) -> None:
        """At most max_requests_per_second status requests from this gateway."""
        interval = 1.0 / self._config.max_requests_per_second
        wait = self._next_request - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_request = max(self._next_request, time.monotonic()) + interval


def _breaches(record: TicketRecord, config: SlaConfig) -> frozenset[str]:
    if not (record.response_due and record.resolution_due and record.create_time and record.resolved_at):
        return frozenset()
    return standing(
        created=record.create_time,
        response_due=record.response_due,
        resolution_due=record.resolution_due,
        acknowledged_at=record.acknowledged_at,
        resolved_at=record.resolved_at,
        now=record.resolved_at,
        at_risk_ratio=config.at_risk_ratio,
    ).breaches
