"""The replica drill: two `itsm-gateway serve` processes on one PostgreSQL behind one faulty sandbox,
every request sent to both at once, one of them killed (SIGKILL) mid-way and the rest answered by the
other; then the same again with the survivor's clock five minutes ahead (faketime).

The sandbox, the faults and the workload are the crash drill's (scripts/drill_crash.py); the SLA
targets are seconds long, so tickets breach while the drill runs. Each half passes when every
request_id has one answer (the same from both gateways, and on every repeat), the sandbox holds
exactly one record per create and per dedup key and exactly the comments and resolves asked for,
nothing is left PENDING, and every SLA breach the database records was counted exactly once (one
log line, from one gateway). Exit status 1 otherwise.

    .venv/bin/python scripts/drill_replica.py                      # 500 creates, 100 in flight
    .venv/bin/python scripts/drill_replica.py --creates 40 --in-flight 20 --half skewed
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
    clock_ahead,
    keep_or_remove,
    plan,
    print_figures,
    replay,
    run_workload,
    verify,
    verify_breaches,
    workload_figures,
    write_config,
)


async def replica_drill(
    skewed: bool, creates: int = 500, in_flight: int = 100, seed: int = 12, kill_after: float = 0.3,
    web_share: float = 0.25, faults: Faults | None = None, timings: Timings | None = None,
    keep: bool = False, postgres_url: str | None = None,
) -> Verdict:
    """One half: `skewed` runs gateway b five minutes ahead; gateway a is the one killed."""
    faults, timings = faults or Faults(), timings or Timings()
    title = "replica drill" + (", b's clock 5 minutes ahead" if skewed else "")
    scratch = Path(tempfile.mkdtemp(prefix="drill-replica-"))
    verdict = Verdict()
    skew = clock_ahead("+5m") if skewed else {}
    if skew is None:
        verdict.fail("faketime is not installed (apt-get install faketime)")
        print_figures(title, verdict)
        return verdict
    run = uuid.uuid4().hex[:6]
    ops = plan(creates, seed, run, web_share)
    db = Database("postgres", scratch, postgres_url)
    sandbox = SandboxProcess(scratch, faults, seed)
    gateways: list[GatewayProcess] = []
    try:
        await sandbox.ready()
        config = scratch / "itsm_config.json"
        env = write_config(sandbox.urls, config, timings, faults, tiny_sla=True)
        await db.create(scratch)
        gateways = [
            GatewayProcess("a", config, db.url, scratch, env),
            GatewayProcess("b", config, db.url, scratch, {**env, **skew}),
        ]
        for gateway in gateways:
            gateway.start()
        await asyncio.gather(*(g.serving() for g in gateways))
        a, _ = gateways
        caller = Caller(gateways)
        progress = Progress(len(ops), threshold=max(1, int(kill_after * len(ops))))
        started = time.monotonic()
        kill = {}

        async def killer() -> None:
            await progress.milestone.wait()
            kill.update(
                gateway=a.name, answered=progress.answered, in_flight=progress.started - progress.answered,
                at_seconds=round(time.monotonic() - started, 1),
            )
            a.kill()

        def live() -> list[str]:
            return [g.name for g in gateways if not g.killed]

        killing = asyncio.ensure_future(killer())
        try:
            await run_workload(ops, caller, live, in_flight, progress, all_at_once=True)
        finally:
            if not killing.done():
                killing.cancel()
        elapsed = time.monotonic() - started
        verdict.figures.update(database="postgres", skewed=skewed, creates=creates, in_flight=in_flight)
        verdict.figures.update(workload_figures(ops))
        verdict.figures["answered_by_both"] = sum(len({g for g, *_ in op.answers}) == 2 for op in ops)
        verdict.figures["kill"] = kill or "never (the workload ended first)"
        if not kill:
            verdict.fail("no gateway was killed")
        verdict.figures["elapsed_seconds"] = round(elapsed, 1)
        verdict.figures["replays_with_another_answer"] = await replay(ops, caller, live(), in_flight)
        await caller.close()
        # Let the survivor's status sync take over the dead one's claims and record what breached.
        await asyncio.sleep(timings.sla_lease_seconds + 3 * timings.sla_sync_interval_seconds)
        await verify(ops, sandbox, db, verdict)
        await verify_breaches(db, [g.log for g in gateways], verdict, killed=bool(kill))
    finally:
        for gateway in gateways:
            gateway.stop()
        sandbox.stop()
        await db.drop()
    print_figures(title, verdict)
    keep_or_remove(scratch, keep or not verdict.passed)
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--half", choices=("plain", "skewed", "both"), default="both")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--kill-after", type=float, default=0.3, help="share of the answers before the kill")
    parser.add_argument("--web-share", type=float, default=0.25, help="share of the calls over the web port")
    parser.add_argument("--keep", action="store_true", help="keep the logs and config")
    args = parser.parse_args()
    halves = {"plain": (False,), "skewed": (True,), "both": (False, True)}[args.half]
    passed = True
    for skewed in halves:
        verdict = asyncio.run(replica_drill(
            skewed, args.creates, args.in_flight, args.seed, args.kill_after, args.web_share, keep=args.keep
        ))
        passed = passed and verdict.passed
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
