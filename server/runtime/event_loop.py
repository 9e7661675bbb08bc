"""The event loop every command runs on: uvloop when it is installed, else asyncio's own.

ITSM_EVENT_LOOP=asyncio opts out of uvloop (ITSM_EVENT_LOOP=uvloop, or unset, takes it when it is
there). grpc.aio runs on whatever loop is current when its server is made, so the gateway, the web
port and the database drivers all share the one loop chosen here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EVENT_LOOP_ENV = "ITSM_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")


def loop_name() -> str:
    """The implementation run() will use: "uvloop" or "asyncio"."""
    wanted = os.environ.get("ITSM_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if wanted not in CHOICES:
        raise ValueError(f"ITSM_EVENT_LOOP must be one of {', '.join(CHOICES)}, got {wanted!r}")
    if wanted == "uvloop" and _uvloop_factory() is None:
        return "asyncio"
    return wanted


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop factory for asyncio.Runner (None: asyncio's default loop)."""
    return _uvloop_factory() if loop_name() == "uvloop" else None


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
