"""What a platform's sandbox package exports: a SandboxPlatform (its default port, the well-known
credentials a client uses against it, and how to build its aiohttp application)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from sandbox.config import SandboxLimits
from sandbox.control import ControlTarget
from sandbox.faults import FaultState


class PlatformApp(Protocol):
    """A running platform emulation: its store (for the control endpoints) and its web app."""

    store: ControlTarget
    faults: FaultState

    def app(self) -> web.Application: ...


@dataclass(frozen=True)
class SandboxPlatform:
    name: str  # the platform's name in the gateway's configuration ("servicenow")
    default_port: int
    # (user, secret) a client sends over basic auth with the default credentials: what `dev` injects.
    credentials: tuple[str, str]
    build: Callable[[Any, FaultState, SandboxLimits], PlatformApp]  # (auth or None, faults, limits)
    title: str = ""  # for banners: "ServiceNow"
    records_path: str = "/"  # a GET that lists the newest records, for people to look (with auth)
    # Command-line flags for its credentials (--<name>-user ...), and the auth settings they give.
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    auth_from_args: Callable[[argparse.Namespace], Any] | None = None
