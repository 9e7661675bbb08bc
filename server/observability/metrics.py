"""The ITSM metric families, and the one object the pipeline, clients and SLA tracker report to.

    itsm_ticket_creation_total{platform, outcome}
    itsm_ticket_creation_duration_seconds{platform, outcome}        histogram, buckets to 60 s
    itsm_ticket_retry_attempts_total{platform}                      HTTP attempts beyond a request's first
    itsm_validation_errors_total{platform, field}
    itsm_template_rendering_errors_total{template_name}
    itsm_platform_request_duration_seconds{platform, operation, status}  histogram, every attempt
    itsm_idempotent_replays_total{platform}
    itsm_sla_breaches_total{platform, priority, kind}               kind: response, resolution
    itsm_open_tickets{platform, sla_state}                          gauge
    itsm_marker_dropped_total{platform}                             creates the marker did not survive
    itsm_ticket_operations_total{platform, operation, outcome}      every platform write
    itsm_ticket_operation_duration_seconds{platform, operation, outcome}   histogram
    itsm_dedup_decisions_total{platform, decision}                  created, attached, reopened
    itsm_background_tasks{kind}                                     gauge, tasks in flight
    itsm_platform_connections{platform}                             gauge, open HTTP connections

Every label value comes from a closed set: the configured platforms, fields, templates and SLA
priorities, the outcomes below, or "_unknown". Caller input never becomes a label value, so a
hostile request cannot grow the number of series (nor smuggle text into /metrics).

outcome_of and OUTCOMES come from the domain; the service reports through its Telemetry port, which
this class implements (with annotate(), the current call's log fields).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from server.domain.outcomes import (
    DEDUP_DECISIONS,
    OPERATION_OUTCOMES,
    OPERATIONS,
    OUTCOMES,
    outcome_of,
)
from server.observability import logcontext

__all__ = [
    "BACKGROUND_KINDS", "OUTCOMES", "UNKNOWN", "ItsmMetrics", "RuntimeGauges", "itsm_families", "outcome_of",
]

UNKNOWN: Final = "_unknown"

ERROR_OUTCOMES: Final = frozenset({"unavailable", "deadline", "failed"})
SLA_KINDS: Final = ("response", "resolution")
# Open tickets by SLA state; "none" is a ticket no SLA target applies to (or not yet evaluated).
SLA_STATES: Final = ("on_track", "at_risk", "breached", "met", "none")
# Field names the pipeline itself reports violations on, whatever the platform's field mapping.
STRUCTURAL_FIELDS: Final = frozenset(
    {"fields", "platform", "request_id", "job_id", "template_name", "variables", "id",
     "page_size", "page_token"}
)

CREATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0)
REQUEST_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

_LIST_ITEM = re.compile(r"([a-z][a-z0-9_]{0,63})\[[0-9]{1,6}\]")
_OPERATION = re.compile(r"[a-z][a-z0-9_]{0,31}")


class AttemptLike(Protocol):
    """clients.http.AttemptEvent, structurally: one outbound HTTP attempt."""

    platform: str
    operation: str
    status: int | None
    duration_seconds: float


@dataclass(frozen=True)
class ItsmFamilies:
    creations: Counter
    creation_seconds: Histogram
    retries: Counter
    validation_errors: Counter
    template_errors: Counter
    request_seconds: Histogram
    replays: Counter
    sla_breaches: Counter
    open_tickets: Gauge
    marker_dropped: Counter
    operations: Counter
    operation_seconds: Histogram
    dedup_decisions: Counter
    background_tasks: Gauge
    platform_connections: Gauge


# A second registration of a name on one registry raises, and a process may build several gateways
# (tests, drills): the families are made once per registry and shared.
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, ItsmFamilies] = weakref.WeakKeyDictionary()
_FAMILIES_LOCK = threading.Lock()


def itsm_families(registry: CollectorRegistry = REGISTRY) -> ItsmFamilies:
    with _FAMILIES_LOCK:
        families = _FAMILIES.get(registry)
        if families is None:
            families = _FAMILIES[registry] = _define(registry)
        return families


def _define(registry: CollectorRegistry) -> ItsmFamilies:
    return ItsmFamilies(
        creations=Counter(
            "itsm_ticket_creation_total", "Ticket create calls by platform and outcome.",
            ["platform", "outcome"], registry=registry,
        ),
        creation_seconds=Histogram(
            "itsm_ticket_creation_duration_seconds",
            "Time to answer a ticket create call (validation, platform calls, retries, store).",
            ["platform", "outcome"], buckets=CREATION_BUCKETS, registry=registry,
        ),
        retries=Counter(
            "itsm_ticket_retry_attempts_total",
            "HTTP attempts beyond a request's first, for every platform request.",
            ["platform"], registry=registry,
        ),
        validation_errors=Counter(
            "itsm_validation_errors_total", "Field violations found in requests, by canonical field.",
            ["platform", "field"], registry=registry,
        ),
        template_errors=Counter(
            "itsm_template_rendering_errors_total",
            "Template renderings that produced violations (missing or bad variables).",
            ["template_name"], registry=registry,
        ),
        request_seconds=Histogram(
            "itsm_platform_request_duration_seconds",
            "Every outbound HTTP attempt to a platform; status is the HTTP code or 'error'.",
            ["platform", "operation", "status"], buckets=REQUEST_BUCKETS, registry=registry,
        ),
        replays=Counter(
            "itsm_idempotent_replays_total",
            "Create calls answered from an earlier call with the same request_id.",
            ["platform"], registry=registry,
        ),
        sla_breaches=Counter(
            "itsm_sla_breaches_total", "SLA targets missed, by priority and kind.",
            ["platform", "priority", "kind"], registry=registry,
        ),
        open_tickets=Gauge(
            "itsm_open_tickets", "Open (unresolved) tickets by SLA state.",
            ["platform", "sla_state"], registry=registry,
            # Every worker's status sync counts the whole database: with `serve --workers N` the
            # latest count of a live worker is the value, not the sum of N copies.
            multiprocess_mode="livemostrecent",
        ),
        marker_dropped=Counter(
            "itsm_marker_dropped_total",
            "Creates whose answer came back without the correlation marker: exactly-once cannot hold.",
            ["platform"], registry=registry,
        ),
        operations=Counter(
            "itsm_ticket_operations_total",
            "Platform writes (create, update, comment, resolve, reopen) by outcome.",
            ["platform", "operation", "outcome"], registry=registry,
        ),
        operation_seconds=Histogram(
            "itsm_ticket_operation_duration_seconds",
            "Time to answer a platform write (validation, platform calls, retries, store).",
            ["platform", "operation", "outcome"], buckets=CREATION_BUCKETS, registry=registry,
        ),
        dedup_decisions=Counter(
            "itsm_dedup_decisions_total",
            "What creates with a dedup key did: created, attached or reopened.",
            ["platform", "decision"], registry=registry,
        ),
        # Both are sampled by the gateway (RuntimeGauges) and summed over the processes of
        # `serve --workers N`; a worker that died drops out of the sum.
        background_tasks=Gauge(
            "itsm_background_tasks",
            "Background tasks in flight, by kind: the reconciler and status sync loops, shielded final "
            "writes, Alertmanager notifications being handled.",
            ["kind"], registry=registry, multiprocess_mode="livesum",
        ),
        platform_connections=Gauge(
            "itsm_platform_connections",
            "HTTP connections open to each platform (in use and idle in the client's pool).",
            ["platform"], registry=registry, multiprocess_mode="livesum",
        ),
    )


class ItsmMetrics:
    """What the service (as its Telemetry port), the clients' attempt hook and the SLA tracker call.
    Never raises on unexpected label values: they are folded into "_unknown"."""

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        platforms: Collection[str] = (),
        known_fields: Mapping[str, Collection[str]] | None = None,
        known_templates: Collection[str] = (),
        known_priorities: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._f = itsm_families(registry)
        self._platforms = frozenset(platforms)
        self._fields = {
            p: frozenset((known_fields or {}).get(p, ())) | STRUCTURAL_FIELDS for p in self._platforms
        }
        self._any_field = frozenset().union(*self._fields.values()) if self._fields else STRUCTURAL_FIELDS
        self._templates = frozenset(known_templates)
        self._priorities = {p: frozenset((known_priorities or {}).get(p, ())) for p in self._platforms}
        # Label children by their (already bounded) label values: no label lookup on the hot path.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._open_keys = {(p, s) for p in self._platforms for s in SLA_STATES}
        self._zero_known_series()

    def _zero_known_series(self) -> None:
        """Series that alerts divide or rate() over exist from start-up, at 0, not on first event."""
        for platform in self._platforms:
            for outcome in OUTCOMES:
                self._child(self._f.creations, platform, outcome)
            self._child(self._f.retries, platform)
            self._child(self._f.replays, platform)
            self._child(self._f.marker_dropped, platform)
            for operation in OPERATIONS:
                for outcome in OPERATION_OUTCOMES:
                    self._child(self._f.operations, platform, operation, outcome)
            for decision in DEDUP_DECISIONS:
                self._child(self._f.dedup_decisions, platform, decision)
            for priority in self._priorities[platform]:
                for kind in SLA_KINDS:
                    self._child(self._f.sla_breaches, platform, priority, kind)
        self.set_open_tickets({})

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    # -------------------------------------------------------------------------- bounding labels

    def platform_label(self, platform: str) -> str:
        return platform if platform in self._platforms else UNKNOWN

    def field_label(self, platform: str, field: str) -> str:
        """The canonical field a violation is on: labels[1] -> labels, variables.x -> variables."""
        known = self._fields.get(platform, self._any_field)
        if field in known:
            return field
        item = _LIST_ITEM.fullmatch(field)
        if item is not None and item.group(1) in known:
            return item.group(1)
        if field.startswith("variables."):
            return "variables"
        return UNKNOWN

    def template_label(self, template_name: str) -> str:
        return template_name if template_name in self._templates else UNKNOWN

    def priority_label(self, platform: str, priority: str) -> str:
        return priority if priority in self._priorities.get(platform, ()) else UNKNOWN

    # -------------------------------------------------------------------------- events

    def annotate(self, **fields: Any) -> None:
        """Fields for the current call's log line (a no-op outside a call)."""
        logcontext.annotate(**fields)

    def ticket_created(self, platform: str, outcome: str, seconds: float) -> None:
        """One create call ended with `outcome` (see OUTCOMES; outcome_of() maps an exception)."""
        labels = (self.platform_label(platform), outcome if outcome in OUTCOMES else "failed")
        self._child(self._f.creations, *labels).inc()
        self._child(self._f.creation_seconds, *labels).observe(max(seconds, 0.0))


    def validation_errors(self, platform: str, fields: Iterable[str]) -> None:
        platform = self.platform_label(platform)
        for field in fields:
            self._child(self._f.validation_errors, platform, self.field_label(platform, field)).inc()

    def template_error(self, template_name: str) -> None:
        self._child(self._f.template_errors, self.template_label(template_name)).inc()

    def platform_attempt(self, event: AttemptLike) -> None:
        """The clients' on_attempt hook (clients.http.AttemptHook): pass this bound method. Every
        attempt beyond a request's first is a retry, whatever the request and however it ends (a
        create that fails through its whole budget retried as much as one that succeeded)."""
        self.request_finished(event.platform, event.operation, event.status, event.duration_seconds)
        if event.attempt > 1:
            self._child(self._f.retries, self.platform_label(event.platform)).inc()

    def request_finished(
        self, platform: str, operation: str, status: int | None, seconds: float
    ) -> None:
        op = operation if _OPERATION.fullmatch(operation) else UNKNOWN
        code = str(status) if status is not None and 100 <= status <= 599 else "error"
        child = self._child(self._f.request_seconds, self.platform_label(platform), op, code)
        child.observe(max(seconds, 0.0))

    def idempotent_replay(self, platform: str) -> None:
        self._child(self._f.replays, self.platform_label(platform)).inc()

    def sla_breach(self, platform: str, priority: str, kind: str) -> None:
        platform = self.platform_label(platform)
        labels = (platform, self.priority_label(platform, priority), kind if kind in SLA_KINDS else UNKNOWN)
        self._child(self._f.sla_breaches, *labels).inc()

    def operation_finished(self, platform: str, operation: str, outcome: str, seconds: float) -> None:
        """One platform write ended with `outcome` (see OPERATION_OUTCOMES)."""
        labels = (
            self.platform_label(platform),
            operation if operation in OPERATIONS else UNKNOWN,
            outcome if outcome in OPERATION_OUTCOMES else "failed",
        )
        self._child(self._f.operations, *labels).inc()
        self._child(self._f.operation_seconds, *labels).observe(max(seconds, 0.0))

    def dedup_decision(self, platform: str, decision: str) -> None:
        decision = decision if decision in DEDUP_DECISIONS else UNKNOWN
        self._child(self._f.dedup_decisions, self.platform_label(platform), decision).inc()

    def marker_dropped(self, platform: str) -> None:
        self._child(self._f.marker_dropped, self.platform_label(platform)).inc()

    def set_open_tickets(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the whole gauge: every known (platform, sla_state) is set, so a state nobody is in
        any more reads 0 instead of its last value. sla_state is case-insensitive ("AT_RISK"); an
        empty one is "none"."""
        totals = dict.fromkeys(self._open_keys, 0)
        for (platform, state), count in counts.items():
            key = (self.platform_label(platform), _sla_state(state))
            totals[key] = totals.get(key, 0) + count
        self._open_keys.update(totals)  # an "_unknown" series once set is zeroed later, not left stale
        for (platform, state), count in totals.items():
            self._child(self._f.open_tickets, platform, state).set(count)


# What itsm_background_tasks counts (a closed set: no other label value is ever written).
BACKGROUND_KINDS: Final = ("reconciler", "status_sync", "final_write", "alert_notification")


class RuntimeGauges:
    """itsm_background_tasks and itsm_platform_connections, from samples the gateway takes.

    Each gateway adds the difference from its previous sample, so several gateways in one process
    (tests, drills) add up instead of overwriting each other, and clear() takes its share back out.
    Real gauges rather than a collector read at scrape time: under `serve --workers N` the supervisor
    serves /metrics from the workers' multiprocess files, where only real samples exist."""

    def __init__(self, platforms: Collection[str], registry: CollectorRegistry = REGISTRY) -> None:
        f = itsm_families(registry)
        self._tasks = {kind: f.background_tasks.labels(kind) for kind in BACKGROUND_KINDS}
        self._connections = {p: f.platform_connections.labels(p) for p in platforms}
        self._last: dict[tuple[str, str], float] = {}
        for child in (*self._tasks.values(), *self._connections.values()):
            child.inc(0)  # the series exist from start-up, at 0

    def sample(self, tasks: Mapping[str, int], connections: Mapping[str, int]) -> None:
        for kind, child in self._tasks.items():
            self._move(("kind", kind), child, tasks.get(kind, 0))
        for platform, child in self._connections.items():
            self._move(("platform", platform), child, connections.get(platform, 0))

    def clear(self) -> None:
        self.sample({}, {})

    def _move(self, key: tuple[str, str], child: Any, value: float) -> None:
        delta = value - self._last.get(key, 0)
        if delta:
            child.inc(delta)
            self._last[key] = value


def _sla_state(state: str) -> str:
    normalized = state.lower() if state else "none"
    return normalized if normalized in SLA_STATES else UNKNOWN
