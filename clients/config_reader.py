"""A strict reader for the JSON configuration: every accessor knows its JSON path, and every object
is checked for unknown keys once it has been read.

Shared by the gateway's configuration (server/runtime/config.py) and by each platform module, which
reads its own block (`platforms.<name>`) with it: clients never read files or the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit


class ConfigError(Exception):
    """One problem, located by its JSON path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


T = TypeVar("T")


class ConfigObject:
    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be an object, got {kind_of(value)}")
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

    def obj(self, key: str) -> ConfigObject:
        self._seen.add(key)
        return ConfigObject(self.value.get(key, {}), self.at(key))

    def done(self) -> None:
        for key in self.value:
            if key not in self._seen:
                raise ConfigError(self.at(key), "unknown key")


def kind_of(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string, got {kind_of(value)}")
    return value


def optional_string(value: Any, path: str) -> str | None:
    return None if value is None else string(value, path)


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {kind_of(value)}")
    return value


def integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"must be an integer, got {kind_of(value)}")
    return value


def positive_int(value: Any, path: str) -> int:
    number = integer(value, path)
    if number < 1:
        raise ConfigError(path, "must be at least 1")
    return number


def number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"must be a number, got {kind_of(value)}")
    return float(value)


def positive(value: Any, path: str) -> float:
    found = number(value, path)
    if found <= 0:
        raise ConfigError(path, "must be greater than 0")
    return found


def ratio(value: Any, path: str) -> float:
    found = number(value, path)
    if not 0 < found < 1:
        raise ConfigError(path, "must be between 0 and 1")
    return found


def string_list(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be an array, got {kind_of(value)}")
    return tuple(string(item, f"{path}[{i}]") for i, item in enumerate(value))


def regex(value: Any, path: str) -> re.Pattern[str]:
    try:
        return re.compile(string(value, path))
    except re.error as exc:
        raise ConfigError(path, f"invalid regular expression: {exc}") from None


def http_url(value: Any, path: str) -> str:
    url = string(value, path).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, "must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError(path, "must not carry credentials; name environment variables in auth")
    return url


def env_name(value: Any, path: str) -> str:
    name = string(value, path)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(path, "must be an environment variable name")
    return name


def credentials_block(
    obj: ConfigObject, kinds: Mapping[str, tuple[str, ...]], env: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """An `auth` block: its `type` (one of kinds) and the secret values of the environment variables
    its `<name>_env` keys name, by name without the suffix. A missing variable is a ConfigError."""
    kind = obj.need("type", string)
    if kind not in kinds:
        raise ConfigError(obj.at("type"), f"must be one of {', '.join(sorted(kinds))}")
    values: dict[str, str] = {}
    for key in kinds[kind]:
        variable = obj.need(key, env_name)
        value = env.get(variable, "")
        if not value:
            raise ConfigError(obj.at(key), f"environment variable {variable} is not set")
        values[key.removesuffix("_env")] = value
    obj.done()
    return kind, values
