"""The Grafana dashboard and the alert rules only query metrics this service exports.

metric_names_in(expr) lists the series names a PromQL expression selects; exported_names(source)
lists every sample name a scrape of a registry (or of parsed /metrics text) can carry. Both are
meant for reuse against a running gateway's real /metrics:

    families = prometheus_client.parser.text_string_to_metric_families(scraped_text)
    assert metric_names_in(expr) <= exported_names(families) | SYNTHETIC

promtool, when on PATH, checks the rules, runs their unit tests (deploy/prometheus/alerts_test.yml),
checks the scrape config, and parses every dashboard query too (as recording rules).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.observability.metrics import ItsmMetrics
from server.transport.grpc_metrics import grpc_server_families

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/docker/config/grafana/dashboards/itsm_analytics.json"
PROMETHEUS = ROOT / "deploy/prometheus"
ALERTS = PROMETHEUS / "alerts.yml"

# Series Prometheus makes itself for every target, not exported by the service.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Sample names each metric type exposes, by suffix ("_created" is prometheus_client's own).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}

# ------------------------------------------------------------------------------ the checker

_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""
    r"|(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<open>[\[{(])|(?P<close>[\]})])"
    r"|(?P<other>\S)"
)
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
     "offset", "atan2", "inf", "nan"}
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    text = _GRAFANA_VARIABLE.sub("1", expr)  # a template variable stands where a value would
    return [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(text)]


def _skip_group(tokens: list[tuple[str, str]], start: int) -> int:
    """Index just past the bracketed group opening at `start`."""
    depth, i = 0, start
    while i < len(tokens):
        kind = tokens[i][0]
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced brackets")


def metric_names_in(expr: str) -> set[str]:
    """Series names a PromQL expression selects, as written (x_bucket stays x_bucket).

    Identifiers that are functions or aggregations (followed by "("), keywords, label names inside
    {...} or by/without/on/ignoring/group_x (...), and ranges [...] are not metric names.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "open" and value in "{[":
            matchers = tokens[i:_skip_group(tokens, i)]
            names.update(_name_matchers(matchers))
            i = _skip_group(tokens, i)
            continue
        if kind == "ident" and value.lower() in _GROUPING and following == ("open", "("):
            i = _skip_group(tokens, i + 1)
            continue
        # An aggregation is followed by "(" or by its grouping: sum by (le) (...).
        aggregation = following[0] == "ident" and following[1].lower() in ("by", "without")
        if kind == "ident" and value.lower() not in _KEYWORDS and following != ("open", "(") and not aggregation:
            names.add(value)
        i += 1
    return names


def _name_matchers(tokens: list[tuple[str, str]]) -> set[str]:
    """{__name__="x"} selects x too."""
    found = set()
    for i in range(len(tokens) - 2):
        if tokens[i] == ("ident", "__name__") and tokens[i + 1][1] == "=" and tokens[i + 2][0] == "string":
            found.add(tokens[i + 2][1][1:-1])
    return found


def exported_names(source: CollectorRegistry | Iterable[Metric]) -> set[str]:
    """Every sample name a scrape can show: from the metric types, so a labelled family with no
    child yet still counts, plus the samples present."""
    families = source.collect() if isinstance(source, CollectorRegistry) else source
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def service_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ItsmMetrics(registry)
    grpc_server_families(registry)
    return registry


# ------------------------------------------------------------------------------ reading the files


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs() -> dict[str, str]:
    """refs like 'panel 3 (Title) A' -> PromQL."""
    found = {}
    for panel in _panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            found[f"panel {panel['id']} ({panel['title']}) {target['refId']}"] = target["expr"]
    return found


def alert_exprs(text: str) -> dict[str, str]:
    """alert name -> expr, from rules whose expr is a block scalar (`expr: |`) or one line."""
    found: dict[str, str] = {}
    lines = text.splitlines()
    name = "?"
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(("- alert:", "- record:")):
            name = stripped.split(":", 1)[1].strip()
        if stripped.startswith("expr:"):
            value = stripped[len("expr:"):].strip()
            if value in ("|", "|-", ">", ">-"):
                indent = len(line) - len(line.lstrip())
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                found[name] = "\n".join(block).strip()
                continue
            found[name] = value.strip("'\"")
        i += 1
    return found


# ------------------------------------------------------------------------------ the checker's own tests


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('histogram_quantile(0.95, sum by (le, platform) (rate(x_bucket{a="b{c}", d=~"$platform"}[5m])))', {"x_bucket"}),
        ("sum(rate(a_total[5m] offset 1h)) / on (platform) group_left (zone) b > bool 2", {"a_total", "b"}),
        ("clamp_min(x, 1e-9) * 0x1F + .5 - inf", {"x"}),
        ("sum without (instance) (y) unless z", {"y", "z"}),
        ('{__name__="named_series", job="j"}', {"named_series"}),
        ("rate(q[$__rate_interval:1m])", {"q"}),
        ("label_replace(w, 'dst', '$1', 'src', '(.*)')", {"w"}),
    ],
)
def test_metric_names_in(expr: str, names: set[str]) -> None:
    assert metric_names_in(expr) == names


def test_exported_names_know_suffixes_even_without_samples() -> None:
    names = exported_names(service_registry())
    assert {
        "itsm_ticket_creation_duration_seconds_bucket", "itsm_ticket_creation_duration_seconds_count",
        "itsm_ticket_creation_duration_seconds_sum", "itsm_validation_errors_total", "itsm_open_tickets",
        "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
    } <= names
    assert "itsm_ticket_creation_total_bucket" not in names
    assert "itsm_open_tickets_total" not in names


def test_exported_names_read_the_same_from_scraped_text() -> None:
    registry = service_registry()
    scraped = text_string_to_metric_families(generate_latest(registry).decode())
    assert exported_names(scraped) == exported_names(registry)


# ------------------------------------------------------------------------------ the dashboard and alerts


def test_every_dashboard_query_uses_exported_metrics_only() -> None:
    exported = exported_names(service_registry()) | SYNTHETIC
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for ref, expr in exprs.items():
        unknown = metric_names_in(expr) - exported
        assert not unknown, f"{ref}: {sorted(unknown)} not exported by the gateway"
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
            assert metric and metric.group(1) in exported


def test_the_dashboard_covers_every_family() -> None:
    used = set().union(*(metric_names_in(e) for e in dashboard_exprs().values()))
    # Derived from the registry: a new ITSM family without a panel fails here.
    for family in service_registry().collect():
        if family.name.startswith("itsm_"):
            samples = {family.name + suffix for suffix in _SUFFIXES[family.type]}
            assert used & samples, f"no dashboard query shows {family.name}"
    assert {
        "itsm_ticket_operations_total", "itsm_ticket_operation_duration_seconds_bucket",
        "itsm_dedup_decisions_total", "itsm_marker_dropped_total",
        "itsm_platform_request_duration_seconds_count", "itsm_platform_request_duration_seconds_bucket",
        "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
    } <= used


def test_the_lifecycle_panels_show_what_operators_ask_for() -> None:
    exprs = {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in _panels(dashboard()["panels"])
        if panel["type"] != "row"
    }
    assert "outcome" in _grouping(exprs["Operations by outcome"][0])
    latency = exprs["Operation latency p50 / p99"]
    assert [e.split(",")[0] for e in latency] == ["histogram_quantile(0.5", "histogram_quantile(0.99"]
    assert all(metric_names_in(e) == {"itsm_ticket_operation_duration_seconds_bucket"} for e in latency)
    assert "decision" in _grouping(exprs["Dedup decisions"][0])
    assert metric_names_in(exprs["Correlation marker drops"][0]) == {"itsm_marker_dropped_total"}


def _grouping(expr: str) -> set[str]:
    """The labels of the outermost `by (...)` of an expression."""
    found = re.search(r"\bby \(([^)]*)\)", expr)
    assert found, expr
    return {label.strip() for label in found.group(1).split(",")}


def test_open_tickets_are_never_summed_across_replicas() -> None:
    # Every replica reports the whole database's count: sum would multiply it by the replicas.
    queries = {**dashboard_exprs(), **alert_exprs(ALERTS.read_text(encoding="utf-8"))}
    using = {ref: e for ref, e in queries.items() if "itsm_open_tickets" in metric_names_in(e)}
    assert len(using) >= 3
    for ref, expr in using.items():
        assert re.search(r"max by \([^)]*\) \(itsm_open_tickets\{", expr), f"{ref}: {expr}"


def test_dashboard_shape() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39 and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = list(_panels(board["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_every_alert_uses_exported_metrics_only() -> None:
    text = ALERTS.read_text(encoding="utf-8")
    exprs = alert_exprs(text)
    assert len(exprs) == text.count("- alert:") >= 7
    exported = exported_names(service_registry()) | SYNTHETIC
    for name, expr in exprs.items():
        unknown = metric_names_in(expr) - exported
        assert not unknown, f"alert {name}: {sorted(unknown)} not exported by the gateway"
    used = set().union(*(metric_names_in(e) for e in exprs.values()))
    assert {
        "itsm_ticket_creation_total", "itsm_ticket_creation_duration_seconds_bucket",
        "itsm_sla_breaches_total", "itsm_ticket_retry_attempts_total",
        "itsm_platform_request_duration_seconds_count", "itsm_ticket_operations_total",
        "itsm_marker_dropped_total", "itsm_open_tickets", "up",
    } <= used


def test_the_operation_error_alert_leaves_caller_mistakes_out() -> None:
    expr = alert_exprs(ALERTS.read_text(encoding="utf-8"))["ItsmTicketOperationErrors"]
    assert "by (platform, operation)" in expr
    # Numerator and denominator (and the volume guard) both leave out invalid and replayed.
    assert expr.count('outcome!~"succeeded|invalid|replayed"') == 1
    assert expr.count('outcome!~"invalid|replayed"') == 2
    assert expr.count('platform!="_unknown"') == 3


# ------------------------------------------------------------------------------ promtool

_PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(_PROMTOOL is None, reason="promtool not on PATH (apt-get install prometheus)")


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> None:
    assert _PROMTOOL is not None
    done = subprocess.run([_PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    _promtool("check", "rules", "alerts.yml")
    _promtool("check", "config", "prometheus.yml")


@needs_promtool
def test_promtool_alert_unit_tests() -> None:
    _promtool("test", "rules", "alerts_test.yml")


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # Grafana's variables replaced by what they expand to; JSON is YAML, so no YAML writer needed.
    grafana = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$platform": ".*"}
    rules = []
    for i, expr in enumerate(dashboard_exprs().values()):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    _promtool("check", "rules", str(path), cwd=tmp_path)
