"""Client overhead per create, against a raw aiohttp POST to the same sandbox in the same run.

Runs alternate (raw, client, raw, client, ...) so drift on the machine hits both sides alike;
medians of the per-run mean create time are compared. No faults are injected: this measures what
the retry engine, marker stamping, validation and error parsing cost on the happy path.

    .venv/bin/python scripts/bench_clients.py [--creates 300] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clients.platform import PlatformClient
from clients.settings import RetryPolicy, TimeoutConfig
from sandbox import config as sandbox_config
from sandbox import start_sandbox
from sandbox.jira import settings as jira_sandbox
from sandbox.servicenow import settings as servicenow_sandbox
from scripts.drill_clients import (
    jira_client,
    jira_payload,
    servicenow_client,
    servicenow_payload,
)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


async def timed(creates: int, create: Callable[[int], Awaitable[Any]]) -> float:
    """Mean seconds per create, one at a time (latency, not throughput)."""
    started = time.perf_counter()
    for i in range(creates):
        await create(i)
    return (time.perf_counter() - started) / creates


async def bench_platform(
    name: str,
    client: PlatformClient,
    raw_url: str,
    raw_headers: dict[str, str],
    raw_body: Callable[[int, str], dict[str, Any]],
    client_payload: Callable[[int], dict[str, Any]],
    creates: int,
    runs: int,
) -> None:
    raw_times: list[float] = []
    client_times: list[float] = []
    async with aiohttp.ClientSession(headers=raw_headers) as session:

        async def raw(i: int) -> None:
            body = raw_body(i, f"bench-raw-{uuid.uuid4().hex}")
            async with session.post(raw_url, json=body) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"raw create answered {resp.status}")
                await resp.json()  # any real caller reads the answer

        async def through_client(i: int) -> None:
            await client.create(client_payload(i), f"bench-{uuid.uuid4().hex}")

        # Warm-up: connections, token, caches.
        await timed(20, raw)
        await timed(20, through_client)
        for _ in range(runs):
            raw_times.append(await timed(creates, raw))
            client_times.append(await timed(creates, through_client))
    raw_med, client_med = statistics.median(raw_times), statistics.median(client_times)
    print(
        f"{name:<10} raw {raw_med * 1e3:7.3f} ms/create   client {client_med * 1e3:7.3f} ms/create   "
        f"overhead {(client_med - raw_med) * 1e6:7.1f} us   ratio {client_med / raw_med:5.2f}x   "
        f"(medians of {runs} alternated runs x {creates} creates; "
        f"raw runs {', '.join(f'{t * 1e3:.2f}' for t in raw_times)} ms; "
        f"client runs {', '.join(f'{t * 1e3:.2f}' for t in client_times)} ms)"
    )


async def main_async(creates: int, runs: int) -> None:
    sandbox = await start_sandbox(sandbox_config.SandboxConfig.on_free_ports(seed=1))
    retry, timeout = RetryPolicy(), TimeoutConfig()
    sn = servicenow_client(sandbox.url("servicenow"), retry, timeout)
    jira = jira_client(sandbox.url("jira"), retry, timeout, 2)
    try:
        await bench_platform(
            "servicenow",
            sn,
            f"{sandbox.url('servicenow')}/api/now/table/incident",
            {
                "Accept": "application/json",
                "Authorization": basic(
                    servicenow_sandbox.DEFAULT_USER, servicenow_sandbox.DEFAULT_PASSWORD
                ),
            },
            lambda i, marker: {**servicenow_payload(i), "correlation_id": marker},
            servicenow_payload,
            creates,
            runs,
        )

        def jira_raw(i: int, marker: str) -> dict[str, Any]:
            body = jira_payload(i)
            body["fields"]["labels"] = [*body["fields"]["labels"], marker]
            return body

        await bench_platform(
            "jira (v2)",
            jira,
            f"{sandbox.url('jira')}/rest/api/2/issue",
            {
                "Accept": "application/json",
                "Authorization": basic(jira_sandbox.DEFAULT_USER, jira_sandbox.DEFAULT_TOKEN),
            },
            jira_raw,
            jira_payload,
            creates,
            runs,
        )
    finally:
        await sn.close()
        await jira.close()
        await sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main_async(args.creates, args.runs))


if __name__ == "__main__":
    main()
