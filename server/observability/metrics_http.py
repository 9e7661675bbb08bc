"""The /metrics endpoint, served by aiohttp on the gateway's own event loop (no extra thread)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


class MetricsEndpoint:
    def __init__(self, host: str | None, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        self._host, self._port, self._registry = host, port, registry
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> int:
        """Starts serving; returns the bound port (useful when asked for port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            where = f"{self._host or '[::]'}:{self._port}"
            raise OSError(f"cannot bind metrics on {where}: {exc.strerror}") from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
