"""The two identities an Alertmanager notification gets: the dedup key of its problem (one open
ticket per key) and the request_id of the notification itself (one effect per notification).

Dedup key: "alertmanager/<receiver>/" + the configured labels' values as a JSON object, in the
configured order (by default the group labels, sorted: the labels Alertmanager groups by, so editing
the routing tree elsewhere does not re-ticket). A label is looked up in the group labels, then the
common labels. When every value is empty the group's own key stands in ("groupKey=" + it): never one
ticket for every alert. JSON with ASCII escapes keeps it unambiguous and printable; past MAX_KEY
characters its tail becomes a hash, so two long keys stay apart.

request_id: "am-" + sha256 of (receiver, groupKey, status, the alerts' fingerprints and start times,
sorted). The two Alertmanagers of an HA pair send the same notification: the same request_id, so the
second changes nothing. One more alert in the group is a new request_id: a new notification.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC
from typing import Final

from server.domain.alert_payload import Notification

MAX_KEY: Final = 255
PREFIX: Final = "alertmanager"
REQUEST_ID_PREFIX: Final = "am-"
_HASH_CHARS: Final = 40


def dedup_key(receiver: str, notification: Notification, labels: Sequence[str] | None) -> str:
    """labels None: the notification's group labels."""
    names = sorted(notification.group_labels) if labels is None else list(labels)
    values = {name: _label(notification, name) for name in names}
    if any(values.values()):
        identity = _json(values)
    else:
        identity = "groupKey=" + _json(notification.group_key)
    return _bounded(f"{PREFIX}/{receiver}/{identity}")


def request_id(receiver: str, notification: Notification) -> str:
    alerts = sorted([a.fingerprint, a.starts_at.astimezone(UTC).isoformat()] for a in notification.alerts)
    identity = [receiver, notification.group_key, notification.status, alerts]
    return REQUEST_ID_PREFIX + hashlib.sha256(_json(identity).encode()).hexdigest()


def _label(notification: Notification, name: str) -> str:
    return notification.group_labels.get(name) or notification.common_labels.get(name) or ""


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:_HASH_CHARS]
    return f"{key[: MAX_KEY - _HASH_CHARS - 1]}~{digest}"
