"""The crash drill: `itsm-gateway serve` killed with SIGKILL mid-way through a faulty workload,
restarted, and every request_id repeated until it has a final answer.

The sandbox runs as its own process with 20% 503/429/502/504, 5% drops after commit, 5% late commits
and Jira search lag. The workload: --creates creates (half ServiceNow, half Jira) with updates,
comments and resolves on the created tickets, plus a tenth as many dedup keys with four creates
each, --in-flight at a time, a share of them over the web port (Connect JSON). After --kill-after of
the answers the gateway is killed (SIGKILL) and started again on the same database.

It passes when every request_id has one answer (the same on every repeat), the sandbox holds exactly
one record per create and per dedup key, exactly the comments and resolves asked for, and the
database holds nothing PENDING. Exit status 1 otherwise.

    .venv/bin/python scripts/drill_crash.py --database both       # 500 creates, 100 in flight
    .venv/bin/python scripts/drill_crash.py --creates 60 --in-flight 20 --database sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "gen")) if p not in sys.path]

from scripts.drilling import (  # noqa: E402
    Caller,
    Database,
    Faults,
    GatewayProcess,
    Progress,
    SandboxProcess,
    Timings,
    Verdict,
    keep_or_remove,
    plan,
    print_figures,
    replay,
    run_workload,
    verify,
    workload_figures,
    write_config,
)


async def crash_drill(
    database: str, creates: int = 500, in_flight: int = 100, seed: int = 12, kill_after: float = 0.3,
    web_share: float = 0.25, faults: Faults | None = None, timings: Timings | None = None,
    keep: bool = False, postgres_url: str | None = None,
) -> Verdict:
    faults, timings = faults or Faults(), timings or Timings()
    scratch = Path(tempfile.mkdtemp(prefix=f"drill-crash-{database}-"))
    verdict = Verdict()
    run = uuid.uuid4().hex[:6]
    ops = plan(creates, seed, run, web_share)
    db = Database(database, scratch, postgres_url)
    sandbox = SandboxProcess(scratch, faults, seed)
    gateway: GatewayProcess | None = None
    try:
        await sandbox.ready()
        config = scratch / "itsm_config.json"
        env = write_config(sandbox.urls, config, timings, faults, tiny_sla=False)
        await db.create(scratch)
        gateway = GatewayProcess("a", config, db.url, scratch, env)
        gateway.start()
        await gateway.serving()
        caller = Caller([gateway])
        progress = Progress(len(ops), threshold=max(1, int(kill_after * len(ops))))
        started = time.monotonic()
        kill = {}

        async def killer() -> None:
            await progress.milestone.wait()
            kill["answered"] = progress.answered
            kill["in_flight"] = progress.started - progress.answered
            kill["at_seconds"] = round(time.monotonic() - started, 1)
            gateway.kill()
            gateway.start()
            await gateway.serving()
            kill["back_after_seconds"] = round(time.monotonic() - started - kill["at_seconds"], 1)

        killing = asyncio.ensure_future(killer())
        try:
            await run_workload(ops, caller, lambda: ["a"], in_flight, progress, all_at_once=False)
        finally:
            if not killing.done():
                killing.cancel()
        elapsed = time.monotonic() - started
        verdict.figures.update(database=database, creates=creates, in_flight=in_flight)
        verdict.figures.update(workload_figures(ops))
        verdict.figures["kill"] = kill or "never (the workload ended first)"
        if not kill:
            verdict.fail("the gateway was never killed")
        verdict.figures["elapsed_seconds"] = round(elapsed, 1)
        wrong = await replay(ops, caller, ["a"], in_flight)
        verdict.figures["replays_with_another_answer"] = wrong
        await caller.close()
        await verify(ops, sandbox, db, verdict)
    finally:
        if gateway is not None:
            gateway.stop()
        sandbox.stop()
        await db.drop()
    print_figures(f"crash drill on {database}", verdict)
    keep_or_remove(scratch, keep or not verdict.passed)
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--kill-after", type=float, default=0.3, help="share of the answers before the kill")
    parser.add_argument("--web-share", type=float, default=0.25, help="share of the calls over the web port")
    parser.add_argument("--keep", action="store_true", help="keep the logs and config")
    args = parser.parse_args()
    databases = ("sqlite", "postgres") if args.database == "both" else (args.database,)
    passed = True
    for database in databases:
        verdict = asyncio.run(crash_drill(
            database, args.creates, args.in_flight, args.seed, args.kill_after, args.web_share, keep=args.keep
        ))
        passed = passed and verdict.passed
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
