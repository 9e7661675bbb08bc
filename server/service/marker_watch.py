"""Whether each platform keeps the correlation marker the gateway stamps on its tickets.

Exactly-once rests on finding a ticket by its marker after an ambiguous failure. A platform that
drops it (an ACL or business rule that blanks ServiceNow's correlation_id, a Jira screen without the
labels field) turns every such failure into a duplicate, silently. Every create's answer is checked;
a drop is logged, counted, recorded in the database for every replica (and check-config), and shown
by health, until a create carries the marker again.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from server.service.ports import PlatformChecks, Telemetry

log = logging.getLogger("itsm.marker")

Listener = Callable[[str, bool], Awaitable[None] | None]


class MarkerWatch:
    def __init__(self, checks: PlatformChecks, telemetry: Telemetry, platforms: Iterable[str]) -> None:
        self._checks = checks
        self._telemetry = telemetry
        self._kept = dict.fromkeys(platforms, True)
        self._detail: dict[str, str] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def kept(self, platform: str) -> bool:
        return self._kept.get(platform, True)

    def detail(self, platform: str) -> str:
        return self._detail.get(platform, "")

    async def refresh(self) -> None:
        """Reads what every replica recorded (at start-up, and then now and again)."""
        for platform, (kept, detail) in (await self._checks.markers()).items():
            if platform in self._kept:
                await self._set(platform, kept, detail)

    async def observe(self, platform: str, kept: bool | None, ticket_id: str, key: str) -> None:
        """What a create's answer said: kept, dropped, or None (could not tell)."""
        if kept is None:
            return
        if kept:
            if not self.kept(platform):
                detail = f"ticket {ticket_id} ({key}) carried the marker back"
                await self._checks.record_marker(platform, kept=True, detail=detail)
                await self._set(platform, True, detail)
            return
        detail = (
            f"ticket {ticket_id} ({key}) came back without its correlation marker: the platform drops "
            "it, so exactly-once cannot hold (a retry after an ambiguous failure may duplicate)"
        )
        log.error("%s: %s", platform, detail, extra={"platform": platform, "ticket_id": ticket_id})
        self._telemetry.marker_dropped(platform)
        if self.kept(platform):
            await self._checks.record_marker(platform, kept=False, detail=detail)
        await self._set(platform, False, detail)

    async def _set(self, platform: str, kept: bool, detail: str) -> None:
        changed = self._kept.get(platform) != kept
        self._kept[platform], self._detail[platform] = kept, detail
        if changed:
            for listener in self._listeners:
                outcome: Any = listener(platform, kept)
                if inspect.isawaitable(outcome):
                    await outcome
