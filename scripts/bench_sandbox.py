"""Sandbox throughput: concurrent creates and lookups against both platforms, in-process.

    .venv/bin/python scripts/bench_sandbox.py --requests 5000 --concurrency 64

Measures the sandbox itself, so gateway benchmarks can tell whether the simulator is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp

from sandbox import (
    SandboxConfig,
    SandboxLimits,
    start_sandbox,
)
from sandbox.jira.settings import DEFAULT_TOKEN as DEFAULT_JIRA_TOKEN
from sandbox.jira.settings import DEFAULT_USER as DEFAULT_JIRA_USER
from sandbox.servicenow.settings import DEFAULT_PASSWORD as DEFAULT_SERVICENOW_PASSWORD
from sandbox.servicenow.settings import DEFAULT_USER as DEFAULT_SERVICENOW_USER


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


async def _run(label: str, total: int, concurrency: int, call: Callable[[int], Awaitable[int]]) -> None:
    latencies: list[float] = []
    failures = 0
    next_index = iter(range(total))

    async def worker() -> None:
        nonlocal failures
        for index in next_index:
            started = time.perf_counter()
            status = await call(index)
            latencies.append(time.perf_counter() - started)
            failures += status >= 400

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{label:<28} {total / elapsed:8.0f} req/s  p50 {cuts[49] * 1000:6.2f} ms  "
        f"p99 {cuts[98] * 1000:6.2f} ms  failures {failures}"
    )


async def main(total: int, concurrency: int) -> None:
    sandbox = await start_sandbox(
        SandboxConfig.on_free_ports(limits=SandboxLimits(max_records=total * 2))
    )
    sn_headers = {
        "Accept": "application/json",
        "Authorization": _basic(DEFAULT_SERVICENOW_USER, DEFAULT_SERVICENOW_PASSWORD),
    }
    jira_headers = {"Authorization": _basic(DEFAULT_JIRA_USER, DEFAULT_JIRA_TOKEN)}
    connector = aiohttp.TCPConnector(limit=concurrency)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:

            async def sn_create(i: int) -> int:
                body = {"short_description": f"bench {i}", "correlation_id": f"bench-{i}"}
                url = f"{sandbox.url('servicenow')}/api/now/table/incident"
                async with http.post(url, json=body, headers=sn_headers) as r:
                    await r.read()
                    return r.status

            async def sn_lookup(i: int) -> int:
                params = {"sysparm_query": f"correlation_id=bench-{i}", "sysparm_limit": "1"}
                url = f"{sandbox.url('servicenow')}/api/now/table/incident"
                async with http.get(url, params=params, headers=sn_headers) as r:
                    await r.read()
                    return r.status

            async def jira_create(i: int) -> int:
                fields = {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": f"bench {i}"}
                async with http.post(
                    f"{sandbox.url('jira')}/rest/api/2/issue",
                    json={"fields": {**fields, "labels": [f"bench-{i}"]}},
                    headers=jira_headers,
                ) as r:
                    await r.read()
                    return r.status

            async def jira_search(i: int) -> int:
                params = {"jql": f'labels = "bench-{i}"', "fields": "id"}
                async with http.get(
                    f"{sandbox.url('jira')}/rest/api/3/search/jql", params=params, headers=jira_headers
                ) as r:
                    await r.read()
                    return r.status

            await _run("servicenow create", total, concurrency, sn_create)
            await _run("servicenow lookup (scan)", total, concurrency, sn_lookup)
            await _run("jira create", total, concurrency, jira_create)
            await _run("jira search/jql (scan)", total, concurrency, jira_search)
    finally:
        await sandbox.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency))
