"""What an Alertmanager notification offers a ticket template: its fields as variables, and the
alerts pre-rendered as text, one line each.

    {status} {receiver} {externalURL} {groupKey} {truncatedAlerts}
    {alerts_count}   every alert of the group: those sent plus those Alertmanager left out
    {alerts_text}    one line per alert: status, labels, summary, start time, generator URL;
                     at most max_alerts lines and max_chars characters, then a note of what is left
    {commonLabels.<name>} {commonAnnotations.<name>} {groupLabels.<name>}

Only the variables a template declares are built, so its request carries (and its request_id is
bound to) nothing else: a change to an annotation no field shows is no new payload. A declared label
or annotation the notification lacks is "" (Alertmanager leaves out what the alerts do not share),
never a refusal that would cost the ticket. Each inserted value is cut to VALUE_CHARS, so the
variables stay within any sane max_variables_bytes whatever the labels hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from server.domain.alert_payload import Alert, Notification
from server.domain.fitting import MARK
from server.domain.templates import iso_utc

SCALARS: Final = frozenset(
    {"status", "receiver", "externalURL", "groupKey", "truncatedAlerts", "alerts_count", "alerts_text"}
)
LABEL_MAPS: Final = ("commonLabels", "commonAnnotations", "groupLabels")
VALUE_CHARS: Final = 4096
_NOTE_ROOM: Final = 100  # kept free for the closing note


@dataclass(frozen=True)
class TextBounds:
    """How much of the alerts {alerts_text} lists."""

    max_alerts: int = 20
    max_chars: int = 2000


def unprovided(variables: Iterable[str]) -> list[str]:
    """The declared variables a notification cannot fill (a configuration mistake)."""
    return [name for name in variables if not _provided(name)]


def _provided(name: str) -> bool:
    if name in SCALARS:
        return True
    head, dot, label = name.partition(".")
    return bool(dot) and head in LABEL_MAPS and "." not in label


def provided_names() -> str:
    """For an error message: what a template for alerts may use."""
    maps = ", ".join(f"{m}.<name>" for m in LABEL_MAPS)
    return f"{', '.join(sorted(SCALARS))}, {maps}"


def template_variables(
    notification: Notification, declared: Iterable[str], bounds: TextBounds
) -> dict[str, Any]:
    """The declared variables' values, nested as the template reads them (commonLabels.x is
    {"commonLabels": {"x": ...}})."""
    variables: dict[str, Any] = {}
    for name in declared:
        head, dot, label = name.partition(".")
        if dot:
            source = _label_map(notification, head)
            variables.setdefault(head, {})[label] = _cut(source.get(label, ""))
        elif name in SCALARS:
            variables[name] = _scalar(notification, name, bounds)
    return variables


def _label_map(notification: Notification, name: str) -> Mapping[str, str]:
    if name == "commonLabels":
        return notification.common_labels
    if name == "commonAnnotations":
        return notification.common_annotations
    return notification.group_labels


def _scalar(notification: Notification, name: str, bounds: TextBounds) -> str | int:
    if name == "alerts_text":
        return alerts_text(notification, bounds)
    if name == "alerts_count":
        return len(notification.alerts) + notification.truncated_alerts
    if name == "truncatedAlerts":
        return notification.truncated_alerts
    values = {
        "status": notification.status,
        "receiver": notification.receiver,
        "externalURL": notification.external_url,
        "groupKey": notification.group_key,
    }
    return _cut(values[name])


def alerts_text(notification: Notification, bounds: TextBounds) -> str:
    """One line per alert, oldest first, within bounds; a note says what was left out."""
    alerts = sorted(notification.alerts, key=lambda a: (a.starts_at, a.fingerprint))
    room = max(bounds.max_chars - _NOTE_ROOM, 1)
    lines: list[str] = []
    used = 0
    for alert in alerts[: bounds.max_alerts]:
        line = alert_line(alert)
        if used + len(line) + 1 > room:
            if not lines:  # one alert too long for the whole text: it shows, cut
                lines.append(line[: room - 1] + MARK)
            break
        lines.append(line)
        used += len(line) + 1
    note = _note(len(alerts) - len(lines), notification.truncated_alerts)
    return "\n".join([*lines, note] if note else lines)[: bounds.max_chars]


def alert_line(alert: Alert) -> str:
    labels = " ".join(f"{name}={_one_line(value)}" for name, value in sorted(alert.labels.items()))
    parts = [f"[{alert.status}] {labels}"]
    summary = alert.annotations.get("summary", "")
    if summary:
        parts.append(_one_line(summary))
    parts.append(f"since {iso_utc(alert.starts_at)}")
    if alert.generator_url:
        parts.append(alert.generator_url)
    return " | ".join(parts)


def _note(unlisted: int, truncated: int) -> str:
    found = []
    if unlisted:
        found.append(f"{unlisted} more alert{'s' if unlisted != 1 else ''} not listed")
    if truncated:
        found.append(f"{truncated} more left out by Alertmanager (max_alerts)")
    return f"{MARK} and {'; '.join(found)}" if found else ""


def _one_line(text: str) -> str:
    """A value kept on its line: a newline in an annotation must not pass for another alert."""
    return " ".join(text.split())


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - len(MARK)] + MARK
