"""itsm_background_tasks and itsm_platform_connections, scraped from /metrics of `serve` as a real
process while work is in flight, alone and under `serve --workers 2` (multiprocess mode: the workers'
samples are summed by the supervisor, which a collector read at scrape time could not do)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import grpc

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc
from sandbox import SandboxConfig, start_sandbox
from server.observability.metrics import RuntimeGauges, itsm_families
from tests.alert_payloads import alert, notification
from tests.processes import config_on, free_port, gateway, stop, wait_serving_async
from tests.test_workers import scrape, serving_workers, total


async def until_scraped(port: int, check: Callable[[str], bool], seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while True:
        text = await scrape(port)
        if check(text):
            return text
        assert time.monotonic() < deadline, text[-4000:]
        await asyncio.sleep(0.2)


def tasks(text: str, kind: str) -> float:
    return total(text, "itsm_background_tasks", kind=kind)


def connections(text: str, platform: str) -> float:
    return total(text, "itsm_platform_connections", platform=platform)


async def create(port: int, request_id: str, platform: int = common_pb2.PLATFORM_JIRA) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = ticket_service_pb2.CreateTicketRequest(
            platform=platform, request_id=request_id, fields={"summary": "gauges"}
        )
        await ticket_service_pb2_grpc.TicketServiceStub(channel).CreateTicket(request, timeout=30)


async def test_the_gauges_of_a_served_gateway_while_work_is_in_flight(
    migrated_database_url: str, tmp_path: Path
) -> None:
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    grpc_port, web_port, metrics_port = free_port(), free_port(), free_port()
    try:
        config, env = config_on(sandbox.urls, tmp_path)
        process = gateway(
            "serve", "--allow-unauthenticated", "--config", str(config),
            "--grpc-port", str(grpc_port), "--web-port", str(web_port), "--metrics-port", str(metrics_port),
            "--database-url", migrated_database_url, cwd=tmp_path, env=env,
        )  # fmt: skip
        try:
            await wait_serving_async(grpc_port, process)
            idle = await until_scraped(metrics_port, lambda t: tasks(t, "reconciler") == 1)
            assert tasks(idle, "status_sync") == 1
            assert tasks(idle, "final_write") == 0 and tasks(idle, "alert_notification") == 0
            assert "itsm_platform_connections" in idle

            # Slow platforms: creates and an Alertmanager notification stay in flight for seconds.
            async with aiohttp.ClientSession() as http:
                for url in sandbox.urls.values():
                    async with http.put(f"{url}/_sandbox/faults", json={"write_latency_ms": 4000}) as r:
                        assert r.status == 200
                creates = [asyncio.create_task(create(grpc_port, f"g{i}")) for i in range(6)]
                hook = f"http://127.0.0.1:{web_port}/alertmanager/ops_jira"
                alerting = asyncio.create_task(http.post(hook, json=notification([alert("DiskFull", "db-1")])))
                busy = await until_scraped(
                    metrics_port,
                    lambda t: connections(t, "jira") >= 2 and tasks(t, "alert_notification") == 1,
                )
                assert connections(busy, "servicenow") == 0
                await asyncio.gather(*creates)
                async with await alerting as answer:
                    assert answer.status == 200, await answer.text()

            # Traffic over: nothing left in flight; the loops still run; the pool keeps its idle
            # connections (bounded by the number that were ever in use at once).
            after = await until_scraped(metrics_port, lambda t: tasks(t, "alert_notification") == 0)
            assert tasks(after, "reconciler") == 1 and tasks(after, "final_write") == 0
            assert 1 <= connections(after, "jira") <= 7
        finally:
            code, err = stop(process)
        assert code == 0, err[-3000:]
    finally:
        await sandbox.stop()


async def test_the_gauges_are_summed_over_workers(migrated_database_url: str, tmp_path: Path) -> None:
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    grpc_port, metrics_port = free_port(), free_port()
    try:
        config, env = config_on(sandbox.urls, tmp_path)
        supervisor = gateway(
            "serve", "--allow-unauthenticated", "--config", str(config), "--workers", "2",
            "--grpc-port", str(grpc_port), "--web-port", str(free_port()), "--metrics-port", str(metrics_port),
            "--database-url", migrated_database_url, cwd=tmp_path, env=env,
        )  # fmt: skip
        try:
            await wait_serving_async(grpc_port, supervisor)
            await serving_workers(metrics_port, 2)
            both = await until_scraped(metrics_port, lambda t: tasks(t, "reconciler") == 2)
            assert tasks(both, "status_sync") == 2
            options = [("grpc.use_local_subchannel_pool", 1)]
            for i in range(10):  # new connections: the kernel spreads them over the workers
                async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}", options=options) as channel:
                    request = ticket_service_pb2.CreateTicketRequest(
                        platform=common_pb2.PLATFORM_SERVICENOW, request_id=f"w{i}", fields={"summary": "s"}
                    )
                    await ticket_service_pb2_grpc.TicketServiceStub(channel).CreateTicket(request, timeout=30)
            await until_scraped(metrics_port, lambda t: connections(t, "servicenow") >= 1)
        finally:
            code, err = stop(supervisor)
        assert code == 0, err[-3000:]
    finally:
        await sandbox.stop()


def test_gauges_of_several_gateways_in_one_process_add_up_and_clear() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    family = itsm_families(registry).background_tasks
    one, two = RuntimeGauges(["jira"], registry), RuntimeGauges(["jira"], registry)
    one.sample({"reconciler": 1, "final_write": 3}, {"jira": 4})
    two.sample({"reconciler": 1}, {"jira": 1})
    one.sample({"reconciler": 1, "final_write": 1, "bogus": 9}, {"jira": 2, "bogus": 5})
    assert family.labels("reconciler")._value.get() == 2
    assert family.labels("final_write")._value.get() == 1
    assert itsm_families(registry).platform_connections.labels("jira")._value.get() == 3
    one.clear()
    assert family.labels("reconciler")._value.get() == 1
    two.clear()
    assert family.labels("reconciler")._value.get() == 0
    assert {s.labels.get("kind") for m in registry.collect() for s in m.samples if m.name == "itsm_background_tasks"} \
        == {"reconciler", "status_sync", "final_write", "alert_notification"}
