"""Starts the configured platform emulations in the current event loop and stops them cleanly."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from sandbox.config import PlatformSandbox, SandboxConfig
from sandbox.faults import FaultState
from sandbox.platforms import registered
from sandbox.spec import PlatformApp


@dataclass
class RunningSandbox:
    urls: dict[str, str]  # platform -> its base URL with the port actually bound
    platforms: dict[str, PlatformApp]
    _runners: list[web.AppRunner] = field(default_factory=list, repr=False)

    def url(self, platform: str) -> str:
        return self.urls[platform]

    def app(self, platform: str) -> Any:
        """The platform's emulation object (its store, its fault state)."""
        return self.platforms[platform]

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


def _ssl_context(config: SandboxConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls.cert_file, config.tls.key_file)
    return context


async def _serve(
    app: web.Application, host: str, port: int, context: ssl.SSLContext | None
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=context).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    scheme = "https" if context else "http"
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"{scheme}://{shown}:{bound_port}"


def planned(config: SandboxConfig) -> dict[str, PlatformSandbox]:
    """Every registered platform with its settings, its port resolved."""
    unknown = set(config.platforms) - set(registered())
    if unknown:
        raise ValueError(f"unknown sandbox platform(s): {', '.join(sorted(unknown))}")
    plan = {}
    for name, platform in registered().items():
        settings = config.platforms.get(name, PlatformSandbox())
        if settings.port is None:
            settings = replace(settings, port=0 if config.free_ports else platform.default_port)
        plan[name] = settings
    return plan


async def start_sandbox(config: SandboxConfig) -> RunningSandbox:
    """Bind every planned platform (port 0 picks a free port) and return their URLs."""
    available = registered()
    context = _ssl_context(config)
    running = RunningSandbox({}, {})
    try:
        for name, settings in planned(config).items():
            assert settings.port is not None
            # One seed drives every platform's dice, but each has its own generator so traffic on one
            # does not shift another's fault sequence.
            emulation = available[name].build(
                settings.auth, FaultState(settings.faults, config.seed), config.limits
            )
            runner, url = await _serve(emulation.app(), config.host, settings.port, context)
            running._runners.append(runner)
            running.urls[name], running.platforms[name] = url, emulation
    except BaseException:
        await running.stop()
        raise
    return running
