"""Platform name -> client factory. A new platform is one module plus one line in _FACTORIES."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clients.http import AttemptHook
from clients.jira import JiraClient
from clients.platform import PlatformClient
from clients.servicenow import ServiceNowClient
from clients.settings import JiraSettings, RetryPolicy, ServiceNowSettings, TimeoutConfig

Factory = Callable[[Any, RetryPolicy, TimeoutConfig, AttemptHook | None], PlatformClient]


def _servicenow(
    settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
) -> PlatformClient:
    _expect(settings, ServiceNowSettings, "servicenow")
    return ServiceNowClient(settings, retry, timeout, on_attempt=on_attempt)


def _jira(
    settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
) -> PlatformClient:
    _expect(settings, JiraSettings, "jira")
    return JiraClient(settings, retry, timeout, on_attempt=on_attempt)


_FACTORIES: dict[str, Factory] = {
    "servicenow": _servicenow,
    "jira": _jira,
}


def platforms() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def build_client(
    platform: str,
    settings: Any,
    retry: RetryPolicy,
    timeout: TimeoutConfig,
    on_attempt: AttemptHook | None = None,
) -> PlatformClient:
    factory = _FACTORIES.get(platform)
    if factory is None:
        raise ValueError(f"unknown platform {platform!r}; known: {', '.join(_FACTORIES)}")
    return factory(settings, retry, timeout, on_attempt)


def _expect(settings: Any, kind: type, platform: str) -> None:
    if not isinstance(settings, kind):
        raise TypeError(f"{platform} needs {kind.__name__}, got {type(settings).__name__}")
