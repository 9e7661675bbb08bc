"""The whole configuration schema: JSON file + environment -> typed, validated GatewayConfig.

Validated strictly at start-up: an unknown key, a wrong type, an invalid regex, a template naming an
unknown field, a missing secret variable for an enabled platform all raise ConfigError naming the JSON
path. Secrets never live in the file: it names the environment variables that hold them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from clients.settings import (
    Credentials,
    HttpSettings,
    JiraSettings,
    RetryPolicy,
    ServiceNowSettings,
    TimeoutConfig,
)
from server.templates import CompiledTemplate, TemplateError, compile_template
from server.validation import check_value

PLATFORMS = ("servicenow", "jira")
FieldType = Literal["string", "int", "list"]
_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ConfigError(Exception):
    """One problem, located by its JSON path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class FieldRule:
    """One canonical field of one platform, and the rules its value must meet."""

    name: str  # canonical name, e.g. "summary"
    path: tuple[str, ...]  # where it goes in the platform payload, e.g. ("fields", "project", "key")
    type: FieldType = "string"
    required: bool = False
    max_length: int | None = None  # characters; for a list, per element
    enum: tuple[str, ...] | None = None  # allowed values; for a list, per element
    pattern: re.Pattern[str] | None = None  # full match; for a list, per element
    max_items: int | None = None  # list only
    item_key: str | None = None  # list only: send [{item_key: value}] (Jira components) not [value]
    minimum: int | None = None  # int only
    maximum: int | None = None  # int only
    default: str | None = None  # applied when the caller leaves the field out
    description: str = ""


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    platform: str
    description: str
    required_variables: tuple[str, ...]
    fields: Mapping[str, str]  # canonical field -> text with {variable} placeholders
    # Parsed once at load (server/templates.py); None only for a spec built by hand, e.g. in a test.
    compiled: CompiledTemplate | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SlaTarget:
    response_seconds: int
    resolution_seconds: int


@dataclass(frozen=True)
class SlaConfig:
    enabled: bool = True
    at_risk_ratio: float = 0.75  # share of a target's time after which an unmet target is at risk
    sync_interval_seconds: float = 30.0
    batch_size: int = 50
    max_requests_per_second: float = 5.0
    lease_seconds: float = 60.0
    # platform -> priority (ServiceNow "1".."5", Jira "Highest".."Lowest") -> targets
    targets: Mapping[str, Mapping[str, SlaTarget]] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerLimits:
    max_concurrent_rpcs: int = 2000
    max_message_bytes: int = 1024 * 1024
    max_field_value_chars: int = 32 * 1024
    max_fields: int = 64
    max_variables_bytes: int = 64 * 1024
    shutdown_drain_seconds: float = 1.0
    shutdown_grace_seconds: float = 10.0
    max_connection_age_seconds: float = 300.0  # callers reconnect, so new replicas get their share


@dataclass(frozen=True)
class IdempotencyConfig:
    pending_lease_seconds: float = 150.0  # a PENDING ticket older than this is settled by the reconciler
    reconcile_interval_seconds: float = 30.0
    in_flight_wait_seconds: float = 30.0  # how long a repeat waits for the first call, within its deadline


@dataclass(frozen=True)
class PlatformConfig:
    name: str
    enabled: bool
    settings: ServiceNowSettings | JiraSettings | None  # None when disabled


@dataclass(frozen=True)
class GatewayConfig:
    platforms: Mapping[str, PlatformConfig]
    retry_policy: RetryPolicy
    timeout: TimeoutConfig
    field_mapping: Mapping[str, Mapping[str, FieldRule]]
    templates: Mapping[str, TemplateSpec]
    sla: SlaConfig
    limits: ServerLimits
    idempotency: IdempotencyConfig

    def enabled_platforms(self) -> list[str]:
        return [name for name, p in self.platforms.items() if p.enabled]


# ---------------------------------------------------------------------------------------------
# A small strict reader: every accessor knows its JSON path, and every object is checked for
# unknown keys once it has been read.

T = TypeVar("T")


class _Obj:
    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be an object, got {_kind(value)}")
        self.value: dict[str, Any] = value
        self.path = path
        self._seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, check: Callable[[Any, str], T], default: T) -> T:
        self._seen.add(key)
        if key not in self.value:
            return default
        return check(self.value[key], self.at(key))

    def need(self, key: str, check: Callable[[Any, str], T]) -> T:
        self._seen.add(key)
        if key not in self.value:
            raise ConfigError(self.at(key), "is required")
        return check(self.value[key], self.at(key))

    def obj(self, key: str) -> _Obj:
        self._seen.add(key)
        return _Obj(self.value.get(key, {}), self.at(key))

    def done(self) -> None:
        for key in self.value:
            if key not in self._seen:
                raise ConfigError(self.at(key), "unknown key")


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string, got {_kind(value)}")
    return value


def _opt_str(value: Any, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {_kind(value)}")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"must be an integer, got {_kind(value)}")
    return value


def _positive_int(value: Any, path: str) -> int:
    number = _int(value, path)
    if number < 1:
        raise ConfigError(path, "must be at least 1")
    return number


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"must be a number, got {_kind(value)}")
    return float(value)


def _positive(value: Any, path: str) -> float:
    number = _number(value, path)
    if number <= 0:
        raise ConfigError(path, "must be greater than 0")
    return number


def _ratio(value: Any, path: str) -> float:
    number = _number(value, path)
    if not 0 < number < 1:
        raise ConfigError(path, "must be between 0 and 1")
    return number


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be an array, got {_kind(value)}")
    return tuple(_str(item, f"{path}[{i}]") for i, item in enumerate(value))


def _regex(value: Any, path: str) -> re.Pattern[str]:
    try:
        return re.compile(_str(value, path))
    except re.error as exc:
        raise ConfigError(path, f"invalid regular expression: {exc}") from None


def _url(value: Any, path: str) -> str:
    url = _str(value, path).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, "must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError(path, "must not carry credentials; name environment variables in auth")
    return url


def _env_name(value: Any, path: str) -> str:
    name = _str(value, path)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(path, "must be an environment variable name")
    return name


# ---------------------------------------------------------------------------------------------


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
    root = _Obj(raw, "")
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
    _check_lease(config)
    root.get("$schema", _str, "")  # editors may point at a schema; harmless
    root.done()
    return replace(config, templates=templates)


def _check_lease(config: GatewayConfig) -> None:
    """A PENDING ticket's lease must outlast the longest send (a marker look-up, then a create, each
    within timeout.total), or the reconciler could take over a send still running."""
    needed = 2 * config.timeout.total + 10
    if config.idempotency.pending_lease_seconds < needed:
        raise ConfigError(
            "idempotency.pending_lease_seconds",
            f"must be at least {needed:g} (twice timeout.total_seconds, plus 10)",
        )


def _retry_policy(obj: _Obj) -> RetryPolicy:
    d = RetryPolicy()
    policy = RetryPolicy(
        max_attempts=obj.get("max_attempts", _positive_int, d.max_attempts),
        initial_delay=obj.get("initial_delay_seconds", _positive, d.initial_delay),
        multiplier=obj.get("multiplier", _number, d.multiplier),
        max_delay=obj.get("max_delay_seconds", _positive, d.max_delay),
        jitter=obj.get("jitter", _bool, d.jitter),
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
        raise ConfigError(path, f"must be an array, got {_kind(value)}")
    statuses = tuple(_int(item, f"{path}[{i}]") for i, item in enumerate(value))
    for i, status in enumerate(statuses):
        if not 400 <= status <= 599:
            raise ConfigError(f"{path}[{i}]", "must be an HTTP error status (400-599)")
        if status in _NEVER_RETRIED:
            raise ConfigError(f"{path}[{i}]", f"{status} is never retried: the request is wrong")
    return statuses


def _timeout(obj: _Obj) -> TimeoutConfig:
    d = TimeoutConfig()
    timeout = TimeoutConfig(
        connect=obj.get("connect_seconds", _positive, d.connect),
        read=obj.get("read_seconds", _positive, d.read),
        total=obj.get("total_seconds", _positive, d.total),
    )
    if timeout.total > 60:
        raise ConfigError(obj.at("total_seconds"), "must be at most 60 (the gateway's cap)")
    obj.done()
    return timeout


def _platforms(obj: _Obj, env: Mapping[str, str]) -> dict[str, PlatformConfig]:
    platforms = {name: _platform(obj.obj(name), name, env) for name in PLATFORMS}
    obj.done()
    if not any(p.enabled for p in platforms.values()):
        raise ConfigError(obj.path, "no platform is enabled")
    return platforms


def _platform(obj: _Obj, name: str, env: Mapping[str, str]) -> PlatformConfig:
    enabled = obj.get("enabled", _bool, False)
    if not enabled:
        # A disabled platform's settings are kept for later but not checked: no secret is needed.
        return PlatformConfig(name=name, enabled=False, settings=None)
    http = HttpSettings(
        base_url=obj.need("base_url", _url),
        verify_tls=obj.get("verify_tls", _bool, True),
        ca_bundle=obj.get("ca_bundle", _opt_str, None),
        proxy=obj.get("proxy", _opt_str, None),
        max_connections=obj.get("max_connections", _positive_int, 100),
    )
    if http.ca_bundle and not Path(http.ca_bundle).is_file():
        raise ConfigError(obj.at("ca_bundle"), "file not found")
    if http.proxy is not None:
        _url(http.proxy, obj.at("proxy"))
    credentials = _credentials(obj.obj("auth"), name, env)
    settings: ServiceNowSettings | JiraSettings
    if name == "servicenow":
        settings = ServiceNowSettings(
            http=http, credentials=credentials, table=obj.get("table", _str, "incident")
        )
    else:
        version = obj.get("api_version", _int, 2)
        if version not in (2, 3):
            raise ConfigError(obj.at("api_version"), "must be 2 (Data Center) or 3 (Cloud)")
        settings = JiraSettings(
            http=http,
            credentials=credentials,
            api_version=version,  # type: ignore[arg-type]
            default_project=obj.get("default_project", _str, "OPS"),
        )
    obj.done()
    return PlatformConfig(name=name, enabled=True, settings=settings)


_AUTH_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "servicenow": {
        "basic": ("username_env", "password_env"),
        "oauth": ("username_env", "password_env", "client_id_env", "client_secret_env"),
    },
    "jira": {"basic": ("username_env", "password_env"), "bearer": ("token_env",)},
}


def _credentials(obj: _Obj, platform: str, env: Mapping[str, str]) -> Credentials:
    kinds = _AUTH_KINDS[platform]
    kind = obj.need("type", _str)
    if kind not in kinds:
        raise ConfigError(obj.at("type"), f"must be one of {', '.join(sorted(kinds))}")
    values: dict[str, str] = {}
    for key in kinds[kind]:
        variable = obj.need(key, _env_name)
        value = env.get(variable, "")
        if not value:
            raise ConfigError(obj.at(key), f"environment variable {variable} is not set")
        values[key.removesuffix("_env")] = value
    obj.done()
    return Credentials(
        kind=kind,  # type: ignore[arg-type]
        username=values.get("username", ""),
        password=values.get("password", ""),
        token=values.get("token", ""),
        client_id=values.get("client_id", ""),
        client_secret=values.get("client_secret", ""),
    )


def _field_mapping(obj: _Obj) -> dict[str, dict[str, FieldRule]]:
    mapping = {}
    for platform in PLATFORMS:
        rules = obj.obj(platform)
        mapping[platform] = {
            name: _field_rule(_Obj(value, rules.at(name)), name)
            for name, value in rules.value.items()
        }
        for name in rules.value:
            if not _FIELD_NAME.fullmatch(name):
                raise ConfigError(rules.at(name), "field names are lower_snake_case")
        _check_paths(rules, mapping[platform])
    obj.done()
    return mapping


def _field_rule(obj: _Obj, name: str) -> FieldRule:
    path = tuple(obj.need("path", _str).split("."))
    if not all(_PATH_SEGMENT.fullmatch(segment) for segment in path):
        raise ConfigError(obj.at("path"), "must be dotted identifiers, e.g. fields.project.key")
    kind = obj.get("type", _str, "string")
    if kind not in ("string", "int", "list"):
        raise ConfigError(obj.at("type"), "must be string, int or list")
    rule = FieldRule(
        name=name,
        path=path,
        type=kind,  # type: ignore[arg-type]
        required=obj.get("required", _bool, False),
        max_length=obj.get("max_length", _positive_int, None),
        enum=obj.get("enum", _str_list, None),
        pattern=obj.get("pattern", _regex, None),
        max_items=obj.get("max_items", _positive_int, None),
        item_key=obj.get("item_key", _str, None),
        minimum=obj.get("minimum", _int, None),
        maximum=obj.get("maximum", _int, None),
        default=obj.get("default", _str, None),
        description=obj.get("description", _str, ""),
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


def _check_default(obj: _Obj, rule: FieldRule) -> None:
    """Defaults skip per-request validation, so a bad one must be refused here, not at the platform."""
    if not rule.default:
        raise ConfigError(obj.at("default"), "must not be empty (leave it out instead)")
    problems = check_value(rule, rule.default, ServerLimits())
    if problems:
        raise ConfigError(obj.at("default"), f"breaks its own rule: {problems[0].description}")


def _check_paths(obj: _Obj, rules: dict[str, FieldRule]) -> None:
    """Two fields must not write the same payload location, nor one inside the other."""
    seen: dict[tuple[str, ...], str] = {}
    for rule in rules.values():
        for other_path, other in seen.items():
            shorter = min(len(rule.path), len(other_path))
            if rule.path[:shorter] == other_path[:shorter]:
                raise ConfigError(obj.at(rule.name), f"path overlaps field {other!r}")
        seen[rule.path] = rule.name


def _templates(
    obj: _Obj, mapping: Mapping[str, Mapping[str, FieldRule]]
) -> dict[str, TemplateSpec]:
    templates = {}
    for name in obj.value:
        if not _TEMPLATE_NAME.fullmatch(name):
            raise ConfigError(obj.at(name), "template names are lower_snake_case")
        templates[name] = _template(obj.obj(name), name, mapping)
    obj.done()
    return templates


def _template(obj: _Obj, name: str, mapping: Mapping[str, Mapping[str, FieldRule]]) -> TemplateSpec:
    platform = obj.need("platform", _str)
    if platform not in PLATFORMS:
        raise ConfigError(obj.at("platform"), f"must be one of {', '.join(PLATFORMS)}")
    variables = obj.get("required_variables", _str_list, ())
    for i, variable in enumerate(variables):
        if not _VARIABLE.fullmatch(variable) or variable.startswith("job."):
            raise ConfigError(
                f"{obj.at('required_variables')}[{i}]",
                "must be a dotted identifier, e.g. alert.host (job.* is injected)",
            )
    fields_obj = obj.obj("fields")
    fields = {key: _str(value, fields_obj.at(key)) for key, value in fields_obj.value.items()}
    for key in fields:
        if key not in mapping[platform]:
            raise ConfigError(fields_obj.at(key), f"unknown {platform} field")
    if not fields:
        raise ConfigError(fields_obj.path, "must name at least one field")
    spec = TemplateSpec(
        name=name,
        platform=platform,
        description=obj.get("description", _str, ""),
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


def _sla(obj: _Obj) -> SlaConfig:
    d = SlaConfig()
    targets_obj = obj.obj("targets")
    targets: dict[str, dict[str, SlaTarget]] = {}
    for platform in targets_obj.value:
        if platform not in PLATFORMS:
            raise ConfigError(targets_obj.at(platform), "unknown platform")
        per_priority = targets_obj.obj(platform)
        targets[platform] = {}
        for priority in per_priority.value:
            target = per_priority.obj(priority)
            targets[platform][priority] = SlaTarget(
                response_seconds=target.need("response_seconds", _positive_int),
                resolution_seconds=target.need("resolution_seconds", _positive_int),
            )
            target.done()
        per_priority.done()
    targets_obj.done()
    sla = SlaConfig(
        enabled=obj.get("enabled", _bool, d.enabled),
        at_risk_ratio=obj.get("at_risk_ratio", _ratio, d.at_risk_ratio),
        sync_interval_seconds=obj.get("sync_interval_seconds", _positive, d.sync_interval_seconds),
        batch_size=obj.get("batch_size", _positive_int, d.batch_size),
        max_requests_per_second=obj.get(
            "max_requests_per_second", _positive, d.max_requests_per_second
        ),
        lease_seconds=obj.get("lease_seconds", _positive, d.lease_seconds),
        targets=targets,
    )
    obj.done()
    return sla


def _limits(obj: _Obj) -> ServerLimits:
    d = ServerLimits()
    limits = ServerLimits(
        max_concurrent_rpcs=obj.get("max_concurrent_rpcs", _positive_int, d.max_concurrent_rpcs),
        max_message_bytes=obj.get("max_message_bytes", _positive_int, d.max_message_bytes),
        max_field_value_chars=obj.get(
            "max_field_value_chars", _positive_int, d.max_field_value_chars
        ),
        max_fields=obj.get("max_fields", _positive_int, d.max_fields),
        max_variables_bytes=obj.get("max_variables_bytes", _positive_int, d.max_variables_bytes),
        shutdown_drain_seconds=obj.get(
            "shutdown_drain_seconds", _number, d.shutdown_drain_seconds
        ),
        shutdown_grace_seconds=obj.get(
            "shutdown_grace_seconds", _positive, d.shutdown_grace_seconds
        ),
        max_connection_age_seconds=obj.get(
            "max_connection_age_seconds", _positive, d.max_connection_age_seconds
        ),
    )
    obj.done()
    return limits


def _idempotency(obj: _Obj) -> IdempotencyConfig:
    d = IdempotencyConfig()
    config = IdempotencyConfig(
        pending_lease_seconds=obj.get(
            "pending_lease_seconds", _positive, d.pending_lease_seconds
        ),
        reconcile_interval_seconds=obj.get(
            "reconcile_interval_seconds", _positive, d.reconcile_interval_seconds
        ),
        in_flight_wait_seconds=obj.get(
            "in_flight_wait_seconds", _positive, d.in_flight_wait_seconds
        ),
    )
    obj.done()
    return config
