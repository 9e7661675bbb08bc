"""The crash and replica drills (scripts/drill_crash.py, scripts/drill_replica.py) at a reduced
size: real processes (the sandbox, `itsm-gateway serve`), real faults, a real SIGKILL.

The full size is 500 creates, 100 in flight; here 60 creates, 20 in flight (crash) and 40 creates
(replica), with the lags, confirmation delays and timeouts shortened alike.
"""

from __future__ import annotations

import pytest

from scripts.drill_crash import crash_drill
from scripts.drill_replica import replica_drill
from scripts.drilling import Faults, Timings
from tests.conftest import postgres_server_url
from tests.processes import clock_ahead

FAULTS = Faults(late_commit_ms=800, search_lag_ms=1200)
TIMINGS = Timings(
    total_seconds=3.0,
    pending_lease_seconds=16.0,
    reconcile_interval_seconds=1.0,
    in_flight_wait_seconds=8.0,
    confirmation={"servicenow": (1.4, 1.4), "jira": (1.4, 2.6)},
    sla_sync_interval_seconds=1.0,
    sla_lease_seconds=4.0,
)


def _passed(verdict) -> str:  # type: ignore[no-untyped-def]
    return "\n".join([*verdict.failures[:20], str(verdict.figures)])


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_crash_drill_every_request_id_answered_once_after_a_sigkill(database: str) -> None:
    postgres = postgres_server_url() if database == "postgres" else None
    verdict = await crash_drill(
        database, creates=60, in_flight=20, seed=5, faults=FAULTS, timings=TIMINGS, postgres_url=postgres
    )
    assert verdict.passed, _passed(verdict)
    figures = verdict.figures
    assert figures["duplicates"] == figures["missing"] == 0
    assert figures["records"] == figures["expected_records"]
    assert figures["kill"]["in_flight"] > 0  # the kill cut calls in flight
    assert sum(figures["faults_injected"].values()) > 0
    assert figures["via_web"] > 0


@pytest.mark.parametrize("skewed", [False, True], ids=["plain", "clock_ahead"])
async def test_replica_drill_two_gateways_one_killed(skewed: bool) -> None:
    postgres = postgres_server_url()
    if skewed:
        clock_ahead("+5m")  # skips (fails under CI) without faketime
    verdict = await replica_drill(
        skewed, creates=40, in_flight=20, seed=5, faults=FAULTS, timings=TIMINGS, postgres_url=postgres
    )
    assert verdict.passed, _passed(verdict)
    figures = verdict.figures
    assert figures["duplicates"] == figures["missing"] == 0
    assert figures["breaches_recorded"] > 0 and figures["breaches_counted_twice"] == 0
    assert figures["answered_by_both"] > 0
