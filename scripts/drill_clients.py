"""The exactly-once drill: many creates per platform through a faulty sandbox, through the gateway's
own engine (its ledger on SQLite, its platform clients, its confirmation delays).

Injected: a share of 503/429 answers (Retry-After 1 s); creates stored and then answered by a cut
connection (drop after commit); creates answered 504 at once and stored seconds later (late commit);
and Jira search lagging new issues. Every create goes in once, under its own request_id, as a caller
would send it. The drill passes when every create succeeds and each platform ends up holding exactly
one record per create: no loss, no duplicate.

    .venv/bin/python scripts/drill_clients.py                # 1,000 creates per platform
    .venv/bin/python scripts/drill_clients.py --creates 200 --concurrency 50

tests/test_client_drills.py runs the same drill, smaller and with shorter lags and delays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

from sandbox import RunningSandbox, SandboxConfig, start_sandbox  # noqa: E402
from server.domain.errors import GatewayError  # noqa: E402
from server.runtime.app import Gateway, ServeOptions  # noqa: E402
from server.runtime.config import parse_config  # noqa: E402
from server.runtime.devmode import sandbox_config_overrides  # noqa: E402
from server.storage.migrate import migrate  # noqa: E402

CONFIG = ROOT / "config" / "itsm_config.json"


@dataclass(frozen=True)
class DrillFaults:
    error_rate: float = 0.30
    statuses: tuple[int, ...] = (503, 429)
    retry_after_seconds: int = 1
    drop_after_commit_rate: float = 0.05
    late_commit_rate: float = 0.05
    late_commit_ms: int = 3000
    search_lag_ms: int = 6000  # Jira only

    def json_for(self, platform: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error_rate": self.error_rate,
            "statuses": list(self.statuses),
            "retry_after_seconds": self.retry_after_seconds,
            "drop_after_commit_rate": self.drop_after_commit_rate,
            "late_commit_rate": self.late_commit_rate,
            "late_commit_ms": self.late_commit_ms,
        }
        if platform == "jira":
            body["search_lag_ms"] = self.search_lag_ms
        return body


@dataclass
class DrillResult:
    platform: str
    creates: int
    seconds: float = 0.0
    ticket_ids: list[str] = field(default_factory=list)
    external_ids: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    attempts: int = 0  # HTTP attempts the creates took, as the ledger recorded them
    look_ups: int = 0  # marker look-ups made after ambiguous failures (from the gateway's metrics)
    records: int = 0  # what the sandbox holds afterwards (after the last late commit could land)
    requests: int = 0
    faults_injected: int = 0

    @property
    def passed(self) -> bool:
        return not self.errors and self.records == self.creates == len(self.external_ids)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.platform}: {self.creates} creates in {self.seconds:.1f}s, "
            f"{len(self.errors)} errors, {self.records} records in the sandbox, "
            f"{len(self.external_ids)} distinct tickets; {self.requests} requests to the platform "
            f"({self.faults_injected} faults injected), {self.attempts} attempts recorded, "
            f"{self.look_ups} marker look-ups after ambiguous failures"
        )


async def _sandbox_call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as resp:
        resp.raise_for_status()
        return await resp.json() if resp.status != 204 else None


def drill_config(urls: dict[str, str], delays: dict[str, tuple[float, float]] | None) -> Any:
    """The shipped configuration on the sandbox; the confirmation delays are the platforms' defaults
    unless `delays` says otherwise (the tests shorten them, with the lags)."""
    raw = json.loads(CONFIG.read_text())
    raw["limits"]["shutdown_drain_seconds"] = 0
    raw["sla"]["enabled"] = False
    raw, env = sandbox_config_overrides(raw, urls)
    for platform, (direct, search) in (delays or {}).items():
        raw["platforms"][platform].update(
            confirmation_delay_seconds=direct, search_confirmation_delay_seconds=search
        )
    return parse_config(raw, env)


def _requests(platform: str, operation: str) -> float:
    """Outbound requests of one kind so far, from the gateway's own metrics."""
    name = "itsm_platform_request_duration_seconds_count"
    labels = {"platform": platform, "operation": operation}
    statuses = ("200", "201", "error", "429", "503", "502", "504")
    return sum(REGISTRY.get_sample_value(name, {**labels, "status": s}) or 0 for s in statuses)


async def drill_platform(
    gateway: Gateway, platform: str, base_url: str, creates: int, concurrency: int, faults: DrillFaults
) -> DrillResult:
    assert gateway.services is not None
    creation = gateway.services.creation
    result = DrillResult(platform, creates)
    gate = asyncio.Semaphore(concurrency)  # bounded: at most this many creates in flight
    run = uuid.uuid4().hex[:8]
    fields = {"summary": "Drill ticket", "description": "Created by the exactly-once drill."}

    async def one(i: int) -> None:
        async with gate:
            try:
                done = await creation.create(
                    platform=platform,
                    request_id=f"drill-{run}-{i}",
                    job_id="drill",
                    fields={**fields, "summary": f"Drill ticket {i}"},
                    caller="drill",
                    deadline=None,
                )
            except GatewayError as err:
                result.errors.append(f"#{i}: {type(err).__name__}: {err}")
                return
            result.ticket_ids.append(done.ticket.id)
            result.external_ids.add(done.ticket.external_id)
            result.attempts += done.ticket.attempts

    async with aiohttp.ClientSession() as control:
        await _sandbox_call(control, "POST", f"{base_url}/_sandbox/reset")
        await _sandbox_call(control, "PUT", f"{base_url}/_sandbox/faults", faults.json_for(platform))
        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(creates)))
        result.seconds = time.monotonic() - started
        # A late commit answered long ago may still be on its way: let it land before counting.
        await asyncio.sleep(faults.late_commit_ms / 1000 + 0.5)
        stats = await _sandbox_call(control, "GET", f"{base_url}/_sandbox/stats")
    result.look_ups = int(_requests(platform, "find"))
    result.records = stats["records"]
    result.requests = stats["requests"]
    result.faults_injected = stats["faults_injected"]
    return result


async def run_drill(
    creates: int = 1000,
    concurrency: int = 50,
    faults: DrillFaults | None = None,
    *,
    seed: int | None = 20240601,
    parallel: bool = False,
    delays: dict[str, tuple[float, float]] | None = None,
    database_url: str | None = None,
) -> list[DrillResult]:
    """Both platforms, on a fresh sandbox and a fresh SQLite ledger (or `database_url`)."""
    faults = faults or DrillFaults()
    sandbox: RunningSandbox = await start_sandbox(SandboxConfig.on_free_ports(seed=seed))
    with tempfile.TemporaryDirectory() as scratch:
        url = database_url or f"sqlite+aiosqlite:///{scratch}/drill.db"
        await migrate(url)
        options = ServeOptions(
            config=drill_config(sandbox.urls, delays),
            database_url=url,
            bind="127.0.0.1",
            grpc_port=0,
            metrics_port=None,
        )
        gateway = Gateway(options)
        try:
            await gateway.start()
            drills = [
                drill_platform(gateway, name, base, creates, concurrency, faults)
                for name, base in sandbox.urls.items()
            ]
            if parallel:
                return list(await asyncio.gather(*drills))
            return [await drill for drill in drills]
        finally:
            await gateway.stop()
            await sandbox.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--parallel", action="store_true", help="both platforms at once")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    faults = DrillFaults()
    print(f"faults: {faults}")
    started = time.monotonic()
    results = asyncio.run(
        run_drill(
            args.creates, args.concurrency, faults, seed=args.seed, parallel=args.parallel,
            database_url=args.database_url,
        )
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
