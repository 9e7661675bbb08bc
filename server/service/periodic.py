"""A background round run at start-up and then every interval, stopped between rounds.

Stopping waits for the round in progress (bounded) instead of cancelling it mid-statement: a
cancelled database call can strand a pooled connection, and a cancelled send leaves work for the
next reconciliation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("itsm.periodic")


class Periodic:
    def __init__(self, name: str, interval: float, round_: Callable[[], Awaitable[Any]]) -> None:
        self._name = name
        self._interval = interval
        self._round = round_
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Set once the start-up round finished (tests wait for it before they race a round of theirs).
        self.first_round_done = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._round()
            except Exception:  # keep the loop alive: the next round retries
                log.exception("%s round failed", self._name)
            self.first_round_done.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    def running(self) -> bool:
        """Whether the loop's task is alive (the itsm_background_tasks gauge)."""
        return self._task is not None and not self._task.done()

    async def stop(self, patience: float = 10.0) -> None:
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), patience)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
