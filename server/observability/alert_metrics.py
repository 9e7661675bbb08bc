"""Metrics of the Alertmanager receiver: every answer, counted and timed.

    itsm_alertmanager_notifications_total{receiver, status, code, outcome}
    itsm_alertmanager_notification_duration_seconds{receiver, outcome}      histogram

receiver is a configured receiver's name or "_unknown" (the path is caller input); status is firing,
resolved, or "_unknown" before the payload was read; code is the HTTP status; outcome one of OUTCOMES.
Every label value comes from a closed set, so no request can grow the number of series.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

UNKNOWN: Final = "_unknown"
STATUSES: Final = frozenset({"firing", "resolved"})
# What the notification did (created ... ignored), or why it did nothing: refused (a 4xx: it never
# will), unavailable (a 503: retry), failed (a 500: a bug).
OUTCOMES: Final = frozenset(
    {"created", "attached", "reopened", "resolved", "commented", "replayed", "ignored", "refused",
     "unavailable", "failed"}
)  # fmt: skip
BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)


@dataclass(frozen=True)
class _Families:
    notifications: Counter
    seconds: Histogram


# One definition per registry, shared by every gateway a process builds (tests, drills).
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _families(registry: CollectorRegistry) -> _Families:
    with _LOCK:
        found = _FAMILIES.get(registry)
        if found is None:
            found = _FAMILIES[registry] = _Families(
                notifications=Counter(
                    "itsm_alertmanager_notifications_total",
                    "Alertmanager webhook notifications answered, by receiver, status, HTTP code, outcome.",
                    ["receiver", "status", "code", "outcome"], registry=registry,
                ),
                seconds=Histogram(
                    "itsm_alertmanager_notification_duration_seconds",
                    "Time to answer an Alertmanager webhook notification.",
                    ["receiver", "outcome"], buckets=BUCKETS, registry=registry,
                ),
            )
        return found


class AlertmanagerMetrics:
    def __init__(self, receivers: Collection[str], registry: CollectorRegistry = REGISTRY) -> None:
        self._f = _families(registry)
        self._receivers = frozenset(receivers)

    def receiver_label(self, name: str) -> str:
        return name if name in self._receivers else UNKNOWN

    def answered(self, receiver: str, status: str, code: int, outcome: str, seconds: float) -> None:
        receiver = self.receiver_label(receiver)
        outcome = outcome if outcome in OUTCOMES else "failed"
        status = status if status in STATUSES else UNKNOWN
        code_label = str(code) if 100 <= code <= 599 else UNKNOWN
        self._f.notifications.labels(receiver, status, code_label, outcome).inc()
        self._f.seconds.labels(receiver, outcome).observe(max(seconds, 0.0))
