"""ITSM metric families: exact names, bounded labels, once-per-registry registration."""

from __future__ import annotations

import asyncio
import random
import string

import pytest
from prometheus_client import CollectorRegistry

from clients.http import AttemptEvent
from server.domain import errors
from server.observability.metrics import OUTCOMES, UNKNOWN, ItsmMetrics, itsm_families, outcome_of

FIELDS = {"servicenow": ("summary", "urgency", "impact"), "jira": ("summary", "labels", "project")}
PRIORITIES = {"servicenow": ("1", "2"), "jira": ("Highest",)}


def _metrics(registry: CollectorRegistry) -> ItsmMetrics:
    return ItsmMetrics(
        registry,
        platforms=("servicenow", "jira"),
        known_fields=FIELDS,
        known_templates=("disk_full",),
        known_priorities=PRIORITIES,
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _label_values(registry: CollectorRegistry, sample_name: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for family in registry.collect()
        for s in family.samples
        if s.name == sample_name
    }


def test_ticket_created_counts_and_times_by_outcome(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    metrics.ticket_created("servicenow", "created", 0.4)
    metrics.ticket_created("servicenow", "created", 3.0)
    metrics.ticket_created("jira", "unavailable", 61.0)
    assert _value(registry, "itsm_ticket_creation_total", platform="servicenow", outcome="created") == 2
    assert _value(registry, "itsm_ticket_creation_total", platform="jira", outcome="unavailable") == 1
    hist = "itsm_ticket_creation_duration_seconds"
    assert _value(registry, f"{hist}_count", platform="servicenow", outcome="created") == 2
    assert _value(registry, f"{hist}_sum", platform="servicenow", outcome="created") == pytest.approx(3.4)
    assert _value(registry, f"{hist}_bucket", platform="servicenow", outcome="created", le="2.0") == 1
    assert _value(registry, f"{hist}_bucket", platform="jira", outcome="unavailable", le="60.0") == 0
    assert _value(registry, f"{hist}_bucket", platform="jira", outcome="unavailable", le="+Inf") == 1


def test_every_known_creation_series_exists_at_zero_from_start(registry: CollectorRegistry) -> None:
    _metrics(registry)
    for platform in ("servicenow", "jira"):
        for outcome in OUTCOMES:
            assert _value(registry, "itsm_ticket_creation_total", platform=platform, outcome=outcome) == 0
        assert _value(registry, "itsm_ticket_retry_attempts_total", platform=platform) == 0
        assert _value(registry, "itsm_idempotent_replays_total", platform=platform) == 0
    assert _value(registry, "itsm_sla_breaches_total", platform="jira", priority="Highest", kind="response") == 0


def test_unknown_outcome_and_platform_are_folded(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    metrics.ticket_created("mainframe", "exploded", 1.0)
    assert _value(registry, "itsm_ticket_creation_total", platform=UNKNOWN, outcome="failed") == 1


@pytest.mark.parametrize(
    ("error", "replayed", "outcome"),
    [
        (None, False, "created"),
        (None, True, "replayed"),
        (errors.InvalidArgument("x"), False, "invalid"),
        (errors.FailedPrecondition("x"), False, "rejected"),
        (errors.NotFound("x"), False, "rejected"),
        (errors.Unavailable("x"), False, "unavailable"),
        (errors.DeadlineExceeded("x"), False, "deadline"),
        (asyncio.CancelledError(), False, "cancelled"),
        (RuntimeError("bug"), False, "failed"),
    ],
)
def test_outcome_of_maps_pipeline_errors(error: BaseException | None, replayed: bool, outcome: str) -> None:
    assert outcome_of(error, replayed=replayed) == outcome
    assert outcome in OUTCOMES


def test_retries_replays_and_template_errors(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    for attempt in (1, 2, 3, 4, 1):  # one request tried four times, then another answered at once
        metrics.platform_attempt(
            AttemptEvent("jira", "create", "POST", attempt, 503, 0.01, "retry", "http_503")
        )
    metrics.idempotent_replay("servicenow")
    metrics.template_error("disk_full")
    metrics.template_error("{{ ' or 1=1")
    assert _value(registry, "itsm_ticket_retry_attempts_total", platform="jira") == 3
    assert _value(registry, "itsm_idempotent_replays_total", platform="servicenow") == 1
    assert _value(registry, "itsm_template_rendering_errors_total", template_name="disk_full") == 1
    assert _value(registry, "itsm_template_rendering_errors_total", template_name=UNKNOWN) == 1


@pytest.mark.parametrize(
    ("platform", "field", "label"),
    [
        ("jira", "summary", "summary"),
        ("jira", "labels[1]", "labels"),
        ("jira", "labels[999999]", "labels"),
        ("jira", "variables.alert.host", "variables"),
        ("jira", "request_id", "request_id"),
        ("servicenow", "labels[0]", UNKNOWN),  # not a servicenow field
        ("servicenow", "urgency", "urgency"),
        ("jira", "summary[x]", UNKNOWN),
        ("jira", "nonsense", UNKNOWN),
        ("jira", "", UNKNOWN),
    ],
)
def test_validation_error_fields_map_to_canonical_names(
    registry: CollectorRegistry, platform: str, field: str, label: str
) -> None:
    _metrics(registry).validation_errors(platform, [field])
    assert _value(registry, "itsm_validation_errors_total", platform=platform, field=label) == 1


def test_hostile_field_names_only_ever_make_the_unknown_series(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \n\u00e9\u202e"
    hostile = ["".join(rng.choices(alphabet, k=rng.randint(1, 200))) for _ in range(10_000)]
    metrics.validation_errors("jira", hostile)
    metrics.validation_errors("servicenow", ["summary", "summary[0]"])
    assert _label_values(registry, "itsm_validation_errors_total", "field") == {UNKNOWN, "summary"}
    assert _value(registry, "itsm_validation_errors_total", platform="jira", field=UNKNOWN) == 10_000
    assert _value(registry, "itsm_validation_errors_total", platform="servicenow", field="summary") == 2


def test_platform_attempt_takes_the_clients_attempt_event(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    hook = metrics.platform_attempt
    hook(AttemptEvent("jira", "create", "POST", 1, 503, 0.2, "retry", "http_503"))
    hook(AttemptEvent("jira", "create", "POST", 2, None, 10.0, "retry", "timeout"))
    hook(AttemptEvent("jira", "create", "POST", 3, 201, 0.1, "ok"))
    hook(AttemptEvent("jira", "Weird Op/../x", "GET", 1, 200, 0.1, "ok"))
    name = "itsm_platform_request_duration_seconds_count"
    assert _value(registry, name, platform="jira", operation="create", status="503") == 1
    assert _value(registry, name, platform="jira", operation="create", status="error") == 1
    assert _value(registry, name, platform="jira", operation="create", status="201") == 1
    assert _value(registry, name, platform="jira", operation=UNKNOWN, status="200") == 1


def test_sla_breaches_bound_priority_and_kind(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    metrics.sla_breach("servicenow", "1", "response")
    metrics.sla_breach("servicenow", "1", "resolution")
    metrics.sla_breach("servicenow", "P0!!", "whenever")
    name = "itsm_sla_breaches_total"
    assert _value(registry, name, platform="servicenow", priority="1", kind="response") == 1
    assert _value(registry, name, platform="servicenow", priority="1", kind="resolution") == 1
    assert _value(registry, name, platform="servicenow", priority=UNKNOWN, kind=UNKNOWN) == 1


def test_open_tickets_replace_the_whole_gauge(registry: CollectorRegistry) -> None:
    metrics = _metrics(registry)
    metrics.set_open_tickets({("jira", "AT_RISK"): 4, ("jira", "on_track"): 10, ("servicenow", ""): 2})
    name = "itsm_open_tickets"
    assert _value(registry, name, platform="jira", sla_state="at_risk") == 4
    assert _value(registry, name, platform="jira", sla_state="on_track") == 10
    assert _value(registry, name, platform="servicenow", sla_state="none") == 2
    assert _value(registry, name, platform="servicenow", sla_state="breached") == 0
    metrics.set_open_tickets({("jira", "on_track"): 3, ("jira", "lost"): 1})
    assert _value(registry, name, platform="jira", sla_state="at_risk") == 0  # stale series reset
    assert _value(registry, name, platform="jira", sla_state=UNKNOWN) == 1
    metrics.set_open_tickets({})
    assert _value(registry, name, platform="jira", sla_state=UNKNOWN) == 0


def test_families_are_registered_once_per_registry(registry: CollectorRegistry) -> None:
    first, second = _metrics(registry), _metrics(registry)
    assert itsm_families(registry) is itsm_families(registry)
    first.ticket_created("jira", "created", 1.0)
    second.ticket_created("jira", "created", 1.0)
    assert _value(registry, "itsm_ticket_creation_total", platform="jira", outcome="created") == 2
    assert itsm_families(CollectorRegistry()) is not itsm_families(registry)
