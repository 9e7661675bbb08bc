"""Starts the real gateway (and its sandbox) in-process on free ports, for end-to-end tests: gRPC, the
web port (Connect, gRPC-web, /healthz, /readyz) and /metrics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2_grpc

from itsm.v1 import template_service_pb2_grpc, ticket_service_pb2_grpc
from sandbox import RunningSandbox, SandboxConfig, registered, start_sandbox
from server.runtime.app import Gateway, ServeOptions, TlsFiles
from server.runtime.config import parse_config
from server.runtime.devmode import sandbox_config_overrides
from server.transport.auth import TokenRegistry

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config" / "itsm_config.json"


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Harness:
    gateway: Gateway
    sandbox: RunningSandbox
    channel: grpc.aio.Channel
    tickets: ticket_service_pb2_grpc.TicketServiceStub
    templates: template_service_pb2_grpc.TemplateServiceStub
    health: health_pb2_grpc.HealthStub
    web: aiohttp.ClientSession  # one keep-alive session to the web port

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.web_port}"

    async def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """One HTTP request to the web port; a dict or list body is sent as JSON."""
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        sent = {"Content-Type": content_type, **(headers or {})} if data is not None else dict(headers or {})
        async with self.web.request(method, self.web_url + path, data=data, headers=sent) as response:
            return HttpReply(response.status, dict(response.headers), await response.read())

    async def connect(self, rpc: str, body: Any, headers: Mapping[str, str] | None = None) -> HttpReply:
        """A Connect JSON call: rpc is "TicketService/CreateTicket"."""
        return await self.http("POST", f"/itsm.v1.{rpc}", body, headers=headers)

    async def sandbox_get(self, platform: str, path: str) -> Any:
        """GET a sandbox control path (/_sandbox/stats ...) of one platform."""
        base = self.sandbox.url("servicenow") if platform == "servicenow" else self.sandbox.url("jira")
        async with aiohttp.ClientSession() as http, http.get(base + path) as response:
            return await response.json()

    async def sandbox_put(self, platform: str, path: str, body: Any) -> None:
        base = self.sandbox.url("servicenow") if platform == "servicenow" else self.sandbox.url("jira")
        async with aiohttp.ClientSession() as http, http.put(base + path, json=body) as response:
            assert response.status == 200, await response.text()

    async def platform_call(self, platform: str, method: str, path: str, body: Any = None) -> Any:
        """A call to the sandbox's platform API with its well-known credentials, as a person or
        another tool would make it: what the platform holds, not what the gateway says."""
        user, secret = registered()[platform].credentials
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.request(method, self.sandbox.url(platform) + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json() if response.content_length != 0 else None

    async def scrape(self) -> str:
        """The gateway's /metrics text."""
        url = f"http://127.0.0.1:{self.gateway.metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            return await response.text()

    async def records(self, platform: str) -> int:
        stats = await self.sandbox_get(platform, "/_sandbox/stats")
        return int(stats["records"])


def gateway_config(
    database_url: str,
    sandbox: RunningSandbox,
    mutate: Callable[[dict[str, Any]], None] | None,
    env: dict[str, str] | None = None,
    platform_urls: dict[str, str] | None = None,
):
    raw = json.loads(SHIPPED_CONFIG.read_text())
    raw["limits"]["shutdown_drain_seconds"] = 0
    raw["limits"]["shutdown_grace_seconds"] = 2
    # Tests fail fast: a short retry schedule, the same rules.
    raw["retry_policy"].update(initial_delay_seconds=0.01, max_delay_seconds=0.2)
    # ...and a short budget, so an uncertain outcome is settled within a test's time.
    raw["timeout"]["total_seconds"] = 4
    raw["idempotency"]["pending_lease_seconds"] = 18
    # The sandbox commits at once and its search does not lag unless a test says so: short
    # confirmation delays keep ambiguous failures quick to settle.
    for block in raw["platforms"].values():
        block.update(confirmation_delay_seconds=0.2, search_confirmation_delay_seconds=0.4)
    raw, sandbox_env = sandbox_config_overrides(raw, {**sandbox.urls, **(platform_urls or {})})
    if mutate:
        mutate(raw)
    return parse_config(raw, {**sandbox_env, **(env or {})})


@asynccontextmanager
async def running_gateway(
    database_url: str,
    *,
    tokens: TokenRegistry | None = None,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    sandbox_config: SandboxConfig | None = None,
    env: dict[str, str] | None = None,
    platform_urls: dict[str, str] | None = None,
    tls: TlsFiles | None = None,
) -> AsyncIterator[Harness]:
    """The gateway on the sandbox (or, per platform, on platform_urls: a stub server), its config
    mutated by `mutate` after the sandbox settings are in."""
    sandbox = await start_sandbox(sandbox_config or SandboxConfig.on_free_ports())
    try:
        options = ServeOptions(
            config=gateway_config(database_url, sandbox, mutate, env, platform_urls),
            database_url=database_url,
            bind="127.0.0.1",
            grpc_port=0,
            metrics_bind="127.0.0.1",
            metrics_port=0,
            tokens=tokens,
            tls=tls,
            web_bind="127.0.0.1",
            web_port=0,
        )
        gateway = Gateway(options)
        await gateway.start()
        try:
            await _started_up(gateway)
            async with (
                _channel(gateway.grpc_port, tls) as channel,
                aiohttp.ClientSession() as web,
            ):
                yield Harness(
                    gateway=gateway,
                    sandbox=sandbox,
                    channel=channel,
                    tickets=ticket_service_pb2_grpc.TicketServiceStub(channel),
                    templates=template_service_pb2_grpc.TemplateServiceStub(channel),
                    health=health_pb2_grpc.HealthStub(channel),
                    web=web,
                )
        finally:
            await gateway.stop()
    finally:
        await sandbox.stop()


async def _started_up(gateway: Gateway, within: float = 5.0) -> None:
    """Waits (at most `within`) for the gateway's start-up background rounds (reconciler, status
    sync...): one that ran late, while a test acts, would race the test's own round (claim the
    ticket it syncs, take over the operation it settles)."""
    rounds = [task.first_round_done.wait() for task in gateway._background]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*rounds), within)


def _channel(port: int, tls: TlsFiles | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.cert.read_bytes())
    return grpc.aio.secure_channel(f"localhost:{port}", credentials)
