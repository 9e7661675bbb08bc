"""In-process cost of the pure request path: validate (ServiceNow, Jira) and render (a template).

Prints the median (and min), over several runs, of the time per call in microseconds, against the
ceilings (10 ms validation, 5 ms rendering) and the aims (20 us, 10 us); then the worst hostile
inputs a request can carry, which must stay under the ceilings. No network, no gRPC.

    .venv/bin/python scripts/bench_inprocess.py [--runs 7] [--iterations 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.domain.payload import build_payload  # noqa: E402
from server.domain.templates import JobContext, compiled_template, render, render_and_validate  # noqa: E402
from server.domain.validation import validate  # noqa: E402
from server.runtime.config import GatewayConfig, load_config  # noqa: E402

DUMMY_ENV = {
    "SERVICENOW_USERNAME": "bench",
    "SERVICENOW_PASSWORD": "bench",
    "JIRA_EMAIL": "bench@example.com",
    "JIRA_API_TOKEN": "bench",
}
SERVICENOW_FIELDS = {
    "summary": "Disk full on db-01",
    "description": "The /var volume on db-01 reached 100% at 03:12 UTC.",
    "impact": "2",
    "urgency": "2",
    "category": "database",
    "assignment_group": "DBA",
}
JIRA_FIELDS = {
    "project": "OPS",
    "issue_type": "Bug",
    "summary": "Nightly export failed",
    "description": "The export job exited with status 3.",
    "priority": "High",
    "labels": "export,nightly",
}
OUTAGE_VARIABLES = {
    "service": {"name": "checkout"},
    "alert": {"host": "web-07", "summary": "HTTP 5xx rate above 20% for 5 minutes", "count": 3.0},
}


def per_call_us(call: Callable[[], object], runs: int, iterations: int) -> tuple[float, float]:
    """(median, min) over runs of the mean time per call, in microseconds."""
    for _ in range(max(1, iterations // 10)):  # warm caches and the specialising interpreter
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            call()
        samples.append((time.perf_counter_ns() - start) / iterations / 1000)
    return statistics.median(samples), min(samples)


Case = tuple[str, Callable[[], object], float, float, int]  # label, call, ceiling us, aim us, divisor


def typical_cases(config: GatewayConfig) -> list[Case]:
    limits = config.limits
    servicenow, jira = config.field_mapping["servicenow"], config.field_mapping["jira"]
    outage = compiled_template(config.templates["servicenow_service_outage"])
    job = JobContext(id="job-42", time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    size = 160  # what the servicer passes: the Struct's ByteSize(), known without a walk
    return [
        (
            "validate servicenow (6 fields)",
            lambda: validate(servicenow, SERVICENOW_FIELDS, limits),
            10_000.0,
            20.0,
            1,
        ),
        ("validate jira (6 fields)", lambda: validate(jira, JIRA_FIELDS, limits), 10_000.0, 20.0, 1),
        (
            "render outage (size given)",
            lambda: render(outage, OUTAGE_VARIABLES, job, limits, size),
            5_000.0,
            10.0,
            1,
        ),
        (
            "render outage (size measured)",
            lambda: render(outage, OUTAGE_VARIABLES, job, limits),
            5_000.0,
            10.0,
            1,
        ),
        (
            "render_and_validate outage",
            lambda: render_and_validate(outage, OUTAGE_VARIABLES, job, servicenow, limits, size),
            15_000.0,
            30.0,
            1,
        ),
        ("build_payload jira", lambda: build_payload(jira, JIRA_FIELDS), 1_000.0, 10.0, 1),
    ]


def hostile_cases(config: GatewayConfig) -> list[Case]:
    """Worst inputs a 1 MB request can carry: bounded, but not on the hot path's budget."""
    limits = config.limits
    jira = config.field_mapping["jira"]
    odd_keys = {f"{'x' * 60}{i:04d}\u202e": "v" for i in range(limits.max_fields)}
    many_keys = {f"k{i}": "" for i in range(150_000)}  # about what 1 MB of map entries holds
    huge_values = {name: "A" * 1_000_000 for name in ("project", "summary", "labels", "parent")}
    many_labels = {"summary": "s", "labels": ",".join(["a b"] * 8_000)}  # just under the cap
    return [
        ("validate 64 odd unknown keys", lambda: validate(jira, odd_keys, limits), 10_000.0, 0, 100),
        ("validate 150k unknown keys", lambda: validate(jira, many_keys, limits), 10_000.0, 0, 1000),
        ("validate 4 x 1 MB values", lambda: validate(jira, huge_values, limits), 10_000.0, 0, 100),
        ("validate 8k bad list items", lambda: validate(jira, many_labels, limits), 10_000.0, 0, 100),
    ]


def report(cases: list[Case], runs: int, iterations: int) -> None:
    print(f"{'path':32} {'median us':>10} {'min us':>9} {'aim':>6} {'ceiling':>8}  verdict")
    for label, call, ceiling, aim, divisor in cases:
        median, best = per_call_us(call, runs, max(1, iterations // divisor))
        verdict = (
            "within aim"
            if aim and median <= aim
            else "within ceiling"
            if median <= ceiling
            else "OVER CEILING"
        )
        print(f"{label:32} {median:10.2f} {best:9.2f} {aim or '-':>6} {ceiling:8.0f}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    config = load_config(ROOT / "config" / "itsm_config.json", env=DUMMY_ENV)
    print(f"median of {args.runs} runs x {args.iterations} calls (Python {sys.version.split()[0]})")
    report(typical_cases(config), args.runs, args.iterations)
    print("\nhostile inputs (fewer calls per run)")
    report(hostile_cases(config), args.runs, args.iterations)


if __name__ == "__main__":
    main()
