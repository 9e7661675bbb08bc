"""Background settlement of tickets left PENDING by a crash or a cancelled call.

Runs at start-up and then every reconcile_interval_seconds. Work is claimed through the store's
lease column, so several gateways on one database never settle the same ticket twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from server.config import IdempotencyConfig

log = logging.getLogger("itsm.reconciler")


class Reconcilable(Protocol):
    async def reconcile_once(self, limit: int = 100) -> int: ...


class Reconciler:
    def __init__(self, pipeline: Reconcilable, config: IdempotencyConfig) -> None:
        self._pipeline = pipeline
        self._interval = config.reconcile_interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="itsm-reconciler")

    async def _run(self) -> None:
        while True:
            try:
                settled = await self._pipeline.reconcile_once()
                if settled:
                    log.info("reconciled %d pending tickets", settled)
            except Exception:  # keep the loop alive: the next round retries
                log.exception("reconciliation round failed")
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
