"""An Alertmanager webhook notification (payload version "4"), read strictly from decoded JSON.

    {"version": "4", "groupKey": "...", "truncatedAlerts": 0, "status": "firing" | "resolved",
     "receiver": "...", "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "externalURL": "...", "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt",
                                       "generatorURL", "fingerprint"}, ...]}

Every field Alertmanager always sends is required, with its type; label and annotation maps hold
strings; times are RFC 3339. truncatedAlerts (absent before Alertmanager 0.22) defaults to 0. Keys this
gateway does not read are ignored: the version is what guards against an incompatible payload
(Alertmanager bumps it), and a field added to version 4 must not turn every notification into a
refusal Alertmanager never retries. Violations are reported together (a bounded number), named by
their JSON path: "alerts[2].startsAt", "commonLabels.severity".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from server.domain import errors
from server.domain.validation import Reason, Violation, shown

VERSION: Final = "4"
FIRING, RESOLVED = "firing", "resolved"
STATUSES: Final = (FIRING, RESOLVED)
MAX_VIOLATIONS: Final = 20  # a payload with thousands of bad alerts gets a bounded answer
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_MAX_TIME_CHARS: Final = 40
# What no stored text may hold, as on the gRPC port: C0 controls other than tab, newline and carriage
# return (PostgreSQL refuses NUL), and lone surrogates (JSON can spell them; UTF-8 cannot).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime  # timezone-aware
    ends_at: datetime  # Go's zero time (year 1) while it fires with no end known
    generator_url: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Notification:
    version: str
    group_key: str
    truncated_alerts: int  # alerts Alertmanager left out (webhook_config max_alerts)
    status: str
    receiver: str  # Alertmanager's receiver name (not necessarily the gateway's)
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]


class _Reader:
    """Collects violations while reading; every accessor returns a usable value either way."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.more = 0  # violations past MAX_VIOLATIONS, counted, not kept

    def refuse(self, path: str, description: str, reason: str) -> None:
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(Violation(path, description, reason))
        else:
            self.more += 1

    def text(self, obj: Mapping[str, Any], key: str, path: str, *, non_empty: bool = False) -> str:
        value = obj.get(key)
        if key not in obj:
            self.refuse(path, "is required", Reason.REQUIRED)
        elif not isinstance(value, str):
            self.refuse(path, f"must be a string, got {_kind(value)}", Reason.TYPE)
        elif non_empty and not value:
            self.refuse(path, "must not be empty", Reason.REQUIRED)
        elif self.storable(value, path):
            return value
        return ""

    def storable(self, value: str, path: str) -> bool:
        if _UNSTORABLE.search(value) is None:
            return True
        problem = "holds a control character or a lone surrogate (only tab, newline and carriage return may)"
        self.refuse(path, problem, Reason.PATTERN)
        return False

    def choice(self, obj: Mapping[str, Any], key: str, path: str) -> str:
        value = self.text(obj, key, path)
        if value and value not in STATUSES:
            self.refuse(path, f"must be one of: {', '.join(STATUSES)}; got {shown(value)!r}", Reason.ENUM)
        return value

    def labels(self, obj: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        value = obj.get(key)
        if key not in obj:
            self.refuse(path, "is required", Reason.REQUIRED)
            return {}
        if not isinstance(value, dict):
            self.refuse(path, f"must be an object of strings, got {_kind(value)}", Reason.TYPE)
            return {}
        found: dict[str, str] = {}
        for name, text in value.items():
            where = f"{path}.{shown(name)}"
            if not name:
                self.refuse(path, "a name must not be empty", Reason.REQUIRED)
            elif not isinstance(text, str):
                self.refuse(where, f"must be a string, got {_kind(text)}", Reason.TYPE)
            elif self.storable(name, where) and self.storable(text, where):
                found[name] = text
        return found

    def time(self, obj: Mapping[str, Any], key: str, path: str) -> datetime:
        text = self.text(obj, key, path)
        if key not in obj or not isinstance(obj[key], str):
            return _EPOCH  # already refused
        parsed = _parse_time(text)
        if parsed is None:
            example = "e.g. 2024-05-01T12:00:00.000Z"
            self.refuse(path, f"must be an RFC 3339 time ({example}); got {shown(text)!r}", Reason.PATTERN)
            return _EPOCH
        return parsed

    def count(self, obj: Mapping[str, Any], key: str, path: str) -> int:
        value = obj.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.refuse(path, f"must be a non-negative integer, got {_kind(value)}", Reason.TYPE)
            return 0
        return value


_EPOCH: Final = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


_NO_ALERT: Final = Alert(
    status="", labels={}, annotations={}, starts_at=_EPOCH, ends_at=_EPOCH, generator_url="", fingerprint=""
)


def _parse_time(text: str) -> datetime | None:
    if len(text) > _MAX_TIME_CHARS or _RFC3339.fullmatch(text) is None:
        return None
    try:
        # Python keeps microseconds: Go's nanoseconds are cut, the same way for every copy sent.
        return datetime.fromisoformat(text.upper())
    except ValueError:  # 2024-02-30 passes the pattern, not the calendar
        return None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def parse_notification(body: Any) -> Notification:
    """The notification in body (decoded JSON); raises InvalidArgument with every violation."""
    reader = _Reader()
    if not isinstance(body, dict):
        reader.refuse("", f"the notification must be a JSON object, got {_kind(body)}", Reason.TYPE)
        raise _invalid(reader)
    version = reader.text(body, "version", "version")
    if version and version != VERSION:
        problem = f'must be "{VERSION}" (the payload version this gateway reads), got {shown(version)!r}'
        reader.refuse("version", problem, Reason.ENUM)
    notification = Notification(
        version=version,
        group_key=reader.text(body, "groupKey", "groupKey", non_empty=True),
        truncated_alerts=reader.count(body, "truncatedAlerts", "truncatedAlerts"),
        status=reader.choice(body, "status", "status"),
        receiver=reader.text(body, "receiver", "receiver"),
        group_labels=reader.labels(body, "groupLabels", "groupLabels"),
        common_labels=reader.labels(body, "commonLabels", "commonLabels"),
        common_annotations=reader.labels(body, "commonAnnotations", "commonAnnotations"),
        external_url=reader.text(body, "externalURL", "externalURL"),
        alerts=_alerts(reader, body),
    )
    if reader.violations:
        raise _invalid(reader)
    return notification


def _alerts(reader: _Reader, body: Mapping[str, Any]) -> tuple[Alert, ...]:
    value = body.get("alerts")
    if "alerts" not in body:
        reader.refuse("alerts", "is required", Reason.REQUIRED)
        return ()
    if not isinstance(value, list):
        reader.refuse("alerts", f"must be an array, got {_kind(value)}", Reason.TYPE)
        return ()
    if not value:
        reader.refuse("alerts", "must hold at least one alert", Reason.REQUIRED)
    return tuple(_alert(reader, item, f"alerts[{i}]") for i, item in enumerate(value))


def _alert(reader: _Reader, item: Any, path: str) -> Alert:
    if not isinstance(item, dict):
        reader.refuse(path, f"must be an object, got {_kind(item)}", Reason.TYPE)
        return _NO_ALERT  # its fields are not reported missing one by one: it is no alert at all
    return Alert(
        status=reader.choice(item, "status", f"{path}.status"),
        labels=reader.labels(item, "labels", f"{path}.labels"),
        annotations=reader.labels(item, "annotations", f"{path}.annotations"),
        starts_at=reader.time(item, "startsAt", f"{path}.startsAt"),
        ends_at=reader.time(item, "endsAt", f"{path}.endsAt"),
        generator_url=reader.text(item, "generatorURL", f"{path}.generatorURL"),
        fingerprint=reader.text(item, "fingerprint", f"{path}.fingerprint", non_empty=True),
    )


def _invalid(reader: _Reader) -> errors.InvalidArgument:
    first = reader.violations[0]
    hidden = len(reader.violations) - 1 + reader.more
    more = f" (and {hidden} more)" if hidden else ""
    where = f"{first.field}: " if first.field else ""
    return errors.InvalidArgument(
        f"invalid Alertmanager notification: {where}{first.description}{more}", reader.violations
    )
