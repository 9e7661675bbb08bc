"""The `alertmanager` block of the configuration: the receivers served at POST /alertmanager/<name>.

    "alertmanager": {
      "timeout_seconds": 8,
      "receivers": {
        "ops_servicenow": {
          "template": "servicenow_alert",         a template using only what a notification provides
          "dedup_labels": ["alertname", "cluster"],   optional; default: the group labels
          "on_resolved": "resolve",               resolve | comment | nothing
          "resolution": "",                       optional close code / resolution for a resolve
          "alerts_text": {"max_alerts": 20, "max_chars": 2000}
        }
      }
    }

Checked as strictly as the rest (server/runtime/config.py): an unknown key, an unknown template, a
template that needs a variable no notification provides, all refused naming the JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from clients.config_reader import ConfigError, ConfigObject, positive, positive_int, string, string_list
from server.domain.alert_variables import TextBounds, provided_names, unprovided
from server.domain.rules import Limits
from server.domain.templates import TemplateSpec
from server.service.settings import ON_RESOLVED, AlertmanagerConfig, AlertReceiver

# A receiver's name is a path segment of its URL: nothing to escape.
_RECEIVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_DEDUP_LABELS: Final = 32
_MAX_RESOLUTION_CHARS: Final = 255
_MAX_TIMEOUT_SECONDS: Final = 60.0
_MIN_TEXT_CHARS: Final = 200  # room for a line and the note of what was left out
_MAX_ALERTS_LISTED: Final = 1000


def read_alertmanager(
    obj: ConfigObject, templates: Mapping[str, TemplateSpec], limits: Limits
) -> AlertmanagerConfig:
    timeout = obj.get("timeout_seconds", positive, AlertmanagerConfig.timeout_seconds)
    if timeout > _MAX_TIMEOUT_SECONDS:
        raise ConfigError(obj.at("timeout_seconds"), f"must be at most {_MAX_TIMEOUT_SECONDS:g}")
    receivers_obj = obj.obj("receivers")
    receivers = {}
    for name in receivers_obj.value:
        if not _RECEIVER_NAME.fullmatch(name):
            problem = "receiver names are letters, digits, '_', '.' and '-' (a URL path segment)"
            raise ConfigError(receivers_obj.at(name), problem)
        receivers[name] = _receiver(receivers_obj.obj(name), name, templates, limits)
    receivers_obj.done()
    obj.done()
    return AlertmanagerConfig(receivers=receivers, timeout_seconds=timeout)


def _receiver(
    obj: ConfigObject, name: str, templates: Mapping[str, TemplateSpec], limits: Limits
) -> AlertReceiver:
    template = obj.need("template", string)
    _check_template(obj.at("template"), template, templates)
    on_resolved = obj.get("on_resolved", string, "resolve")
    if on_resolved not in ON_RESOLVED:
        raise ConfigError(obj.at("on_resolved"), f"must be one of: {', '.join(ON_RESOLVED)}")
    resolution = obj.get("resolution", string, "")
    if len(resolution) > _MAX_RESOLUTION_CHARS:
        raise ConfigError(obj.at("resolution"), f"must be at most {_MAX_RESOLUTION_CHARS} characters")
    receiver = AlertReceiver(
        name=name,
        template=template,
        dedup_labels=obj.get("dedup_labels", _label_names, None),
        on_resolved=on_resolved,
        resolution=resolution,
        text=_text_bounds(obj.obj("alerts_text"), limits),
    )
    obj.done()
    return receiver


def _check_template(path: str, name: str, templates: Mapping[str, TemplateSpec]) -> None:
    spec = templates.get(name)
    if spec is None:
        known = ", ".join(sorted(templates)[:20]) or "none"
        raise ConfigError(path, f"unknown template {name!r}; configured: {known}")
    missing = unprovided(spec.required_variables)
    if missing:
        raise ConfigError(
            path,
            f"template {name!r} needs {missing[0]!r}, which an Alertmanager notification does not "
            f"provide; it may use: {provided_names()}",
        )


def _label_names(value: Any, path: str) -> tuple[str, ...]:
    names = string_list(value, path)
    if not names:
        raise ConfigError(path, "must name at least one label (leave it out for the group labels)")
    if len(names) > _MAX_DEDUP_LABELS:
        raise ConfigError(path, f"must name at most {_MAX_DEDUP_LABELS} labels")
    for i, label in enumerate(names):
        if not label or not label.isprintable():
            raise ConfigError(f"{path}[{i}]", "must be a non-empty label name")
        if label in names[:i]:
            raise ConfigError(f"{path}[{i}]", f"{label!r} is named twice")
    return names


def _text_bounds(obj: ConfigObject, limits: Limits) -> TextBounds:
    d = TextBounds()
    bounds = TextBounds(
        max_alerts=obj.get("max_alerts", positive_int, d.max_alerts),
        max_chars=obj.get("max_chars", positive_int, d.max_chars),
    )
    if bounds.max_alerts > _MAX_ALERTS_LISTED:
        raise ConfigError(obj.at("max_alerts"), f"must be at most {_MAX_ALERTS_LISTED}")
    if not _MIN_TEXT_CHARS <= bounds.max_chars <= limits.max_field_value_chars:
        raise ConfigError(
            obj.at("max_chars"),
            f"must be between {_MIN_TEXT_CHARS} and limits.max_field_value_chars "
            f"({limits.max_field_value_chars})",
        )
    obj.done()
    return bounds
