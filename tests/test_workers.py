"""`serve --workers N` as real processes: one port answered by every worker, one /metrics summing
them, a killed worker restarted, SIGTERM draining all with exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc
from sandbox import SandboxConfig, start_sandbox
from server.observability.logs import BufferedStderrHandler
from server.runtime.workers import MAX_WORKERS, usable_cpus, worker_count
from tests.processes import config_on, free_port, gateway, run, stop, wait_serving_async


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def create_on_a_new_connection(port: int, request_id: str) -> ticket_service_pb2.CreateTicketResponse:
    """A fresh channel: a new connection, which the kernel gives to one of the workers."""
    # A channel of its own subchannel pool: gRPC would otherwise reuse one connection for every
    # channel to the same address.
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        request = ticket_service_pb2.CreateTicketRequest(
            platform=common_pb2.PLATFORM_SERVICENOW, request_id=request_id, fields={"summary": "s"}
        )
        return await ticket_service_pb2_grpc.TicketServiceStub(channel).CreateTicket(request, timeout=30)


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return await r.text()


async def serving_workers(metrics_port: int, count: int, seconds: float = 30) -> None:
    """Until the supervisor says `count` workers serve (each tells it once it does)."""
    deadline = time.monotonic() + seconds
    while total(await scrape(metrics_port), "itsm_workers_serving") != count:
        assert time.monotonic() < deadline, "the workers did not all serve"
        await asyncio.sleep(0.1)


async def until(condition, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_workers_share_the_ports_and_the_metrics_and_survive_a_kill(
    migrated_database_url: str, tmp_path: Path
) -> None:
    sandbox = await start_sandbox(SandboxConfig.on_free_ports())
    grpc_port, web_port, metrics_port = free_port(), free_port(), free_port()
    try:
        config, env = config_on(sandbox.urls, tmp_path)
        supervisor = gateway(
            "serve", "--allow-unauthenticated", "--config", str(config), "--workers", "2",
            "--grpc-port", str(grpc_port), "--web-port", str(web_port), "--metrics-port", str(metrics_port),
            "--database-url", migrated_database_url,
            cwd=tmp_path, env={**env, "ITSM_LOG_FORMAT": "json"},
        )
        try:
            await wait_serving_async(grpc_port, supervisor)
            await serving_workers(metrics_port, 2)
            first = children(supervisor.pid)
            replies = await asyncio.gather(*(create_on_a_new_connection(grpc_port, f"w{i}") for i in range(40)))
            assert len({r.ticket.id for r in replies}) == 40

            async with aiohttp.ClientSession() as http:
                body = {"platform": "PLATFORM_JIRA", "fields": {"summary": "over the web port"}}
                url = f"http://127.0.0.1:{web_port}/itsm.v1.TicketService/ValidateTicket"
                async with http.post(url, json=body) as r:
                    assert r.status == 200 and (await r.json()).get("valid") is True

            metrics = await scrape(metrics_port)
            created = {"platform": "servicenow", "outcome": "created"}
            assert total(metrics, "itsm_ticket_creation_total", **created) == 40
            assert total(metrics, "grpc_server_handled_total", grpc_method="CreateTicket", grpc_code="OK") == 40

            # Workers flush INFO lines every FLUSH_SECONDS and SIGKILL loses what is unflushed: give
            # the one about to die time to write the lines of the calls it answered.
            await asyncio.sleep(BufferedStderrHandler.FLUSH_SECONDS * 10)
            killed = min(first)
            os.kill(killed, signal.SIGKILL)
            await until(lambda: len(children(supervisor.pid)) == 2 and killed not in children(supervisor.pid))
            await serving_workers(metrics_port, 2)
            after = await asyncio.gather(*(create_on_a_new_connection(grpc_port, f"x{i}") for i in range(10)))
            assert all(r.ticket.state == common_pb2.TICKET_STATE_CREATED for r in after)
            metrics = await scrape(metrics_port)
            # The dead worker's counts stay counted: they happened.
            assert total(metrics, "itsm_ticket_creation_total", **created) == 50
            assert total(metrics, "itsm_worker_restarts_total") == 1
        finally:
            code, err = stop(supervisor)
            print(err[-20000:])  # shown by pytest when the test fails: what the workers logged
        assert code == 0, err[-3000:]
    finally:
        await sandbox.stop()

    serving = [line for line in err.splitlines() if "serving gRPC" in line and "worker" in line]
    assert len(serving) == 3, serving  # two workers, then the restarted one
    answered = {
        entry["pid"]
        for entry in map(_json, err.splitlines())
        if entry and entry.get("rpc", "").endswith("/CreateTicket")
    }
    assert first <= answered, (first, answered)  # both first workers answered on the one port
    assert "died (exit code -9); restarting" in err
    assert "supervisor: stopped (exit 0)" in err
    assert not children_alive(first)


def _json(line: str) -> dict | None:  # type: ignore[type-arg]
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def children_alive(pids: set[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_a_port_in_use_stops_the_supervisor_with_one_line(tmp_path: Path) -> None:
    config, env = config_on({}, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run(
            "serve", "--allow-unauthenticated", "--config", str(config), "--workers", "2", "--bind", "127.0.0.1",
            "--grpc-port", str(port), "--web-port", str(free_port()), "--metrics-port", str(free_port()),
            "--database-url", f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
            cwd=tmp_path, env=env,
        )
    assert code == 1
    assert f"cannot reserve port {port}" in err and "Traceback" not in err


def test_workers_flag_values(tmp_path: Path) -> None:
    assert worker_count("3") == 3
    assert 1 <= worker_count("auto") == min(MAX_WORKERS, usable_cpus()) <= os.cpu_count()  # type: ignore[operator]
    for bad in ("0", "65", "many"):
        with pytest.raises(ValueError):
            worker_count(bad)
    code, err = run("serve", "--workers", "0", cwd=tmp_path)
    assert code == 2 and "--workers" in err and "between 1 and 64" in err
