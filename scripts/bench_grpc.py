"""gRPC throughput and latency of ValidateTicket, RenderTemplate and CreateTicket, against a bare echo;
and ValidateTicket and CreateTicket over the web port (Connect JSON), against the same RPC over gRPC.

    .venv/bin/python scripts/bench_grpc.py                 # full: 3 repetitions, 1/16/100/1000 in flight
    .venv/bin/python scripts/bench_grpc.py --quick         # smoke, under a minute: 1 rep, 1 s, 1 and 16
    .venv/bin/python scripts/bench_grpc.py --out results.json
    .venv/bin/python scripts/bench_grpc.py --workers 1 2        # the plan against 1, then 2 processes
    .venv/bin/python scripts/bench_grpc.py --profile create:100 validate:1000 --py-spy /path/to/py-spy

Processes, all on 127.0.0.1 (scripts/bench_grpc_servers.py, scripts/bench_grpc_load.py):
- the sandbox (ServiceNow + Jira), in its own process;
- the gateway: the real server.runtime.app.Gateway with the shipped config pointed at the sandbox, on a
  throwaway PostgreSQL database created, migrated and dropped here; no auth tokens;
- the floor (kind `floor`): CreateTicket at the least it can cost on this stack, the echo's server
  doing only a create's I/O (INSERT ... RETURNING on bare asyncpg, one aiohttp POST to the sandbox,
  UPDATE ... RETURNING; scripts/bench_grpc_servers.py): what the gateway's create costs beyond it
  is its validation, ledger, logs and metrics; what the floor costs beyond the echo, no create
  on grpc.aio + asyncpg + aiohttp can save;
- the echo: a second grpc.aio server, one event loop, the gateway's server options, no interceptors,
  returning the request bytes. In its own process, so it shares neither the gateway's event loop nor
  grpc.aio's process-wide poller and completion queue, and each is measured while the other idles;
- per measurement, load process(es): N callers in flight, one channel (its own TCP connection) per
  --callers-per-channel callers; at 100+ in flight the callers are split over --client-procs
  processes (2) so that one load process's event loop is never what limits the echo baseline.
The servers exit on end of stdin, so they never outlive this script; a database left by a run killed
with SIGKILL is dropped by the next run.

Each repetition runs, for each concurrency, echo then every RPC back to back, so noise hits all of
them alike; before each run it waits (within --quiet-budget) while other processes on the machine
use more than --quiet-threshold % of a core. Per row: medians over repetitions of throughput
(completions in the window / window) and of p50/p95/p99 latency; ratio = median throughput / median
echo throughput at that concurrency. CreateTicket creates ServiceNow incidents only (one platform
keeps runs comparable), each with a unique request_id, after a sandbox reset; `replay` repeats one
request_id (what a retrying caller hits: validate, fingerprint, reserve -> the stored ticket).

`validate_web` and `create_web` are the same requests as JSON over the gateway's web port (Connect
protocol, HTTP/1.1, one keep-alive connection per caller), through the same interceptors and servicers;
their "x gRPC" column is their throughput over the same RPC's over gRPC at that concurrency, same run.

Also per row: server CPU per call, the load generator's and the whole machine's CPU, and the CPU of
processes that are not this benchmark's: on a small shared machine the client, the sandbox,
PostgreSQL and the server compete for the same cores, and these tell which one was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "gen"))
sys.path.insert(0, str(ROOT / "scripts"))

import asyncpg  # noqa: E402
import grpc  # noqa: E402
from bench_grpc_load import Probe  # noqa: E402

from server.runtime.event_loop import loop_name  # noqa: E402
from server.storage.migrate import migrate  # noqa: E402

SERVERS = ROOT / "scripts" / "bench_grpc_servers.py"
FLOOR_TABLE = "bench_floor"  # bench_grpc_servers.FLOOR_TABLE
LOAD = ROOT / "scripts" / "bench_grpc_load.py"
KINDS = ("echo", "validate", "render", "create", "floor", "replay", "validate_web", "create_web")
LABELS = {
    "echo": "echo (baseline)",
    "validate": "ValidateTicket",
    "render": "RenderTemplate",
    "create": "CreateTicket",
    "floor": "create floor",
    "replay": "CreateTicket replay",
    "validate_web": "ValidateTicket web",
    "create_web": "CreateTicket web",
}
TARGETS = {"validate": 0.7, "create": 0.1}
# Web kinds: the same RPC over gRPC, and the least ratio to it aimed at.
OVER_GRPC = {"validate_web": "validate", "create_web": "create"}
TARGETS_VS_GRPC = {"validate_web": 0.6}
CREATES = ("create", "floor", "replay", "create_web")
STARTUP_SECONDS = 30.0
STOP_SECONDS = 5.0


class BenchError(Exception):
    """A reason the benchmark cannot go on, in one line."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise BenchError("time budget (--max-seconds) exhausted")


def _on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------ processes


def _read_line(proc: subprocess.Popen[str], timeout: float, what: str) -> dict[str, Any]:
    """The next JSON line the child prints, waiting at most timeout seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.poll()
        raise BenchError(f"{what}: no answer within {timeout:.0f} s (exit code {proc.returncode})")
    return json.loads(line)


@dataclass
class Fleet:
    """Every child process started, stopped in reverse order whatever happens."""

    log_dir: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[str]:
        log = (self.log_dir / f"{name}.log").open("a")
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()  # end of stdin: the servers' own clean stop
                proc.send_signal(signal.SIGTERM)
                proc.wait(STOP_SECONDS)
            except (subprocess.TimeoutExpired, OSError):
                # Its whole session: `serve --workers` runs a supervisor and workers under it.
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@dataclass(frozen=True)
class Servers:
    gateway_port: int
    gateway_web_port: int
    gateway_pid: int
    gateway_pids: tuple[int, ...]  # with --workers N > 1: the supervisor, then every worker
    echo_port: int
    echo_pid: int
    floor_port: int
    floor_pid: int
    sandbox_pid: int
    sandbox_urls: dict[str, str]


def start_servers(fleet: Fleet, database_url: str, workers: int = 1) -> Servers:
    """workers 1: the gateway in-process (server.runtime.app.Gateway); more: `serve --workers N`."""
    sandbox = fleet.spawn("sandbox", [str(SERVERS), "sandbox"])
    sb = _read_line(sandbox, STARTUP_SECONDS, "sandbox start")
    role = ["gateway"] if workers == 1 else ["gateway-workers", "--workers", str(workers)]
    gateway = fleet.spawn(
        "gateway",
        [
            str(SERVERS), *role,
            "--sandbox-urls", sb["urls"],
            "--database-url", database_url,
        ],
    )  # fmt: skip
    try:
        gw = _read_line(gateway, STARTUP_SECONDS, "gateway start")
    except BenchError as exc:
        raise BenchError(f"{exc}\n{fleet.log_tail('gateway')}") from None
    echo = fleet.spawn("echo", [str(SERVERS), "echo"])
    ec = _read_line(echo, STARTUP_SECONDS, "echo start")
    floor = fleet.spawn(
        "floor", [str(SERVERS), "floor", "--sandbox-urls", sb["urls"], "--database-url", database_url]
    )
    fl = _read_line(floor, STARTUP_SECONDS, "floor start")
    pids = tuple(json.loads(gw["pids"])) if "pids" in gw else (gw["pid"],)
    return Servers(
        gw["port"], gw["web_port"], gw["pid"], pids, ec["port"], ec["pid"], fl["port"], fl["pid"],
        sb["pid"], json.loads(sb["urls"]),
    )  # fmt: skip


def reset_sandbox(servers: Servers) -> None:
    for base in servers.sandbox_urls.values():
        request = urllib.request.Request(base + "/_sandbox/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 204:
                raise BenchError(f"sandbox reset at {base}: HTTP {response.status}")


# ------------------------------------------------------------------------------------ database


async def _admin(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _orphaned(name: str) -> bool:
    """itsm_bench_<pid> whose process is gone: left by a run killed with SIGKILL."""
    pid = name.removeprefix("itsm_bench_")
    return name.startswith("itsm_bench_") and pid.isdigit() and not Path(f"/proc/{pid}").exists()


async def _drop_orphans(admin_url: str) -> list[str]:
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        rows = await connection.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'itsm_bench_%'")
        orphans = [row[0] for row in rows if _orphaned(row[0])]
        for name in orphans:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return orphans
    finally:
        await connection.close()


def create_database(admin_url: str, name: str) -> str:
    dropped = asyncio.run(_drop_orphans(admin_url))
    if dropped:
        print(f"dropped databases left by killed runs: {', '.join(dropped)}")
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    asyncio.run(migrate(url))
    return url


def truncate_tickets(admin_url: str, name: str) -> None:
    """Forget the tickets a CreateTicket run made: the gateway's background SLA sync polls every
    open ticket, so a backlog left by one run would load the runs after it. Their operations go
    too: a later run (another --workers count) reuses the same request_ids."""
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_admin(url, f"TRUNCATE tickets, operations, {FLOOR_TABLE}"))  # the floor made its table


def drop_database(admin_url: str, name: str) -> None:
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ------------------------------------------------------------------------------------ measuring


@dataclass(frozen=True)
class Plan:
    reps: int
    concurrencies: tuple[int, ...]
    kinds: tuple[str, ...]
    warmup: float
    duration: float
    timeout: float
    callers_per_channel: int
    client_procs: int


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def measure(
    fleet: Fleet, servers: Servers, plan: Plan, kind: str, concurrency: int, tag: str
) -> dict[str, Any]:
    """One measurement: spawn the load process(es), start them together, merge their results."""
    own = {"echo": (servers.echo_port, servers.echo_pid), "floor": (servers.floor_port, servers.floor_pid)}
    port, pid = own.get(kind, (servers.gateway_port, servers.gateway_pid))
    target = f"127.0.0.1:{port}"
    if kind in OVER_GRPC:
        target = f"http://127.0.0.1:{servers.gateway_web_port}"
    server_pid: int | list[int] = pid
    if kind not in own and len(servers.gateway_pids) > 1:
        server_pid = list(servers.gateway_pids)  # CPU of the supervisor and every worker
    procs_wanted = plan.client_procs if concurrency >= 100 else 1
    clients = []
    for index, callers in enumerate(_split(concurrency, procs_wanted)):
        spec = {
            "target": target,
            "kind": kind,
            "concurrency": callers,
            "channels": max(1, math.ceil(callers / plan.callers_per_channel)),
            "warmup": plan.warmup,
            "duration": plan.duration,
            "timeout": plan.timeout,
            "id_prefix": f"{tag}-p{index}",
            "watch": {"server": server_pid, "sandbox": servers.sandbox_pid} if index == 0 else None,
        }
        clients.append(fleet.spawn(f"load-{kind}", [str(LOAD), json.dumps(spec)]))
    try:
        for proc in clients:
            _read_line(proc, STARTUP_SECONDS, f"{kind} load start")
        for proc in clients:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        budget = plan.warmup + plan.duration + plan.timeout + 30
        results = [_read_line(proc, budget, f"{kind} load run") for proc in clients]
    except BenchError as exc:
        raise BenchError(f"{exc}\n{fleet.log_tail(f'load-{kind}')}") from None
    finally:
        for proc in clients:
            fleet.stop(proc)
    return _merge(results, len(clients))


def _merge(results: list[dict[str, Any]], procs: int) -> dict[str, Any]:
    first = results[0]
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result["errors"])
    cpu = dict(first["cpu_seconds"])
    cpu["client"] = sum(r["cpu_seconds"]["client"] for r in results)
    return {
        **first,
        "completed": sum(r["completed"] for r in results),
        "elapsed": max(r["elapsed"] for r in results),
        "latencies_ms": [v for r in results for v in r["latencies_ms"]],
        "errors": dict(errors),
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
        "stuck_callers": sum(r["stuck_callers"] for r in results),
        "client_procs": procs,
        "cpu_seconds": cpu,
    }


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """One run's numbers, without the per-call latencies."""
    ordered = sorted(raw["latencies_ms"])
    cpu = raw["cpu_seconds"]
    elapsed = raw["elapsed"]
    completed = raw["completed"]
    return {
        "kind": raw["kind"],
        "concurrency": raw["concurrency"] if raw["client_procs"] == 1 else None,
        "completed": completed,
        "throughput": completed / elapsed,
        "p50_ms": _percentile(ordered, 50),
        "p95_ms": _percentile(ordered, 95),
        "p99_ms": _percentile(ordered, 99),
        "errors": raw["errors"],
        "error_samples": raw["error_samples"],
        "stuck_callers": raw["stuck_callers"],
        "drain_seconds": raw["drain_seconds"],
        "client_procs": raw["client_procs"],
        "server_cpu_us_per_call": cpu["server"] / completed * 1e6 if completed else float("nan"),
        "server_cpu_pct": cpu["server"] / elapsed * 100,
        "sandbox_cpu_pct": cpu["sandbox"] / elapsed * 100,
        "postgres_cpu_pct": cpu["postgres"] / elapsed * 100,
        "client_cpu_pct": cpu["client"] / elapsed * 100,
        "machine_busy_pct": cpu["machine_busy"] / cpu["machine_total"] * 100 if cpu["machine_total"] else 0,
        # CPU of processes not this benchmark's (another job on a shared machine), % of one core.
        "other_cpu_pct": raw["foreign_cpu_pct"],
        "other_top": raw["foreign_top"],
        "sandbox_cpu_us_per_call": cpu["sandbox"] / completed * 1e6 if completed else float("nan"),
        "postgres_cpu_us_per_call": cpu["postgres"] / completed * 1e6 if completed else float("nan"),
        "server_rss_peak_mb": raw["server_rss_peak_kb"] / 1024,
        "server_rss_end_mb": raw["server_rss_end_kb"] / 1024,
        "server_hwm_mb": raw["server_hwm_kb"] / 1024,
    }


@dataclass
class Quiet:
    """Waits, before each run, until other jobs on the machine leave it (within a total budget)."""

    threshold_pct: float  # CPU of processes not ours, % of one core
    budget_seconds: float
    waited: float = 0.0

    def wait(self) -> None:
        probe = Probe({})
        while self.budget_seconds - self.waited > 0:
            probe.snapshot()
            time.sleep(0.5)
            probe.snapshot()
            busy, top = probe.foreign(0.5, top=1)
            if busy < self.threshold_pct:
                return
            if self.waited == 0 or int(self.waited) % 10 == 0:
                print(f"    waiting for the machine: others use {busy:.0f}% ({', '.join(top)})", flush=True)
            time.sleep(0.5)
            self.waited += 1.0


def run_plan(
    fleet: Fleet, servers: Servers, plan: Plan, quiet: Quiet, deadline: float, reset: Callable[[], None]
) -> list[dict[str, Any]]:
    runs = []
    for rep in range(1, plan.reps + 1):
        for concurrency in plan.concurrencies:
            for kind in plan.kinds:
                if time.monotonic() > deadline:
                    raise BenchError("time budget (--max-seconds) exhausted")
                quiet.wait()
                tag = f"bench-{os.getpid()}-r{rep}-c{concurrency}-{kind}"
                run = summarise(measure(fleet, servers, plan, kind, concurrency, tag))
                if kind in CREATES:
                    reset()
                run.update(rep=rep, concurrency=concurrency)
                runs.append(run)
                _progress(run)
    return runs


def _progress(run: dict[str, Any]) -> None:
    errors = sum(run["errors"].values())
    print(
        f"  rep {run['rep']} c={run['concurrency']:<5} {LABELS[run['kind']]:<20} "
        f"{run['throughput']:8.0f}/s  p50 {run['p50_ms']:8.2f}  p99 {run['p99_ms']:8.2f} ms  "
        f"srv {run['server_cpu_pct']:3.0f}%  cli {run['client_cpu_pct']:3.0f}%  "
        f"box {run['machine_busy_pct']:3.0f}%  other {run['other_cpu_pct']:3.0f}%  errors {errors}",
        flush=True,
    )
    if run["other_cpu_pct"] >= 25 and run["other_top"]:
        print(f"      (other load: {run['other_top'][0]})", flush=True)


# ------------------------------------------------------------------------------------ reporting


def aggregate(runs: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    rows = []
    for concurrency in plan.concurrencies:
        grpc_tp = {
            kind: statistics.median(r["throughput"] for r in found)
            for kind in OVER_GRPC.values()
            if (found := [r for r in runs if r["concurrency"] == concurrency and r["kind"] == kind])
        }
        echo = [r for r in runs if r["concurrency"] == concurrency and r["kind"] == "echo"]
        echo_by_rep = {r["rep"]: r["throughput"] for r in echo}
        echo_tp = statistics.median(r["throughput"] for r in echo) if echo else float("nan")
        echo_cpu = statistics.median(r["server_cpu_us_per_call"] for r in echo) if echo else float("nan")
        for kind in plan.kinds:
            mine = [r for r in runs if r["concurrency"] == concurrency and r["kind"] == kind]
            if not mine:
                continue
            errors: Counter[str] = Counter()
            for r in mine:
                errors.update(r["errors"])
            med = {
                key: statistics.median(r[key] for r in mine)
                for key in (
                    "throughput", "p50_ms", "p95_ms", "p99_ms", "server_cpu_us_per_call",
                    "server_cpu_pct", "sandbox_cpu_pct", "postgres_cpu_pct", "client_cpu_pct",
                    "machine_busy_pct", "other_cpu_pct", "sandbox_cpu_us_per_call",
                    "postgres_cpu_us_per_call",
                )
            }  # fmt: skip
            target = TARGETS.get(kind)
            ratio = med["throughput"] / echo_tp if echo_tp else float("nan")
            over_grpc = grpc_tp.get(OVER_GRPC.get(kind, ""))
            target_grpc = TARGETS_VS_GRPC.get(kind)
            ratio_grpc = med["throughput"] / over_grpc if over_grpc else float("nan")
            # Each repetition's ratio to the echo run just before it: noise that lasts a few
            # seconds (another job on the machine) hits both sides of the pair.
            paired = [r["throughput"] / echo_by_rep[r["rep"]] for r in mine if echo_by_rep.get(r["rep"])]
            rows.append(
                {
                    "concurrency": concurrency,
                    "kind": kind,
                    "rpc": LABELS[kind],
                    "repetitions": len(mine),
                    **med,
                    "ratio_to_echo": ratio,
                    "paired_ratio_median": statistics.median(paired) if paired else float("nan"),
                    "echo_cpu_over_rpc_cpu": echo_cpu / med["server_cpu_us_per_call"],
                    "target_ratio": target,
                    "meets_target": None if target is None else ratio >= target,
                    "ratio_to_grpc": ratio_grpc,
                    "target_ratio_to_grpc": target_grpc,
                    "meets_target_to_grpc": None if target_grpc is None else ratio_grpc >= target_grpc,
                    "errors": dict(errors),
                    "server_rss_peak_mb": max(r["server_rss_peak_mb"] for r in mine),
                    "throughputs": [r["throughput"] for r in mine],
                }
            )
    return rows


LEGEND = """\
calls/s: median over repetitions of completions in the window / window. x echo: that / median echo
calls/s at the same concurrency (the target's definition); paired: median of per-repetition ratios
to the echo run just before. x gRPC (web rows): calls/s over the same RPC's over gRPC, same
concurrency, same run; its target is the web row's.
p50/p95/p99: medians over repetitions. srv us/call: gateway (or echo)
process CPU per call; cpu x: echo's / this row's (what the ratio would be if CPU were the only
limit). srv%/cli%: server and load-generator CPU, % of one core; box%: whole machine, % of all
cores; oth%: processes not this benchmark's, % of one core (medians). RSS MB: peak RSS of the
measured server (the echo's on echo rows), sampled every 0.1 s, highest over repetitions."""


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'in flight':>9} {'RPC':<20} {'calls/s':>8} {'x echo':>7} {'paired':>6} {'x gRPC':>6} "
        f"{'target':>7} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'srv us/call':>11} {'cpu x':>6} {'srv%':>5} {'cli%':>5} "
        f"{'box%':>5} {'oth%':>5} {'RSS MB':>7}  errors"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        target = "" if row["target_ratio"] is None else (
            f"{'ok' if row['meets_target'] else 'MISS'} {row['target_ratio']:.1f}"
        )
        if row["target_ratio_to_grpc"] is not None:
            target = f"{'ok' if row['meets_target_to_grpc'] else 'MISS'} {row['target_ratio_to_grpc']:.1f}"
        over_grpc = "" if math.isnan(row["ratio_to_grpc"]) else f"{row['ratio_to_grpc']:.2f}"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(row["errors"].items())) or "0"
        print(
            f"{row['concurrency']:>9} {row['rpc']:<20} {row['throughput']:>8.0f} "
            f"{row['ratio_to_echo']:>7.2f} {row['paired_ratio_median']:>6.2f} {over_grpc:>6} {target:>7} "
            f"{row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {row['server_cpu_us_per_call']:>11.0f} "
            f"{row['echo_cpu_over_rpc_cpu']:>6.2f} {row['server_cpu_pct']:>5.0f} "
            f"{row['client_cpu_pct']:>5.0f} {row['machine_busy_pct']:>5.0f} {row['other_cpu_pct']:>5.0f} "
            f"{row['server_rss_peak_mb']:>7.1f}"
            f"  {errors}"
        )


# ------------------------------------------------------------------------------------ profiling


def profile(
    fleet: Fleet,
    servers: Servers,
    plan: Plan,
    entry: str,
    py_spy: str,
    out_dir: Path,
    reset: Callable[[], None],
) -> None:
    """One more measurement of kind:concurrency with py-spy sampling the gateway over the window."""
    kind, _, concurrency = entry.partition(":")
    if kind not in KINDS or not concurrency.isdigit():
        raise BenchError(f"--profile {entry!r}: use KIND:CONCURRENCY, KIND one of {', '.join(KINDS)}")
    own = {"echo": servers.echo_pid, "floor": servers.floor_pid}
    pid = own.get(kind, servers.gateway_pids[-1])  # with workers: one of them
    raw_file = out_dir / f"profile-{kind}-{concurrency}.txt"
    sampler = subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--format", "raw",
         "--duration", str(max(1, round(plan.warmup + plan.duration))), "--output", str(raw_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run = summarise(measure(fleet, servers, plan, kind, int(concurrency), f"prof-{os.getpid()}-{kind}"))
        sampler.wait(plan.warmup + plan.duration + 30)
    finally:
        if sampler.poll() is None:
            sampler.kill()
            sampler.wait()
        if kind in CREATES:
            reset()
    print(f"\nprofile {LABELS[kind]} at {concurrency} in flight under py-spy: "
          f"{run['throughput']:.0f} calls/s, server {run['server_cpu_us_per_call']:.0f} us CPU/call "
          f"(stacks: {raw_file})")
    print_profile(raw_file)


# (marker in a frame, component) from the leaf up: the first match names where a sample was spent.
COMPONENTS = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("aiohttp/", "aiohttp (client to the sandbox)"),
    ("prometheus_client/", "prometheus_client"),
    ("grpc/", "grpc (Python)"),
    ("protobuf/", "protobuf"),
    ("logging/", "logging"),
    ("json/", "json"),
    ("server/", "server/ (own code)"),
    ("clients/", "clients/ (own code)"),
    ("Thread.run", "other threads (grpc poller, executor)"),
    ("Handle._run", "event-loop callbacks in C (grpc.aio core, transports)"),
    ("selector_events.py", "asyncio transports (socket send/recv)"),
    ("selectors.py", "asyncio (epoll)"),
    ("asyncio/", "asyncio (loop)"),
)


def _component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for marker, name in COMPONENTS:
            if marker in frame:
                return name
    return "other"


def print_profile(raw_file: Path, top: int = 20) -> None:
    """Sample shares by component, by own (leaf) frame, and inclusive for the project's code."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        components[_component(frames)] += count
        for frame in set(frames):
            if "server/" in frame or "clients/" in frame:
                inclusive[frame] += count
    if not total:
        print("  (no samples)")
        return
    for title, counter in (
        ("component (innermost recognised frame)", components),
        ("own time", own),
        ("inclusive time, server/ and clients/ functions", inclusive),
    ):
        print(f"  top {top} by {title} ({total} samples):")
        for frame, count in counter.most_common(top):
            print(f"    {count / total * 100:5.1f}%  {frame[:150]}")


# ------------------------------------------------------------------------------------ main


def build_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(1, (1, 16), args.kinds, 0.5, 1.0, args.timeout, args.callers_per_channel, 1)
    return Plan(
        args.reps,
        tuple(args.concurrency),
        args.kinds,
        args.warmup,
        args.duration,
        args.timeout,
        args.callers_per_channel,
        args.client_procs,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, 0.5+1 s, 1 and 16 in flight")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (medians over them)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 100, 1000])
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=KINDS, help="echo is the baseline: keep it"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    parser.add_argument("--callers-per-channel", type=int, default=100)
    parser.add_argument(
        "--client-procs", type=int, default=2, help="load processes at 100+ in flight (callers split)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="gateway processes, one whole plan each: 1 is the in-process Gateway, N > 1 is "
        "`serve --workers N` (server CPU: the supervisor's and every worker's)",
    )
    parser.add_argument("--out", type=Path, help="write JSON results here")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("ITSM_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL URL allowed to CREATE/DROP DATABASE (env ITSM_BENCH_ADMIN_URL)",
    )
    parser.add_argument("--profile", nargs="*", default=[], metavar="KIND:N", help="py-spy these after")
    parser.add_argument("--py-spy", default="py-spy", help="py-spy executable for --profile")
    parser.add_argument("--max-seconds", type=int, default=590, help="hard stop for the whole run")
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=25.0,
        help="before each run, wait while other processes use more than this %% of one core",
    )
    parser.add_argument(
        "--quiet-budget", type=float, default=90.0, help="total seconds the whole run may wait so"
    )
    args = parser.parse_args(argv)
    args.kinds = tuple(k for k in KINDS if k in args.kinds)
    return args


def _environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "event_loop": loop_name(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = build_plan(args)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.alarm(args.max_seconds)
    deadline = time.monotonic() + args.max_seconds - 30
    name = f"itsm_bench_{os.getpid()}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="itsm-bench-") as tmp:
        fleet = Fleet(Path(tmp))
        created = False
        try:
            database_url = create_database(args.admin_url, name)
            created = True
            quiet = Quiet(args.quiet_threshold, 10.0 if args.quick else args.quiet_budget)
            results = []
            for workers in args.workers:
                results.append(
                    _measure_with(fleet, database_url, workers, args, plan, quiet, deadline, name, started)
                )
                fleet.stop_all()
            if args.out:
                by_workers = [{"workers": w, **r} for w, r in zip(args.workers, results, strict=True)]
                single = by_workers[0] if len(by_workers) == 1 else {}
                args.out.write_text(json.dumps(
                    {"environment": _environment(), "plan": plan.__dict__, **single,
                     "by_workers": by_workers, "waited_for_quiet_seconds": quiet.waited},
                    indent=1, default=str))  # fmt: skip
                print(f"results written to {args.out}")
        except BenchError as exc:
            print(f"bench_grpc: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench_grpc: interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            signal.alarm(0)
            fleet.stop_all()
            if created:
                drop_database(args.admin_url, name)
    return 0


def _measure_with(
    fleet: Fleet,
    database_url: str,
    workers: int,
    args: argparse.Namespace,
    plan: Plan,
    quiet: Quiet,
    deadline: float,
    name: str,
    started: float,
) -> dict[str, Any]:
    """The whole plan against a gateway of `workers` processes (and a fresh echo and sandbox)."""
    servers = start_servers(fleet, database_url, workers)
    pids = servers.gateway_pids
    shape = "in-process Gateway" if workers == 1 else f"serve --workers {workers}, pids {pids}"
    print(f"\n=== gateway: {shape}; event loop (gateway and echo): {loop_name()}; "
          f"gateway pid {servers.gateway_pid}, echo pid {servers.echo_pid}, "
          f"floor pid {servers.floor_pid}, sandbox pid "
          f"{servers.sandbox_pid}, database {name}; {plan.reps} rep(s) x {plan.concurrencies} "
          f"in flight x {plan.kinds}, {plan.warmup}+{plan.duration} s each", flush=True)

    def reset() -> None:
        reset_sandbox(servers)
        truncate_tickets(args.admin_url, name)

    reset()
    runs = run_plan(fleet, servers, plan, quiet, deadline, reset)
    rows = aggregate(runs, plan)
    print(f"\n{workers} worker(s):")
    print_table(rows)
    print(LEGEND)
    hwm = _gateway_hwm_mb(servers.gateway_pids[-1])
    print(f"\ngateway peak RSS over the whole run (VmHWM{', last worker' if workers > 1 else ''}): "
          f"{hwm:.1f} MB; total {time.monotonic() - started:.0f} s, of which {quiet.waited:.0f} s "
          f"waiting for other jobs to leave the machine")
    for entry in args.profile:
        out_dir = args.out.parent if args.out else Path(".")
        profile(fleet, servers, plan, entry, args.py_spy, out_dir, reset)
    return {"rows": rows, "runs": runs, "gateway_peak_rss_mb": hwm}


def _gateway_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
