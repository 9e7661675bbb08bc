"""The clients' acceptance drill: many creates per platform through a faulty sandbox.

Injected: a share of 503/429 answers (Retry-After 1 s) and of creates stored and then answered by
a cut connection; Jira search lags new issues. The drill passes when every create succeeds and
each platform ends up holding exactly one record per create: no loss, no duplicate.

    .venv/bin/python scripts/drill_clients.py                # 1,000 creates per platform
    .venv/bin/python scripts/drill_clients.py --creates 200 --concurrency 50

tests/test_client_drills.py runs the same drill, smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clients.errors import PlatformError
from clients.jira import JiraClient, JiraSettings
from clients.platform import CreatedTicket, PlatformClient
from clients.servicenow import ServiceNowClient, ServiceNowSettings
from clients.settings import (
    Credentials,
    HttpSettings,
    RetryPolicy,
    TimeoutConfig,
)
from sandbox import RunningSandbox, start_sandbox
from sandbox import config as sandbox_config
from sandbox.jira import settings as jira_sandbox
from sandbox.servicenow import settings as servicenow_sandbox


@dataclass(frozen=True)
class DrillFaults:
    error_rate: float = 0.30
    statuses: tuple[int, ...] = (503, 429)
    retry_after_seconds: int = 1
    drop_after_commit_rate: float = 0.05
    search_lag_ms: int = 500  # Jira only

    def json_for(self, platform: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error_rate": self.error_rate,
            "statuses": list(self.statuses),
            "retry_after_seconds": self.retry_after_seconds,
            "drop_after_commit_rate": self.drop_after_commit_rate,
        }
        if platform == "jira":
            body["search_lag_ms"] = self.search_lag_ms
        return body


@dataclass
class DrillResult:
    platform: str
    creates: int
    seconds: float = 0.0
    tickets: list[CreatedTicket] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    records: int = 0  # what the sandbox holds afterwards
    requests: int = 0
    faults_injected: int = 0

    @property
    def adopted(self) -> int:
        return sum(t.adopted for t in self.tickets)

    @property
    def attempts(self) -> int:
        return sum(t.retry.attempts for t in self.tickets)

    @property
    def distinct_ids(self) -> int:
        return len({t.external_id for t in self.tickets})

    @property
    def passed(self) -> bool:
        return not self.errors and self.records == self.creates == self.distinct_ids

    def summary(self) -> str:
        return (
            f"{self.platform:<10} creates={self.creates} records={self.records} "
            f"errors={len(self.errors)} adopted={self.adopted} attempts={self.attempts} "
            f"requests={self.requests} faults={self.faults_injected} "
            f"time={self.seconds:.1f}s {'PASS' if self.passed else 'FAIL'}"
        )


def servicenow_client(url: str, retry: RetryPolicy, timeout: TimeoutConfig) -> ServiceNowClient:
    creds = Credentials(
        "basic", servicenow_sandbox.DEFAULT_USER, servicenow_sandbox.DEFAULT_PASSWORD
    )
    return ServiceNowClient(ServiceNowSettings(HttpSettings(url), creds), retry, timeout)


def jira_client(url: str, retry: RetryPolicy, timeout: TimeoutConfig, version: int) -> JiraClient:
    creds = Credentials("basic", jira_sandbox.DEFAULT_USER, jira_sandbox.DEFAULT_TOKEN)
    settings = JiraSettings(HttpSettings(url), creds, api_version=version)  # type: ignore[arg-type]
    return JiraClient(settings, retry, timeout)


def servicenow_payload(i: int) -> dict[str, Any]:
    return {"short_description": f"Drill incident {i}", "urgency": "2", "impact": "2"}


def jira_payload(i: int) -> dict[str, Any]:
    return {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Task"},
            "summary": f"Drill issue {i}",
            "description": f"Created by the client drill.\nNumber {i}.\n\nNo action needed.",
            "labels": ["drill"],
        }
    }


async def sandbox_call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as resp:
        resp.raise_for_status()
        return await resp.json() if resp.status != 204 else None


async def drill_platform(
    platform: str,
    client: PlatformClient,
    base_url: str,
    creates: int,
    concurrency: int,
    faults: DrillFaults,
) -> DrillResult:
    payload = servicenow_payload if platform == "servicenow" else jira_payload
    result = DrillResult(platform, creates)
    gate = asyncio.Semaphore(concurrency)  # bounded: at most this many creates in flight
    run = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        async with gate:
            try:
                result.tickets.append(await client.create(payload(i), f"drill-{run}-{i}"))
            except PlatformError as err:
                result.errors.append(str(err))

    async with aiohttp.ClientSession() as control:
        await sandbox_call(control, "POST", f"{base_url}/_sandbox/reset")
        await sandbox_call(control, "PUT", f"{base_url}/_sandbox/faults", faults.json_for(platform))
        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(creates)))
        result.seconds = time.monotonic() - started
        stats = await sandbox_call(control, "GET", f"{base_url}/_sandbox/stats")
        await sandbox_call(control, "POST", f"{base_url}/_sandbox/reset")
    result.records = stats["records"]
    result.requests = stats["requests"]
    result.faults_injected = stats["faults_injected"]
    return result


async def run_drill(
    creates: int = 1000,
    concurrency: int = 50,
    faults: DrillFaults | None = None,
    jira_version: int = 3,
    seed: int | None = 20240601,
    sandbox: RunningSandbox | None = None,
    parallel: bool = False,
) -> list[DrillResult]:
    """Both platforms, on `sandbox` or on a fresh one on free ports.

    parallel runs the two platforms at the same time (faster; each platform's time then includes
    sharing the event loop with the other).
    """
    faults = faults or DrillFaults()
    own = sandbox is None
    if sandbox is None:
        sandbox = await start_sandbox(sandbox_config.SandboxConfig.on_free_ports(seed=seed))
    retry, timeout = RetryPolicy(), TimeoutConfig()
    targets: list[tuple[str, str, PlatformClient]] = [
        ("servicenow", sandbox.url("servicenow"),
         servicenow_client(sandbox.url("servicenow"), retry, timeout)),
        ("jira", sandbox.url("jira"), jira_client(sandbox.url("jira"), retry, timeout, jira_version)),
    ]

    async def drill(platform: str, url: str, client: PlatformClient) -> DrillResult:
        return await drill_platform(platform, client, url, creates, concurrency, faults)

    try:
        if parallel:
            return list(await asyncio.gather(*(drill(*target) for target in targets)))
        return [await drill(*target) for target in targets]
    finally:
        for _, _, client in targets:
            await client.close()
        if own:
            await sandbox.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--jira-version", type=int, choices=(2, 3), default=3)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--parallel", action="store_true", help="both platforms at once")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(
        run_drill(args.creates, args.concurrency, None, args.jira_version, args.seed, parallel=args.parallel)
    )
    print(
        f"total {time.monotonic() - started:.1f}s (creates per platform {args.creates}, "
        f"concurrency {args.concurrency})"
    )
    for result in results:
        print(result.summary())
        for error in result.errors[:5]:
            print("   ", error)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
