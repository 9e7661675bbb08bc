"""An Alertmanager notification as the domain reads it: strict parsing with every violation at once,
its dedup key and request_id, and what a template gets from it (variables, {alerts_text})."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from server.domain import errors
from server.domain.alert_keys import MAX_KEY, dedup_key, request_id
from server.domain.alert_payload import MAX_VIOLATIONS, Notification, parse_notification
from server.domain.alert_variables import (
    VALUE_CHARS,
    TextBounds,
    alerts_text,
    template_variables,
    unprovided,
)
from server.domain.fitting import MARK
from tests.alert_payloads import alert, notification, resolved


def parsed(payload: dict[str, Any]) -> Notification:
    return parse_notification(json.loads(json.dumps(payload)))


def violations(body: Any) -> dict[str, str]:
    with pytest.raises(errors.InvalidArgument) as caught:
        parse_notification(body)
    return {v.field: v.reason for v in caught.value.violations}


# --- parsing ------------------------------------------------------------------------------------


def test_a_version_4_notification_is_read_whole() -> None:
    payload = notification([alert("DiskFull", "db-1", severity="page"), alert("DiskFull", "db-2")], truncated=3)
    n = parsed(payload)
    assert (n.version, n.status, n.receiver, n.truncated_alerts) == ("4", "firing", "itsm", 3)
    assert n.group_labels == {"alertname": "DiskFull"} and n.common_labels == {"alertname": "DiskFull"}
    assert n.external_url == "http://alertmanager-0:9093" and len(n.alerts) == 2
    first = n.alerts[0]
    assert first.labels["severity"] == "page" and first.annotations["summary"] == "DiskFull on db-1"
    assert first.starts_at.isoformat() == "2024-05-01T12:00:00.123456+00:00"  # nanoseconds cut
    assert first.ends_at.year == 1 and first.fingerprint == "fp-DiskFull-db-1"
    assert parsed({**payload, "newField": {"x": 1}}) == n  # what version 4 may add is ignored
    no_truncated = {k: v for k, v in payload.items() if k != "truncatedAlerts"}
    assert parsed(no_truncated).truncated_alerts == 0  # before Alertmanager 0.22


def test_every_violation_at_once_by_json_path() -> None:
    payload = notification([alert("A", "h-1"), alert("B", "h-2")])
    bad = copy.deepcopy(payload)
    bad.update(version="3", status="burning", truncatedAlerts=-1, externalURL=None)
    del bad["receiver"]
    bad["groupLabels"] = ["alertname"]
    bad["commonAnnotations"]["runbook"] = {"url": "x"}
    bad["alerts"][0].update(startsAt="2024-02-30T00:00:00Z", fingerprint="")
    bad["alerts"][1] = "an alert"
    assert violations(bad) == {
        "version": "ENUM",
        "status": "ENUM",
        "truncatedAlerts": "TYPE",
        "externalURL": "TYPE",
        "receiver": "REQUIRED",
        "groupLabels": "TYPE",
        "commonAnnotations.runbook": "TYPE",
        "alerts[0].startsAt": "PATTERN",
        "alerts[0].fingerprint": "REQUIRED",
        "alerts[1]": "TYPE",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], ""),
        ("4", ""),
        ({**notification([alert("A", "b")]), "alerts": []}, "alerts"),
        ({**notification([alert("A", "b")]), "alerts": {}}, "alerts"),
        ({**notification([alert("A", "b")]), "groupKey": ""}, "groupKey"),
        ({**notification([alert("A", "b")]), "commonLabels": {"": "x"}}, "commonLabels"),
        ({**notification([alert("A", "b")]), "commonLabels": {"a": "nul\x00"}}, "commonLabels.a"),
        ({**notification([alert("A", "b")]), "receiver": "lone \ud800"}, "receiver"),
    ],
)
def test_shapes_that_are_no_notification(body: Any, field: str) -> None:
    assert field in violations(body)


def test_times_are_rfc3339() -> None:
    for good in ("2024-05-01T12:00:00Z", "2024-05-01t12:00:00.5+02:00", "2024-05-01T12:00:00.123456789-07:00"):
        payload = notification([alert("A", "b", starts=good)])
        assert parsed(payload).alerts[0].starts_at.tzinfo is not None
    for bad in ("2024-05-01", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00", "1714564800", "x" * 10_000):
        assert "alerts[0].startsAt" in violations(notification([alert("A", "b", starts=bad)]))


def test_violations_are_bounded() -> None:
    payload = notification([alert("A", f"h-{i}") for i in range(100)])
    for a in payload["alerts"]:
        a["startsAt"] = "soon"
    with pytest.raises(errors.InvalidArgument) as caught:
        parse_notification(payload)
    assert len(caught.value.violations) == MAX_VIOLATIONS
    assert "(and 99 more)" in str(caught.value)  # counted past those kept


# --- identities ---------------------------------------------------------------------------------


def test_the_dedup_key_is_the_receiver_and_the_group_labels() -> None:
    n = parsed(notification([alert("DiskFull", "db-1", cluster="eu")], group_by=("cluster", "alertname")))
    assert dedup_key("ops", n, None) == 'alertmanager/ops/{"alertname":"DiskFull","cluster":"eu"}'
    assert dedup_key("other", n, None) != dedup_key("ops", n, None)
    # Configured labels, in their order, from the group labels then the common ones.
    assert dedup_key("ops", n, ("instance", "alertname")) == 'alertmanager/ops/{"instance":"db-1","alertname":"DiskFull"}'
    # An edited routing tree that keeps the configured labels keeps the key.
    regrouped = parsed(notification([alert("DiskFull", "db-1", cluster="eu")], group_by=("alertname",)))
    assert dedup_key("ops", regrouped, ("alertname",)) == dedup_key("ops", n, ("alertname",))


def test_empty_labels_fall_back_to_the_group_key() -> None:
    n = parsed(notification([alert("A", "h-1")], group_by=()))
    assert dedup_key("ops", n, None) == 'alertmanager/ops/groupKey="{}:{}"'
    assert dedup_key("ops", n, ("team",)) == dedup_key("ops", n, None)


def test_the_dedup_key_is_unambiguous_printable_and_bounded() -> None:
    tricky = parsed(notification([alert("A", 'x","b":"c', weird="line\nbreak é")], group_by=("instance", "weird")))
    key = dedup_key("ops", tricky, None)
    assert key.isascii() and key.isprintable()
    long_one = parsed(notification([alert("A", "h" * 400)], group_by=("instance",)))
    long_two = parsed(notification([alert("A", "h" * 399 + "i")], group_by=("instance",)))
    one, two = dedup_key("ops", long_one, None), dedup_key("ops", long_two, None)
    assert len(one) == len(two) == MAX_KEY and one != two and one.startswith("alertmanager/ops/")


def test_the_request_id_is_the_notification_content() -> None:
    a, b = alert("DiskFull", "db-1"), alert("DiskFull", "db-2")
    n = parsed(notification([a, b]))
    rid = request_id("ops", n)
    assert rid.startswith("am-") and len(rid) <= 128 and rid.isprintable()
    # The HA peer's copy: same alerts, other order, other externalURL.
    assert request_id("ops", parsed(notification([b, a], external_url="http://am-1:9093"))) == rid
    assert request_id("ops", parsed(notification([a]))) != rid  # one alert fewer
    assert request_id("ops", parsed(resolved(notification([a, b])))) != rid  # resolved
    assert request_id("other", n) != rid
    again = alert("DiskFull", "db-1", starts="2024-05-01T15:00:00Z")  # it fired again
    assert request_id("ops", parsed(notification([again, b]))) != rid
    same_instant = alert("DiskFull", "db-1", starts="2024-05-01T14:00:00.123456+02:00")
    assert request_id("ops", parsed(notification([same_instant, b]))) == rid


# --- what a template gets -----------------------------------------------------------------------


def test_alerts_text_has_a_line_per_alert() -> None:
    a = alert("DiskFull", "db-1", summary="disk\n97% full")
    b = alert("DiskFull", "db-0", starts="2024-05-01T11:00:00Z")
    text = alerts_text(parsed(notification([a, b])), TextBounds())
    first, second = text.splitlines()
    assert first.startswith("[firing] alertname=DiskFull instance=db-0 | DiskFull on db-0 | since 2024-05-01T11:00:00Z")
    assert second == (
        "[firing] alertname=DiskFull instance=db-1 | disk 97% full | since 2024-05-01T12:00:00Z | "
        "http://prometheus:9090/graph?g0.expr=up%7Binstance%3D%22db-1%22%7D"
    )


def test_alerts_text_is_bounded_with_a_note() -> None:
    many = parsed(notification([alert("A", f"h-{i:03}") for i in range(50)], truncated=7))
    text = alerts_text(many, TextBounds(max_alerts=5, max_chars=2000))
    lines = text.splitlines()
    assert len(lines) == 6 and lines[-1] == f"{MARK} and 45 more alerts not listed; 7 more left out by Alertmanager (max_alerts)"
    short = alerts_text(many, TextBounds(max_alerts=50, max_chars=300))
    assert len(short) <= 300 and "more alerts not listed" in short
    huge = parsed(notification([alert("A", "h", summary="s" * 5000)]))
    one = alerts_text(huge, TextBounds(max_alerts=5, max_chars=500))
    assert len(one) <= 500 and one.endswith(MARK)


def test_variables_hold_only_what_the_template_declares() -> None:
    n = parsed(notification([alert("DiskFull", "db-1"), alert("DiskFull", "db-2")], truncated=1))
    declared = ("status", "alerts_count", "commonLabels.alertname", "commonAnnotations.runbook",
                "groupLabels.alertname", "alerts_text")
    variables = template_variables(n, declared, TextBounds())
    assert variables["status"] == "firing" and variables["alerts_count"] == 3
    assert variables["commonLabels"] == {"alertname": "DiskFull"}
    assert variables["commonAnnotations"] == {"runbook": ""}  # absent: empty, not a refusal
    assert variables["groupLabels"] == {"alertname": "DiskFull"}
    assert set(variables) == {"status", "alerts_count", "commonLabels", "commonAnnotations", "groupLabels",
                              "alerts_text"}
    big = parsed(notification([alert("A", "h", summary="s" * 10_000)]))
    cut = template_variables(big, ("commonAnnotations.summary",), TextBounds())
    assert len(cut["commonAnnotations"]["summary"]) == VALUE_CHARS


def test_what_a_template_for_alerts_may_declare() -> None:
    assert unprovided(["status", "externalURL", "commonLabels.x", "groupLabels.y", "alerts_text"]) == []
    assert unprovided(["service.name", "commonLabels", "commonLabels.a.b", "job_name"]) == [
        "service.name", "commonLabels", "commonLabels.a.b", "job_name"
    ]
