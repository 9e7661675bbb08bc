"""The whole configuration schema: JSON file + environment -> typed, validated GatewayConfig.

Validated strictly at start-up: an unknown key, a wrong type, an invalid regex, a template naming an
unknown field, a missing secret variable for an enabled platform all raise ConfigError naming the JSON
path. Secrets never live in the file: it names the environment variables that hold them. Each
platform's own block is read by its module (clients.registry), so nothing here names a platform;
the alertmanager block, by server/runtime/alertmanager_config.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from clients import registry
from clients.config_reader import (
    ConfigError,
    ConfigObject,
    boolean,
    integer,
    kind_of,
    number,
    positive,
    positive_int,
    ratio,
    regex,
    string,
    string_list,
)
from clients.settings import RetryPolicy, TimeoutConfig
from server.domain.rules import FieldRule, Limits
from server.domain.sla import SlaConfig, SlaTarget
from server.domain.templates import TemplateError, TemplateSpec, compile_template
from server.domain.validation import check_value
from server.runtime.alertmanager_config import read_alertmanager
from server.service.settings import DedupPolicy, GatewayConfig, IdempotencyConfig, PlatformConfig

__all__ = ["ConfigError", "GatewayConfig", "load_config", "parse_config"]

_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, parse and validate a configuration file. Raises ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    return parse_config(raw, os.environ if env is None else env)


def parse_config(raw: Any, env: Mapping[str, str]) -> GatewayConfig:
    root = ConfigObject(raw, "")
    config = GatewayConfig(
        retry_policy=_retry_policy(root.obj("retry_policy")),
        timeout=_timeout(root.obj("timeout")),
        platforms=_platforms(root.obj("platforms"), env),
        field_mapping=_field_mapping(root.obj("field_mapping")),
        templates={},
        sla=_sla(root.obj("sla")),
        limits=_limits(root.obj("limits")),
        idempotency=_idempotency(root.obj("idempotency")),
    )
    templates = _templates(root.obj("templates"), config.field_mapping)
    alertmanager = read_alertmanager(root.obj("alertmanager"), templates, config.limits)
    _check_lease(config)
    root.get("$schema", string, "")  # editors may point at a schema; harmless
    root.done()
    return replace(config, templates=templates, alertmanager=alertmanager)


def _check_lease(config: GatewayConfig) -> None:
    """A PENDING ticket's lease must outlast the longest send (a marker look-up, then a create, each
    within timeout.total), or the reconciler could take over a send still running."""
    needed = 2 * config.timeout.total + 10
    if config.idempotency.pending_lease_seconds < needed:
        raise ConfigError(
            "idempotency.pending_lease_seconds",
            f"must be at least {needed:g} (twice timeout.total_seconds, plus 10)",
        )


def _retry_policy(obj: ConfigObject) -> RetryPolicy:
    d = RetryPolicy()
    policy = RetryPolicy(
        max_attempts=obj.get("max_attempts", positive_int, d.max_attempts),
        initial_delay=obj.get("initial_delay_seconds", positive, d.initial_delay),
        multiplier=obj.get("multiplier", number, d.multiplier),
        max_delay=obj.get("max_delay_seconds", positive, d.max_delay),
        jitter=obj.get("jitter", boolean, d.jitter),
        retryable_statuses=frozenset(
            obj.get("retryable_statuses", _statuses, tuple(d.retryable_statuses))
        ),
    )
    if policy.multiplier < 1:
        raise ConfigError(obj.at("multiplier"), "must be at least 1")
    obj.done()
    return policy


_NEVER_RETRIED = frozenset({400, 401, 403, 404, 409, 422})


def _statuses(value: Any, path: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be an array, got {kind_of(value)}")
    statuses = tuple(integer(item, f"{path}[{i}]") for i, item in enumerate(value))
    for i, status in enumerate(statuses):
        if not 400 <= status <= 599:
            raise ConfigError(f"{path}[{i}]", "must be an HTTP error status (400-599)")
        if status in _NEVER_RETRIED:
            raise ConfigError(f"{path}[{i}]", f"{status} is never retried: the request is wrong")
    return statuses


def _timeout(obj: ConfigObject) -> TimeoutConfig:
    d = TimeoutConfig()
    timeout = TimeoutConfig(
        connect=obj.get("connect_seconds", positive, d.connect),
        read=obj.get("read_seconds", positive, d.read),
        total=obj.get("total_seconds", positive, d.total),
    )
    if timeout.total > 60:
        raise ConfigError(obj.at("total_seconds"), "must be at most 60 (the gateway's cap)")
    obj.done()
    return timeout


def _platforms(obj: ConfigObject, env: Mapping[str, str]) -> dict[str, PlatformConfig]:
    known = registry.specs()
    for name in obj.value:
        if name not in known:
            raise ConfigError(obj.at(name), f"unknown platform; known: {', '.join(known)}")
    platforms = {name: _platform(obj.obj(name), name, env) for name in known}
    obj.done()
    if not any(p.enabled for p in platforms.values()):
        raise ConfigError(obj.path, "no platform is enabled")
    return platforms


def _platform(obj: ConfigObject, name: str, env: Mapping[str, str]) -> PlatformConfig:
    enabled = obj.get("enabled", boolean, False)
    if not enabled:
        # A disabled platform's settings are kept for later but not checked: no secret is needed.
        return PlatformConfig(name=name, enabled=False, settings=None)
    spec = registry.spec(name)
    delay = obj.get("confirmation_delay_seconds", _delay, spec.confirmation_delay)
    search_delay = obj.get("search_confirmation_delay_seconds", _delay, spec.search_confirmation_delay)
    if search_delay < delay:
        raise ConfigError(
            obj.at("search_confirmation_delay_seconds"), "must be at least confirmation_delay_seconds"
        )
    dedup = _dedup(obj.obj("dedup"))
    settings = spec.read_settings(obj, env)
    obj.done()
    return PlatformConfig(
        name=name,
        enabled=True,
        settings=settings,
        confirmation_delay_seconds=delay,
        search_confirmation_delay_seconds=search_delay,
        dedup=dedup,
    )


def _dedup(obj: ConfigObject) -> DedupPolicy:
    d = DedupPolicy()
    window = obj.get("reopen_window_seconds", number, d.reopen_window_seconds)
    if not 0 <= window <= 90 * 86400:
        raise ConfigError(obj.at("reopen_window_seconds"), "must be between 0 (never reopen) and 90 days")
    policy = DedupPolicy(
        reopen_window_seconds=window,
        raise_priority_on_attach=obj.get("raise_priority_on_attach", boolean, d.raise_priority_on_attach),
        wont_fix_resolutions=obj.get("wont_fix_resolutions", string_list, d.wont_fix_resolutions),
    )
    obj.done()
    return policy


def _delay(value: Any, path: str) -> float:
    seconds = number(value, path)
    if not 0 <= seconds <= 300:
        raise ConfigError(path, "must be between 0 and 300 seconds")
    return seconds


def _field_mapping(obj: ConfigObject) -> dict[str, dict[str, FieldRule]]:
    mapping = {}
    for platform, spec in registry.specs().items():
        rules = obj.obj(platform)
        mapping[platform] = {
            name: _journal(_field_rule(ConfigObject(value, rules.at(name)), name), spec.journal_paths)
            for name, value in rules.value.items()
        }
        for name in rules.value:
            if not _FIELD_NAME.fullmatch(name):
                raise ConfigError(rules.at(name), "field names are lower_snake_case")
        _check_paths(rules, mapping[platform])
    obj.done()
    return mapping


def _journal(rule: FieldRule, journal_paths: tuple[tuple[str, ...], ...]) -> FieldRule:
    """The rule, marked as a journal field when its platform's module says its path is one."""
    return replace(rule, journal=True) if rule.path in journal_paths else rule


def _field_rule(obj: ConfigObject, name: str) -> FieldRule:
    path = tuple(obj.need("path", string).split("."))
    if not all(_PATH_SEGMENT.fullmatch(segment) for segment in path):
        raise ConfigError(obj.at("path"), "must be dotted identifiers, e.g. fields.project.key")
    kind = obj.get("type", string, "string")
    if kind not in ("string", "int", "list"):
        raise ConfigError(obj.at("type"), "must be string, int or list")
    rule = FieldRule(
        name=name,
        path=path,
        type=kind,  # type: ignore[arg-type]
        required=obj.get("required", boolean, False),
        max_length=obj.get("max_length", positive_int, None),
        enum=obj.get("enum", string_list, None),
        pattern=obj.get("pattern", regex, None),
        max_items=obj.get("max_items", positive_int, None),
        item_key=obj.get("item_key", string, None),
        minimum=obj.get("minimum", integer, None),
        maximum=obj.get("maximum", integer, None),
        default=obj.get("default", string, None),
        description=obj.get("description", string, ""),
        immutable=obj.get("immutable", boolean, False),
    )
    for key in ("max_items", "item_key"):
        if getattr(rule, key) is not None and rule.type != "list":
            raise ConfigError(obj.at(key), "only applies to type list")
    if rule.default is not None and rule.enum is not None and rule.default not in rule.enum:
        raise ConfigError(obj.at("default"), "is not one of enum")
    if (rule.minimum is not None or rule.maximum is not None) and rule.type != "int":
        raise ConfigError(obj.at("minimum"), "minimum/maximum only apply to type int")
    if rule.default is not None:
        _check_default(obj, rule)
    obj.done()
    return rule


def _check_default(obj: ConfigObject, rule: FieldRule) -> None:
    """Defaults skip per-request validation, so a bad one must be refused here, not at the platform."""
    if not rule.default:
        raise ConfigError(obj.at("default"), "must not be empty (leave it out instead)")
    problems = check_value(rule, rule.default, Limits())
    if problems:
        raise ConfigError(obj.at("default"), f"breaks its own rule: {problems[0].description}")


def _check_paths(obj: ConfigObject, rules: dict[str, FieldRule]) -> None:
    """Two fields must not write the same payload location, nor one inside the other."""
    seen: dict[tuple[str, ...], str] = {}
    for rule in rules.values():
        for other_path, other in seen.items():
            shorter = min(len(rule.path), len(other_path))
            if rule.path[:shorter] == other_path[:shorter]:
                raise ConfigError(obj.at(rule.name), f"path overlaps field {other!r}")
        seen[rule.path] = rule.name


def _templates(
    obj: ConfigObject, mapping: Mapping[str, Mapping[str, FieldRule]]
) -> dict[str, TemplateSpec]:
    templates = {}
    for name in obj.value:
        if not _TEMPLATE_NAME.fullmatch(name):
            raise ConfigError(obj.at(name), "template names are lower_snake_case")
        templates[name] = _template(obj.obj(name), name, mapping)
    obj.done()
    return templates


def _template(obj: ConfigObject, name: str, mapping: Mapping[str, Mapping[str, FieldRule]]) -> TemplateSpec:
    platform = obj.need("platform", string)
    if platform not in registry.specs():
        raise ConfigError(obj.at("platform"), f"must be one of {', '.join(registry.specs())}")
    variables = obj.get("required_variables", string_list, ())
    for i, variable in enumerate(variables):
        if not _VARIABLE.fullmatch(variable) or variable.startswith("job."):
            raise ConfigError(
                f"{obj.at('required_variables')}[{i}]",
                "must be a dotted identifier, e.g. alert.host (job.* is injected)",
            )
    fields_obj = obj.obj("fields")
    fields = {key: string(value, fields_obj.at(key)) for key, value in fields_obj.value.items()}
    for key in fields:
        if key not in mapping[platform]:
            raise ConfigError(fields_obj.at(key), f"unknown {platform} field")
    if not fields:
        raise ConfigError(fields_obj.path, "must name at least one field")
    spec = TemplateSpec(
        name=name,
        platform=platform,
        repeat_comment=obj.get("repeat_comment", string, ""),
        description=obj.get("description", string, ""),
        required_variables=variables,
        fields=fields,
    )
    obj.done()
    try:
        # A broken placeholder or an undeclared variable is refused at start-up, not per request.
        compiled = compile_template(spec)
    except TemplateError as exc:
        raise ConfigError(obj.at(exc.where), exc.problem) from None
    return replace(spec, compiled=compiled)


def _sla(obj: ConfigObject) -> SlaConfig:
    d = SlaConfig()
    targets_obj = obj.obj("targets")
    targets: dict[str, dict[str, SlaTarget]] = {}
    for platform in targets_obj.value:
        if platform not in registry.specs():
            raise ConfigError(targets_obj.at(platform), "unknown platform")
        per_priority = targets_obj.obj(platform)
        targets[platform] = {}
        for priority in per_priority.value:
            target = per_priority.obj(priority)
            targets[platform][priority] = SlaTarget(
                response_seconds=target.need("response_seconds", positive_int),
                resolution_seconds=target.need("resolution_seconds", positive_int),
            )
            target.done()
        per_priority.done()
    targets_obj.done()
    sla = SlaConfig(
        enabled=obj.get("enabled", boolean, d.enabled),
        at_risk_ratio=obj.get("at_risk_ratio", ratio, d.at_risk_ratio),
        sync_interval_seconds=obj.get("sync_interval_seconds", positive, d.sync_interval_seconds),
        batch_size=obj.get("batch_size", positive_int, d.batch_size),
        max_requests_per_second=obj.get(
            "max_requests_per_second", positive, d.max_requests_per_second
        ),
        lease_seconds=obj.get("lease_seconds", positive, d.lease_seconds),
        targets=targets,
    )
    obj.done()
    return sla


def _limits(obj: ConfigObject) -> Limits:
    d = Limits()
    limits = Limits(
        max_concurrent_rpcs=obj.get("max_concurrent_rpcs", positive_int, d.max_concurrent_rpcs),
        max_message_bytes=obj.get("max_message_bytes", positive_int, d.max_message_bytes),
        max_field_value_chars=obj.get(
            "max_field_value_chars", positive_int, d.max_field_value_chars
        ),
        max_fields=obj.get("max_fields", positive_int, d.max_fields),
        max_variables_bytes=obj.get("max_variables_bytes", positive_int, d.max_variables_bytes),
        shutdown_drain_seconds=obj.get(
            "shutdown_drain_seconds", number, d.shutdown_drain_seconds
        ),
        shutdown_grace_seconds=obj.get(
            "shutdown_grace_seconds", positive, d.shutdown_grace_seconds
        ),
        max_connection_age_seconds=obj.get(
            "max_connection_age_seconds", positive, d.max_connection_age_seconds
        ),
    )
    obj.done()
    return limits


def _idempotency(obj: ConfigObject) -> IdempotencyConfig:
    d = IdempotencyConfig()
    config = IdempotencyConfig(
        pending_lease_seconds=obj.get(
            "pending_lease_seconds", positive, d.pending_lease_seconds
        ),
        reconcile_interval_seconds=obj.get(
            "reconcile_interval_seconds", positive, d.reconcile_interval_seconds
        ),
        in_flight_wait_seconds=obj.get(
            "in_flight_wait_seconds", positive, d.in_flight_wait_seconds
        ),
    )
    obj.done()
    return config
