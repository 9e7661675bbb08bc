"""Alertmanager webhook notifications (payload version 4) as Alertmanager builds them, for tests."""

from __future__ import annotations

from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: a firing alert's endsAt


def alert(
    name: str,
    instance: str,
    *,
    starts: str = "2024-05-01T12:00:00.123456789Z",
    status: str = "firing",
    summary: str = "",
    **labels: str,
) -> dict[str, Any]:
    annotations = {"summary": summary or f"{name} on {instance}", "description": f"{name} is firing"}
    return {
        "status": status,
        "labels": {"alertname": name, "instance": instance, **labels},
        "annotations": annotations,
        "startsAt": starts,
        "endsAt": "2024-05-01T13:00:00Z" if status == "resolved" else ZERO_TIME,
        "generatorURL": f"http://prometheus:9090/graph?g0.expr=up%7Binstance%3D%22{instance}%22%7D",
        "fingerprint": f"fp-{name}-{instance}",
    }


def notification(
    alerts: list[dict[str, Any]],
    *,
    group_by: tuple[str, ...] = ("alertname",),
    status: str | None = None,
    receiver: str = "itsm",
    external_url: str = "http://alertmanager-0:9093",
    truncated: int = 0,
) -> dict[str, Any]:
    """Common labels and annotations are what every alert shares, as Alertmanager computes them."""
    common_labels = _common([a["labels"] for a in alerts])
    group_labels = {name: common_labels[name] for name in group_by if name in common_labels}
    firing = any(a["status"] == "firing" for a in alerts)
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def resolved(payload: dict[str, Any]) -> dict[str, Any]:
    """The same group, every alert resolved."""
    alerts = [{**a, "status": "resolved", "endsAt": "2024-05-01T13:00:00Z"} for a in payload["alerts"]]
    return {**payload, "status": "resolved", "alerts": alerts}


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}
