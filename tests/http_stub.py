"""Tiny real HTTP servers for client tests: scripted answers on 127.0.0.1, port 0.

Not mocks: the clients talk real HTTP over real sockets to these, which is how exact retry
behaviour (503 twice then 201, a Retry-After as HTTP-date, a cut connection) is pinned down.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival


@dataclass
class Recorder:
    """Every request a stub received, in order."""

    requests: list[Seen] = field(default_factory=list)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.matching(method, path))

    def matching(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]


def recorded(recorder: Recorder, handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.requests.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                time.monotonic(),
                time.time(),
            )
        )
        return await handler(request)

    return wrapper


@asynccontextmanager
async def serve(
    routes: dict[tuple[str, str], Handler],
    recorder: Recorder | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """Serve {(method, path): handler} until the block ends; yields the base URL."""
    app = web.Application()
    for (method, path), handler in routes.items():
        wrapped = recorded(recorder, handler) if recorder is not None else handler
        app.router.add_route(method, path, wrapped)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"{'https' if ssl_context else 'http'}://{host}:{port}"
    finally:
        await runner.cleanup()


async def cut(request: web.Request) -> web.Response:
    """Close the socket before any response byte: the client cannot tell if the work was done."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


def scripted(
    *answers: Callable[[web.Request], Awaitable[web.StreamResponse] | web.StreamResponse],
) -> Handler:
    """Answers in order; the last one repeats."""
    queue = list(answers)

    async def handler(request: web.Request) -> web.StreamResponse:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        result = answer(request)
        if asyncio.iscoroutine(result):
            return await result
        return result  # type: ignore[return-value]

    return handler


def status(
    code: int,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Handler:
    async def answer(_: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=code, headers=headers)
        if isinstance(body, str):
            return web.Response(status=code, text=body, headers=headers)
        return web.json_response(body, status=code, headers=headers)

    return answer


async def hang(_: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    return web.Response()
