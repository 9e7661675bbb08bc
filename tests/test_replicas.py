"""Replicas sharing one PostgreSQL, as real processes: they coordinate only through the database, on
the database's clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import grpc
import pytest

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc
from sandbox import SandboxConfig, start_sandbox
from tests.processes import clock_ahead, config_on, serve_on, stop, wait_serving_async


@pytest.mark.parametrize("database_backend", ["postgres"], indirect=True)
async def test_hole3_a_replica_whose_clock_runs_ahead_never_takes_over_a_live_lease(
    migrated_database_url: str, tmp_path: Path
) -> None:
    """Hole 3: leases compared each replica's own clock, so a replica five minutes ahead saw a live
    lease as expired, took the operation over and sent a second ticket. Leases now live on the
    database's clock: the skewed replica waits for the holder and answers with its ticket."""
    skew = clock_ahead("+5m")
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    try:
        config, env = config_on(sandbox.urls, tmp_path)
        a_port, a = serve_on(config, env, migrated_database_url, tmp_path)
        b_port, b = serve_on(config, {**env, **skew}, migrated_database_url, tmp_path)
        try:
            await asyncio.gather(wait_serving_async(a_port, a), wait_serving_async(b_port, b))
            async with aiohttp.ClientSession() as http:
                # A slow insert while look-ups answer at once: a replica that took the lease over
                # would look the marker up, find nothing yet, and send a second incident.
                faults = {"write_latency_ms": 2500}
                await http.put(f"{sandbox.url('servicenow')}/_sandbox/faults", json=faults)
            request = ticket_service_pb2.CreateTicketRequest(
                platform=common_pb2.PLATFORM_SERVICENOW, request_id="skewed", fields={"summary": "s"}
            )
            async with grpc.aio.insecure_channel(f"127.0.0.1:{a_port}") as to_a, \
                    grpc.aio.insecure_channel(f"127.0.0.1:{b_port}") as to_b:
                first = asyncio.ensure_future(ticket_service_pb2_grpc.TicketServiceStub(to_a).CreateTicket(request))
                await asyncio.sleep(0.8)  # A holds the lease and is sending
                second = await ticket_service_pb2_grpc.TicketServiceStub(to_b).CreateTicket(request, timeout=30)
                assert (await first).ticket.id == second.ticket.id
            assert second.ticket.state == common_pb2.TICKET_STATE_CREATED
            stats = await _stats(sandbox.url("servicenow"))
            assert stats["records"] == 1
        finally:
            for process in (a, b):
                code, err = stop(process)
                assert code == 0, err[-2000:]
    finally:
        await sandbox.stop()


async def _stats(base: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/_sandbox/stats") as response:
        return await response.json()
