"""SLA policy: which targets a ticket gets, and where it stands against them. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

ON_TRACK, AT_RISK, BREACHED, MET = "ON_TRACK", "AT_RISK", "BREACHED", "MET"
RESPONSE, RESOLUTION = "response", "resolution"


@dataclass(frozen=True)
class SlaTarget:
    response_seconds: int
    resolution_seconds: int


@dataclass(frozen=True)
class SlaConfig:
    enabled: bool = True
    at_risk_ratio: float = 0.75  # share of a target's time after which an unmet target is at risk
    sync_interval_seconds: float = 30.0
    batch_size: int = 50
    max_requests_per_second: float = 5.0
    lease_seconds: float = 60.0
    # platform -> priority (as the platform module derives it from the fields) -> targets
    targets: Mapping[str, Mapping[str, SlaTarget]] = field(default_factory=dict)


@dataclass(frozen=True)
class SlaPlan:
    """A new ticket's targets, as seconds after its creation (the database stamps the times)."""

    priority: str
    response_seconds: int
    resolution_seconds: int


@dataclass(frozen=True)
class SlaStanding:
    state: str  # ON_TRACK | AT_RISK | BREACHED | MET
    breaches: frozenset[str]  # RESPONSE and/or RESOLUTION targets missed


def plan(config: SlaConfig, platform: str, priority: str) -> SlaPlan | None:
    """The targets for a new ticket of `priority` (the platform module derives it from the fields),
    or None when no policy covers its platform and priority."""
    if not config.enabled:
        return None
    target = config.targets.get(platform, {}).get(priority)
    if target is None:
        return None
    return SlaPlan(priority, target.response_seconds, target.resolution_seconds)


def standing(
    *,
    created: datetime,
    response_due: datetime,
    resolution_due: datetime,
    acknowledged_at: datetime | None,
    resolved_at: datetime | None,
    now: datetime,
    at_risk_ratio: float,
) -> SlaStanding:
    """A target is missed when it was met late, or is still unmet after its due time."""
    breaches = set()
    if (acknowledged_at or now) > response_due:
        breaches.add(RESPONSE)
    if (resolved_at or now) > resolution_due:
        breaches.add(RESOLUTION)
    if breaches:
        return SlaStanding(BREACHED, frozenset(breaches))
    if resolved_at is not None:
        return SlaStanding(MET, frozenset())
    unmet = [resolution_due] if acknowledged_at else [response_due, resolution_due]
    if any(_elapsed(created, due, now) >= at_risk_ratio for due in unmet):
        return SlaStanding(AT_RISK, frozenset())
    return SlaStanding(ON_TRACK, frozenset())


def _elapsed(created: datetime, due: datetime, now: datetime) -> float:
    span = (due - created).total_seconds()
    return 1.0 if span <= 0 else (now - created).total_seconds() / span
