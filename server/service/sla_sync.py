"""Background SLA sync: polls open tickets' status from the platforms and records SLA outcomes.

Every sync_interval_seconds, per platform, it claims batches of open tickets through the store's
lease column (so several gateways on one database never poll the same ticket in one round), asks the
platform for their status in one request per batch, within max_requests_per_second, and records when
work started and ended. A breach is counted once per ticket and kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from clients.errors import PlatformError
from clients.platform import PlatformClient, TicketStatus
from clients.settings import TimeoutConfig
from server.domain.records import TicketRecord
from server.domain.sla import SlaConfig, standing
from server.service.periodic import Periodic
from server.service.ports import SlaUpdate, Telemetry, TicketStore

log = logging.getLogger("itsm.sla")


class SlaSync:
    def __init__(
        self,
        store: TicketStore,
        clients: Mapping[str, PlatformClient],
        config: SlaConfig,
        timeout: TimeoutConfig,
        metrics: Telemetry,
    ) -> None:
        self._store = store
        self._clients = clients
        self._config = config
        self._timeout = timeout
        self._metrics = metrics
        self._next_request = 0.0
        self._periodic = Periodic("itsm-sla-sync", config.sync_interval_seconds, self.run_once)

    def start(self) -> None:
        if self._config.enabled:
            self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run_once(self, now: datetime | None = None) -> int:
        """One round over every platform; returns how many tickets were checked."""
        checked = 0
        # Bound a round's requests so it fits its interval at the configured rate.
        batches = max(1, int(self._config.max_requests_per_second * self._config.sync_interval_seconds))
        for platform, client in self._clients.items():
            for _ in range(batches):
                done = await self._sync_batch(platform, client, now or datetime.now(UTC))
                checked += done
                if done < self._config.batch_size:
                    break
        self._metrics.set_open_tickets(await self._store.count_open())
        return checked

    async def _sync_batch(self, platform: str, client: PlatformClient, now: datetime) -> int:
        lease = now + timedelta(seconds=self._config.lease_seconds)
        claimed = await self._store.claim_open(
            platform, now=now, lease_until=lease, limit=self._config.batch_size
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
            await self._store.release_sync([r.id for r in claimed])
            return 0
        by_id = {s.external_id: s for s in statuses}
        findings = [self._finding(record, by_id.get(record.external_id), now) for record in claimed]
        # One write for the whole batch: a round trip per ticket made large rounds CPU-bound.
        await self._store.record_sla_batch([f for f in findings if f is not None], now=now)
        return len(claimed)

    def _finding(self, record: TicketRecord, status: TicketStatus | None, now: datetime) -> SlaUpdate | None:
        """What this sync learnt about one ticket (None: it has no SLA targets); counts new breaches."""
        resolved_at = record.resolved_at or (now if status and status.resolved else None)
        # Resolving a ticket is also responding to it, even if no one moved it to "in progress".
        acknowledged_at = record.acknowledged_at or (
            now if status and (status.acknowledged or status.resolved) else None
        )
        if record.response_due is None or record.resolution_due is None:
            return None
        result = standing(
            created=record.create_time,
            response_due=record.response_due,
            resolution_due=record.resolution_due,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            now=now,
            at_risk_ratio=self._config.at_risk_ratio,
        )
        counted = set(filter(None, record.sla_breaches.split(",")))
        for kind in sorted(result.breaches - counted):
            self._metrics.sla_breach(record.platform, record.priority, kind)
            log.warning(
                "SLA %s target breached", kind,
                extra={"ticket_id": record.id, "platform": record.platform, "priority": record.priority},
            )
        return SlaUpdate(
            id=record.id,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            sla_state=result.state,
            sla_breaches=",".join(sorted(counted | result.breaches)),
            platform_status=status.status if status else record.platform_status,
        )

    async def _pace(self) -> None:
        """At most max_requests_per_second status requests from this gateway."""
        interval = 1.0 / self._config.max_requests_per_second
        wait = self._next_request - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_request = max(self._next_request, time.monotonic()) + interval
