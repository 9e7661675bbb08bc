"""Hole 11: a platform that drops the correlation marker (an ACL or business rule blanking
ServiceNow's correlation_id, a Jira screen without labels) turned every ambiguous failure into a
duplicate, silently. Every create's answer is checked now: the ticket is still recorded, the drop is
logged and counted, and health (itsm.platform.<name>) and check-config say that exactly-once cannot
hold for that platform, on every replica, until a create carries the marker again."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import REGISTRY

from itsm.v1 import common_pb2, ticket_service_pb2
from tests.gateway import SHIPPED_CONFIG, running_gateway

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ROOT = SHIPPED_CONFIG.parent.parent
DUMMY_SECRETS = {"SERVICENOW_USERNAME": "u", "SERVICENOW_PASSWORD": "p", "JIRA_EMAIL": "e", "JIRA_API_TOKEN": "t"}


def dropped(platform: str) -> float:
    return REGISTRY.get_sample_value("itsm_marker_dropped_total", {"platform": platform}) or 0.0


async def platform_health(harness, platform: str) -> int:
    reply = await harness.health.Check(health_pb2.HealthCheckRequest(service=f"itsm.platform.{platform}"))
    return reply.status


def check_config(database_url: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "server.runtime.cli", "check-config", str(SHIPPED_CONFIG),
         "--database-url", database_url],
        env={**os.environ, **DUMMY_SECRETS, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen")])},
        capture_output=True, text=True, timeout=60, check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("platform,field", [("servicenow", "correlation_id"), ("jira", "labels")])
async def test_a_platform_that_drops_the_marker_is_caught_everywhere(
    migrated_database_url: str, platform: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    enum = common_pb2.PLATFORM_SERVICENOW if platform == "servicenow" else common_pb2.PLATFORM_JIRA

    def create(request_id: str) -> ticket_service_pb2.CreateTicketRequest:
        return ticket_service_pb2.CreateTicketRequest(platform=enum, request_id=request_id, fields={"summary": "s"})

    async with running_gateway(migrated_database_url) as one:
        urls = one.sandbox.urls
        async with running_gateway(migrated_database_url, platform_urls=urls) as two:
            assert await platform_health(one, platform) == SERVING
            before = dropped(platform)
            await one.sandbox_put(platform, "/_sandbox/faults", {"dropped_fields": [field]})
            with caplog.at_level(logging.ERROR, logger="itsm.marker"):
                reply = await one.tickets.CreateTicket(create("blanked"))
            # The ticket is still recorded: it exists on the platform.
            assert reply.ticket.state == common_pb2.TICKET_STATE_CREATED and reply.ticket.external_key
            assert dropped(platform) == before + 1
            assert any("exactly-once cannot hold" in r.getMessage() for r in caplog.records)
            assert await platform_health(one, platform) == NOT_SERVING
            assert (await one.health.Check(health_pb2.HealthCheckRequest())).status == SERVING  # still ready
            other = "jira" if platform == "servicenow" else "servicenow"
            assert await platform_health(one, other) == SERVING

            # Another replica learns it from the database at its next round, and check-config too.
            await two.gateway.markers.refresh()
            assert await platform_health(two, platform) == NOT_SERVING
            code, out = await asyncio.to_thread(check_config, migrated_database_url)
            assert code == 1 and f"{platform}: EXACTLY-ONCE CANNOT HOLD" in out, out

            # Fixed on the platform: the next create carries the marker back, and all is well again.
            await one.sandbox_put(platform, "/_sandbox/faults", {"dropped_fields": []})
            await one.tickets.CreateTicket(create("kept"))
            assert await platform_health(one, platform) == SERVING
            await two.gateway.markers.refresh()
            assert await platform_health(two, platform) == SERVING
            code, out = await asyncio.to_thread(check_config, migrated_database_url)
            assert code == 0 and f"{platform}: keeps the correlation marker" in out, out
