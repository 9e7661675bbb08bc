"""Applies a platform's FaultState to its API traffic (never to /_sandbox/ control calls)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sandbox.faults import FaultState

CONTROL_PREFIX = "/_sandbox/"

# Builds the platform's own error answer for an injected status and Retry-After seconds.
FaultResponder = Callable[[int, int], web.Response]


def is_control_path(path: str) -> bool:
    return path.startswith(CONTROL_PREFIX)


def is_read(request: web.Request) -> bool:
    """Whether a request only reads (not counted in stats.writes): GET and HEAD by default; a
    platform with read-only POSTs (Jira's search) passes its own rule."""
    return request.method in ("GET", "HEAD")


def fault_middleware(
    state: FaultState, respond: FaultResponder, reads: Callable[[web.Request], bool] = is_read
) -> Middleware:
    @web.middleware
    async def apply_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_control_path(request.path):
            return await handler(request)
        state.requests += 1
        if not reads(request):
            state.writes += 1
        settings = state.settings
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        if settings.write_latency_ms and not reads(request):
            await asyncio.sleep(settings.write_latency_ms / 1000)
        status = state.roll_error_status()
        if status is not None:
            # Answered before the handler runs: an injected error never applies the request.
            return respond(status, settings.retry_after_seconds)
        return await handler(request)

    return apply_faults


def cut_connection(request: web.Request) -> web.Response:
    """Close the socket before the first response byte.

    The write is already applied, so the client faces the real ambiguity of a timeout after commit:
    aiohttp reports ServerDisconnectedError, requests a ConnectionError.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    # Never reaches the wire; the status only labels the access-log line.
    return web.Response(status=499)


def commit_late(state: FaultState, apply: Callable[[], object]) -> web.Response | None:
    """When the dice say so, answers 504 now (as a load balancer that gave up would, in plain text)
    and applies the write late_commit_ms later; else None, and the caller applies it now. Faults
    in the delayed write (a full store, a data policy) are the platform's own: they are dropped."""
    if not state.roll_late_commit():
        return None

    def later() -> None:
        try:
            apply()
        except Exception:  # the write failed on the platform: nobody hears of it, as in reality
            pass

    asyncio.get_running_loop().call_later(state.settings.late_commit_ms / 1000, later)
    page = "<html><body>504 Gateway Time-out</body></html>"
    return web.Response(status=504, text=page, content_type="text/html")
