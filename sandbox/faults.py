"""Fault settings and the seeded dice that decide which request fails.

One FaultState per platform: drills can break ServiceNow while Jira stays healthy. Every random
decision comes from one random.Random, so a drill run with the same seed and the same request
sequence fails the same requests.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

MAX_LATENCY_MS = 60_000
MAX_RETRY_AFTER_SECONDS = 3_600
MAX_SEARCH_LAG_MS = 600_000


class FaultSettingsError(ValueError):
    """A fault setting that cannot be applied; `key` names the offending setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class FaultSettings:
    error_rate: float = 0.0  # share of API requests answered with a status from `statuses`
    statuses: tuple[int, ...] = (503, 429)
    retry_after_seconds: int = 1  # sent on 429 and 503
    latency_ms: int = 0  # added before every API request
    # Added before every write only: a slow insert while reads answer at once (what catches a
    # client that re-sends as soon as a read does not show the write yet).
    write_latency_ms: int = 0
    drop_after_commit_rate: float = 0.0  # share of writes applied, then answered by a cut connection
    search_lag_ms: int = 0  # Jira only: how long a new issue stays invisible to search
    # Share of writes answered 504 at once (a load balancer giving up) while the write itself still
    # lands, late_commit_ms later: the failure that catches a client re-sending too soon.
    late_commit_rate: float = 0.0
    late_commit_ms: int = 3000
    # Fields the platform silently blanks on every write, as an ACL or a business rule would (the
    # gateway's markers: "correlation_id" or "work_notes" on ServiceNow, "labels" on Jira, and a
    # Jira comment's "properties").
    dropped_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["statuses"] = list(self.statuses)
        data["dropped_fields"] = list(self.dropped_fields)
        return data

    def merged(self, patch: Mapping[str, Any]) -> FaultSettings:
        """These settings with `patch` applied; raises FaultSettingsError naming the first bad key."""
        changes: dict[str, Any] = {}
        for key, value in patch.items():
            parse = _PARSERS.get(key)
            if parse is None:
                raise FaultSettingsError(key, "unknown fault setting")
            changes[key] = parse(key, value)
        return replace(self, **changes)


def _number(key: str, value: Any) -> float:
    # bool is an int subclass; `true` as a rate is a client bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSettingsError(key, "must be a number")
    return float(value)


def _rate(key: str, value: Any) -> float:
    rate = _number(key, value)
    if not 0.0 <= rate <= 1.0:
        raise FaultSettingsError(key, "must be between 0 and 1")
    return rate


def _bounded_int(maximum: int) -> Any:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FaultSettingsError(key, "must be an integer")
        if not 0 <= value <= maximum:
            raise FaultSettingsError(key, f"must be between 0 and {maximum}")
        return value

    return parse


def _statuses(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise FaultSettingsError(key, "must be a non-empty list of HTTP status codes")
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultSettingsError(key, "every status must be an integer from 400 to 599")
    return tuple(value)


def _field_names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 20:
        raise FaultSettingsError(key, "must be a list of at most 20 field names")
    for name in value:
        if not isinstance(name, str) or not 0 < len(name) <= 80:
            raise FaultSettingsError(key, "every field name must be a string of 1 to 80 characters")
    return tuple(value)


_PARSERS: dict[str, Any] = {
    "error_rate": _rate,
    "statuses": _statuses,
    "retry_after_seconds": _bounded_int(MAX_RETRY_AFTER_SECONDS),
    "latency_ms": _bounded_int(MAX_LATENCY_MS),
    "write_latency_ms": _bounded_int(MAX_LATENCY_MS),
    "drop_after_commit_rate": _rate,
    "search_lag_ms": _bounded_int(MAX_SEARCH_LAG_MS),
    "late_commit_rate": _rate,
    "late_commit_ms": _bounded_int(MAX_LATENCY_MS),
    "dropped_fields": _field_names,
}


class FaultState:
    """The live settings of one platform, its dice and its counters."""

    def __init__(self, initial: FaultSettings, seed: int | None) -> None:
        self._initial_seed = seed
        self._rng = random.Random(seed)
        self.settings = initial
        self.requests = 0
        self.writes = 0  # requests that may change something: everything but GET and HEAD
        self.faults_injected = 0

    def roll_error_status(self) -> int | None:
        """The status to fail this request with, or None to serve it."""
        rate = self.settings.error_rate
        # No draw at rate 0, so turning faults on later replays the same sequence as a fresh run.
        if rate <= 0.0 or self._rng.random() >= rate:
            return None
        self.faults_injected += 1
        return self._rng.choice(self.settings.statuses)

    def roll_drop_after_commit(self) -> bool:
        rate = self.settings.drop_after_commit_rate
        if rate <= 0.0 or self._rng.random() >= rate:
            return False
        self.faults_injected += 1
        return True

    def roll_late_commit(self) -> bool:
        rate = self.settings.late_commit_rate
        if rate <= 0.0 or self._rng.random() >= rate:
            return False
        self.faults_injected += 1
        return True

    def reset(self) -> None:
        """Back to no faults, zero counters and the starting seed."""
        self._rng = random.Random(self._initial_seed)
        self.settings = FaultSettings()
        self.requests = 0
        self.writes = 0
        self.faults_injected = 0
