"""The platforms the sandbox can emulate, by name: the built-in packages, and any a test registers."""

from __future__ import annotations

from sandbox.jira import SANDBOX as _JIRA
from sandbox.servicenow import SANDBOX as _SERVICENOW
from sandbox.spec import SandboxPlatform

_PLATFORMS: dict[str, SandboxPlatform] = {p.name: p for p in (_SERVICENOW, _JIRA)}


def register(platform: SandboxPlatform) -> None:
    """Adds (or replaces) a platform; registered platforms are started by default."""
    _PLATFORMS[platform.name] = platform


def unregister(name: str) -> None:
    _PLATFORMS.pop(name, None)


def registered() -> dict[str, SandboxPlatform]:
    return dict(_PLATFORMS)
