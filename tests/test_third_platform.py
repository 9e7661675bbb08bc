"""The platform seam: a third platform ("fakedesk": client module, sandbox module and configuration
block, all in tests/fake_platform) is registered and creates tickets through the service layer, exactly
once across a cut connection, with no edit to server/. A real one would add its enum value to
common.proto too, and the transport maps it by name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clients import registry
from itsm.v1 import common_pb2
from sandbox import SandboxConfig, register, start_sandbox, unregister
from server.runtime.app import Gateway, ServeOptions
from server.runtime.config import parse_config
from server.runtime.devmode import sandbox_config_overrides
from server.transport.platforms import platform_name, platform_value
from tests.fake_platform import client as fakedesk
from tests.fake_platform import sandbox as fakedesk_sandbox
from tests.processes import SHIPPED_CONFIG

# The one configuration block a platform brings (dev mode adds its base_url and sandbox credentials).
FAKEDESK_BLOCK = {"enabled": True}
FAKEDESK_FIELDS = {
    "summary": {"path": "title", "required": True, "max_length": 100},
    "severity": {"path": "severity", "enum": ["low", "high"], "default": "low"},
}


@pytest.fixture
async def fakedesk_gateway(migrated_database_url: str) -> AsyncIterator[tuple[Gateway, str]]:
    registry.register(fakedesk.SPEC)
    register(fakedesk_sandbox.SANDBOX)
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    try:
        raw: dict[str, Any] = json.loads(SHIPPED_CONFIG.read_text())
        raw["platforms"]["fakedesk"] = dict(FAKEDESK_BLOCK)
        raw["field_mapping"]["fakedesk"] = FAKEDESK_FIELDS
        raw["sla"]["targets"]["fakedesk"] = {"high": {"response_seconds": 60, "resolution_seconds": 600}}
        raw["limits"]["shutdown_drain_seconds"] = 0
        raw, env = sandbox_config_overrides(raw, sandbox.urls)
        options = ServeOptions(
            config=parse_config(raw, env), database_url=migrated_database_url,
            bind="127.0.0.1", grpc_port=0, metrics_port=None,
        )
        gateway = Gateway(options)
        await gateway.start()
        try:
            yield gateway, sandbox.url("fakedesk")
        finally:
            await gateway.stop()
    finally:
        await sandbox.stop()
        registry.unregister("fakedesk")
        unregister("fakedesk")


async def records(base: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/_sandbox/stats") as response:
        return int((await response.json())["records"])


async def test_a_third_platform_creates_tickets_through_the_service_layer(fakedesk_gateway) -> None:
    gateway, base = fakedesk_gateway
    creation = gateway.services.creation
    done = await creation.create(
        platform="fakedesk", request_id="fd-1", job_id="", fields={"summary": "printer on fire", "severity": "high"},
        caller="test", deadline=None,
    )
    assert (done.ticket.state, done.ticket.external_key) == ("CREATED", "FD-1")
    assert done.ticket.priority == "high" and done.ticket.sla_state == "ON_TRACK"  # its own priority rule
    again = await creation.create(
        platform="fakedesk", request_id="fd-1", job_id="", fields={"summary": "printer on fire", "severity": "high"},
        caller="test", deadline=None,
    )
    assert again.replayed and again.ticket.id == done.ticket.id
    # Exactly once across a cut connection, through the same engine as every other platform.
    async with aiohttp.ClientSession() as http:
        await http.put(f"{base}/_sandbox/faults", json={"drop_after_commit_rate": 1.0})
    cut = await creation.create(
        platform="fakedesk", request_id="fd-2", job_id="", fields={"summary": "still on fire"},
        caller="test", deadline=None,
    )
    assert cut.ticket.external_key == "FD-2"
    assert await records(base) == 2
    invalid = creation.validate("fakedesk", {"severity": "medium"})
    assert {(v.field, v.reason) for v in invalid} == {("summary", "REQUIRED"), ("severity", "ENUM")}


def test_the_transport_maps_platforms_by_name() -> None:
    assert platform_name(common_pb2.PLATFORM_JIRA) == "jira"
    assert platform_value("servicenow") == common_pb2.PLATFORM_SERVICENOW
    # A platform without an enum value yet is simply not reachable over the proto.
    assert platform_value("fakedesk") == common_pb2.PLATFORM_UNSPECIFIED
    assert platform_name(99) == ""
