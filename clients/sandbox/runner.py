"""Starts both sandboxes in the current event loop and stops them cleanly."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web

from clients.sandbox.config import SandboxConfig
from clients.sandbox.faults import FaultState
from clients.sandbox.jira import JiraSandbox
from clients.sandbox.servicenow import ServiceNowSandbox


@dataclass
class RunningSandbox:
    servicenow_url: str  # e.g. http://127.0.0.1:8081, the port actually bound
    jira_url: str
    servicenow: ServiceNowSandbox
    jira: JiraSandbox
    _runners: tuple[web.AppRunner, ...]

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


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


async def start_sandbox(config: SandboxConfig) -> RunningSandbox:
    """Bind both platforms (port 0 picks a free port) and return their URLs."""
    # One seed drives both platforms' dice, but each platform has its own generator so traffic
    # on one does not shift the other's fault sequence.
    servicenow = ServiceNowSandbox(
        config.servicenow_auth, FaultState(config.servicenow_faults, config.seed), config.limits
    )
    jira = JiraSandbox(config.jira_auth, FaultState(config.jira_faults, config.seed), config.limits)
    context = _ssl_context(config)
    sn_runner, sn_url = await _serve(servicenow.app(), config.host, config.servicenow_port, context)
    try:
        jira_runner, jira_url = await _serve(jira.app(), config.host, config.jira_port, context)
    except BaseException:
        await sn_runner.cleanup()
        raise
    return RunningSandbox(sn_url, jira_url, servicenow, jira, (sn_runner, jira_runner))
