"""The soak drill: minutes of mixed traffic against `itsm-gateway serve` as a real process, on a
sandbox with faults on, watching the server's resident memory, itsm_background_tasks and
itsm_platform_connections.

Traffic (gRPC, and a share as Connect JSON on the web port): creates with and without dedup keys,
creates from templates, updates, comments, resolves, reopens, gets, lists, validations, renderings.
Faults: a share of 503/429 answers, latency, drops after commit, late commits, Jira search lag. The
reconciler and the status sync run every few seconds.

It passes when the median RSS of the last window of traffic is less than 10% above the median of the
first window after the warm-up (default: the minute after the first minute, against the last minute),
when after the traffic stops the background tasks come back to their baseline (the loops alone:
nothing left in final writes or notifications) and the platform connections stay bounded: no more
than the most open during the traffic, and under the pool's max_connections. (They need not drop to
the idle baseline: aiohttp reuses the oldest idle connection first, so background rounds every few
seconds keep the whole pool within its 15 s keep-alive; the summary says whether they did.) And when
no call came back UNKNOWN, INTERNAL, DATA_LOSS or UNIMPLEMENTED (nor an
HTTP 5xx other than a typed unavailable or deadline_exceeded), and when the server still answers
SERVING.

    .venv/bin/python scripts/drill_soak.py                      # 10 minutes
    .venv/bin/python scripts/drill_soak.py --minutes 3 --warmup-seconds 30 --window-seconds 30

Not run in CI (it takes minutes); tests/test_runtime_gauges.py covers the gauges themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import struct_pb2
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

from itsm.v1 import (  # noqa: E402
    common_pb2,
    template_service_pb2,
    template_service_pb2_grpc,
    ticket_service_pb2,
    ticket_service_pb2_grpc,
)
from sandbox import RunningSandbox, SandboxConfig, start_sandbox  # noqa: E402
from scripts.drill_fuzz import (  # noqa: E402
    WRITER_TOKEN,
    Served,
    gateway_config,
    health,
    prepare_database,
    rss_kib,
    start_serve,
    stop_serve,
    unhandled_lines,
    wait_serving,
)

FAULTS: dict[str, Any] = {
    "error_rate": 0.05,
    "statuses": [503, 429],
    "retry_after_seconds": 1,
    "latency_ms": 20,
    "drop_after_commit_rate": 0.01,
    "late_commit_rate": 0.01,
    "late_commit_ms": 2000,
}
JIRA_FAULTS: dict[str, Any] = {"search_lag_ms": 1500}
AUTH = (("authorization", f"Bearer {WRITER_TOKEN}"),)
BAD_GRPC = frozenset({"UNKNOWN", "INTERNAL", "DATA_LOSS", "UNIMPLEMENTED"})
FIELDS = {
    "jira": {"summary": "soak: disk full", "labels": "soak", "priority": "High"},
    "servicenow": {"summary": "soak: disk full", "urgency": "2", "impact": "3"},
}
PLATFORMS = {"jira": common_pb2.PLATFORM_JIRA, "servicenow": common_pb2.PLATFORM_SERVICENOW}
MIX = {
    "create": 16, "create_dedup": 10, "create_template": 5, "update": 10, "comment": 10, "resolve": 7,
    "reopen": 5, "get": 10, "list": 10, "validate": 8, "render": 5, "web_create": 2, "web_list": 2,
}  # fmt: skip


@dataclass
class Sample:
    at: float  # seconds since traffic started (negative: before)
    rss_kib: int
    tasks: dict[str, float]
    connections: dict[str, float]
    phase: str  # idle, traffic, cooldown


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # "operation code"
    bad: list[str] = field(default_factory=list)
    first_rss: float = 0.0
    last_rss: float = 0.0
    baseline_tasks: dict[str, float] = field(default_factory=dict)
    baseline_connections: dict[str, float] = field(default_factory=dict)
    end_tasks: dict[str, float] = field(default_factory=dict)
    end_connections: dict[str, float] = field(default_factory=dict)
    settled_after: float | None = None  # seconds after traffic stopped: the tasks back, connections bounded
    connections_idle_again: bool = False  # back to the idle baseline, too
    serving: bool = False
    log_errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def growth(self) -> float:
        return (self.last_rss - self.first_rss) / self.first_rss if self.first_rss else 0.0

    @property
    def passed(self) -> bool:
        return self.growth < 0.10 and self.settled_after is not None and not self.bad and self.serving

    def summary(self) -> str:
        traffic = [s for s in self.samples if s.phase == "traffic"]
        peak_tasks = (
            {k: max(s.tasks.get(k, 0) for s in traffic) for k in self.baseline_tasks} if traffic else {}
        )
        peak_conns = (
            {k: max(s.connections.get(k, 0) for s in traffic) for k in self.baseline_connections}
            if traffic
            else {}
        )
        total = sum(self.calls.values())
        codes: Counter[str] = Counter()
        for key, n in self.calls.items():
            codes[key.split(" ", 1)[1]] += n
        lines = [
            f"{total} calls in {self.elapsed:.0f} s of traffic ({total / max(self.elapsed, 1e-9):.0f}/s); "
            + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())),
            "per operation: "
            + "; ".join(
                f"{op} "
                + ",".join(
                    f"{k.split(' ', 1)[1]}={n}"
                    for k, n in sorted(self.calls.items())
                    if k.startswith(op + " ")
                )
                for op in MIX
            ),
            "samples (t s, phase, RSS MiB, background tasks, platform connections):",
        ]
        for s in self.samples:
            tasks = " ".join(f"{k}={v:g}" for k, v in sorted(s.tasks.items()))
            conns = " ".join(f"{k}={v:g}" for k, v in sorted(s.connections.items()))
            lines.append(f"  {s.at:7.1f} {s.phase:<8} {s.rss_kib / 1024:7.1f}  {tasks}  |  {conns}")
        lines += [
            f"RSS: first window median {self.first_rss / 1024:.1f} MiB, last window median "
            f"{self.last_rss / 1024:.1f} MiB, growth {self.growth * 100:+.1f}% (limit +10%)",
            f"background tasks: baseline {self.baseline_tasks}, peak {peak_tasks}, end {self.end_tasks}",
            f"platform connections: baseline {self.baseline_connections}, peak {peak_conns}, "
            f"end {self.end_connections}",
            (
                "connections back to the idle baseline too"
                if self.connections_idle_again
                else "connections kept open by the background rounds (bounded by the traffic's peak)"
            ),
            "background tasks back to baseline, connections bounded: "
            + (
                f"{self.settled_after:.0f} s after the traffic stopped"
                if self.settled_after is not None
                else "NEVER"
            ),
            f"health afterwards: {'SERVING' if self.serving else 'NOT SERVING'}",
            f"server faults: {len(self.bad)}" + "".join(f"\n  BAD {b[:300]}" for b in self.bad[:20]),
            f"server log: {len(self.log_errors)} ERROR/traceback lines (informational: faults are on)"
            + "".join(f"\n  LOG {line[:300]}" for line in self.log_errors[:5]),
            "PASS" if self.passed else "FAIL",
        ]
        return "\n".join(lines)


def gauges(text: str) -> tuple[dict[str, float], dict[str, float]]:
    tasks: dict[str, float] = {}
    connections: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "itsm_background_tasks":
                tasks[s.labels["kind"]] = tasks.get(s.labels["kind"], 0) + s.value
            elif s.name == "itsm_platform_connections":
                connections[s.labels["platform"]] = connections.get(s.labels["platform"], 0) + s.value
    return tasks, connections


class Traffic:
    def __init__(self, served: Served, seed: int, result: SoakResult) -> None:
        self.served = served
        self.rng = random.Random(seed)
        self.result = result
        self.ids: dict[str, list[str]] = {"jira": [], "servicenow": []}
        self.templates: dict[str, tuple[str, list[str]]] = {}
        self.web = f"http://127.0.0.1:{served.web_port}"

    def variables(self, template: str) -> struct_pb2.Struct:
        value: dict[str, Any] = {}
        for path in self.templates[template][1]:
            node = value
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = f"soak-{self.rng.randint(0, 99)}"  # no space: some end up in Jira labels
        out = struct_pb2.Struct()
        out.update(value)
        return out

    def ticket(self) -> str | None:
        platform = self.rng.choice(list(self.ids))
        pool = self.ids[platform]
        return self.rng.choice(pool) if pool else None

    def keep(self, platform: str, ticket_id: str) -> None:
        pool = self.ids[platform]
        pool.append(ticket_id)
        if len(pool) > 300:
            del pool[:100]

    async def one(self, tickets: Any, templates: Any, http: aiohttp.ClientSession) -> None:
        r = self.rng
        op = r.choices(list(MIX), weights=list(MIX.values()))[0]
        platform = r.choice(list(PLATFORMS))
        request_id = f"soak-{uuid.uuid4()}"
        try:
            if op in ("create", "create_dedup"):
                request = ticket_service_pb2.CreateTicketRequest(
                    platform=PLATFORMS[platform], request_id=request_id, fields=FIELDS[platform],
                    dedup_key=f"soak-{platform}-{r.randint(0, 30)}" if op == "create_dedup" else "",
                )  # fmt: skip
                reply = await tickets.CreateTicket(request, metadata=AUTH, timeout=60)
                self.keep(platform, reply.ticket.id)
            elif op == "create_template":
                name = r.choice(list(self.templates))
                reply = await tickets.CreateTicketFromTemplate(
                    ticket_service_pb2.CreateTicketFromTemplateRequest(
                        template_name=name, request_id=request_id, job_id=f"job-{r.randint(0, 9)}",
                        variables=self.variables(name),
                    ), metadata=AUTH, timeout=60,
                )  # fmt: skip
                self.keep(self.templates[name][0], reply.ticket.id)
            elif op in ("update", "comment", "resolve", "reopen", "get"):
                ticket_id = self.ticket()
                if ticket_id is None:
                    op = "get"
                    ticket_id = str(uuid.uuid4())
                if op == "update":
                    await tickets.UpdateTicket(ticket_service_pb2.UpdateTicketRequest(
                        id=ticket_id, request_id=request_id, fields={"description": f"soak {r.random()}"},
                    ), metadata=AUTH, timeout=60)  # fmt: skip
                elif op == "comment":
                    await tickets.AddComment(ticket_service_pb2.AddCommentRequest(
                        id=ticket_id, request_id=request_id, body="soak comment",
                    ), metadata=AUTH, timeout=60)  # fmt: skip
                elif op == "resolve":
                    await tickets.ResolveTicket(ticket_service_pb2.ResolveTicketRequest(
                        id=ticket_id, request_id=request_id, notes="soak resolve",
                    ), metadata=AUTH, timeout=60)  # fmt: skip
                elif op == "reopen":
                    await tickets.ReopenTicket(ticket_service_pb2.ReopenTicketRequest(
                        id=ticket_id, request_id=request_id, reason="soak reopen",
                    ), metadata=AUTH, timeout=60)  # fmt: skip
                else:
                    await tickets.GetTicket(
                        ticket_service_pb2.GetTicketRequest(id=ticket_id), metadata=AUTH, timeout=60
                    )
            elif op == "list":
                query = ticket_service_pb2.ListTicketsRequest(
                    page_size=r.choice((10, 50)), platform=PLATFORMS[platform], open_only=r.random() < 0.5,
                )  # fmt: skip
                reply = await tickets.ListTickets(query, metadata=AUTH, timeout=60)
                if reply.next_page_token:  # the next page: the same query, with the token
                    query.page_token = reply.next_page_token
                    await tickets.ListTickets(query, metadata=AUTH, timeout=60)
            elif op == "validate":
                await tickets.ValidateTicket(ticket_service_pb2.ValidateTicketRequest(
                    platform=PLATFORMS[platform], fields=FIELDS[platform],
                ), metadata=AUTH, timeout=60)  # fmt: skip
            elif op == "render":
                name = r.choice(list(self.templates))
                await templates.RenderTemplate(template_service_pb2.RenderTemplateRequest(
                    name=name, variables=self.variables(name),
                ), metadata=AUTH, timeout=60)  # fmt: skip
            else:
                await self.web_call(op, http, platform, request_id)
                return
        except grpc.aio.AioRpcError as exc:
            self.note(op, exc.code().name, exc.details() or "")
            return
        self.note(op, "OK", "")

    async def web_call(self, op: str, http: aiohttp.ClientSession, platform: str, request_id: str) -> None:
        if op == "web_create":
            path = "/itsm.v1.TicketService/CreateTicket"
            body: dict[str, Any] = {
                "platform": f"PLATFORM_{platform.upper()}",
                "requestId": request_id,
                "fields": FIELDS[platform],
            }
        else:
            path, body = "/itsm.v1.TicketService/ListTickets", {"pageSize": 20}
        headers = {"Authorization": f"Bearer {WRITER_TOKEN}"}
        async with http.post(self.web + path, json=body, headers=headers) as resp:
            data = await resp.read()
        if resp.status == 200:
            if op == "web_create":
                self.keep(platform, json.loads(data)["ticket"]["id"])
            self.note(op, "ok", "")
            return
        code = (
            str(json.loads(data).get("code", f"http_{resp.status}"))
            if data.startswith(b"{")
            else f"http_{resp.status}"
        )
        typed = code in ("unavailable", "deadline_exceeded")
        self.note(op, code, data[:200].decode(errors="replace"), bad=resp.status >= 500 and not typed)

    def note(self, op: str, code: str, details: str, bad: bool = False) -> None:
        self.result.calls[f"{op} {code}"] += 1
        if bad or code in BAD_GRPC or code in ("unknown", "internal", "data_loss", "unimplemented"):
            self.result.bad.append(f"{op} {code}: {details}")


async def sample(served: Served, http: aiohttp.ClientSession, at: float, phase: str) -> Sample:
    async with http.get(f"http://127.0.0.1:{served.metrics_port}/metrics") as resp:
        tasks, connections = gauges(await resp.text())
    return Sample(at, rss_kib(served.process.pid), tasks, connections, phase)


MAX_CONNECTIONS = 100  # the shipped config's (and the clients' default) pool size per platform


def settled(s: Sample, baseline: Sample, peak: dict[str, float]) -> bool:
    tasks_back = all(s.tasks.get(k, 0) <= v for k, v in baseline.tasks.items())
    bounded = all(
        v <= min(max(peak.get(k, 0), baseline.connections.get(k, 0)), MAX_CONNECTIONS)
        for k, v in s.connections.items()
    )
    return tasks_back and bounded


def idle_again(s: Sample, baseline: Sample) -> bool:
    return all(s.connections.get(k, 0) <= v for k, v in baseline.connections.items())


async def soak(served: Served, sandbox: RunningSandbox, args: argparse.Namespace, config: Path) -> SoakResult:
    result = SoakResult()
    traffic = Traffic(served, args.seed, result)
    raw = json.loads(await asyncio.to_thread(config.read_text))
    traffic.templates = {
        n: (t["platform"], list(t.get("required_variables", []))) for n, t in raw["templates"].items()
    }
    duration = args.minutes * 60
    async with (
        aiohttp.ClientSession() as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel,
    ):
        # Baseline: idle, after the first background rounds.
        baseline_samples = []
        for i in range(3):
            await asyncio.sleep(args.sample_seconds)
            baseline_samples.append(await sample(served, http, -args.sample_seconds * (3 - i), "idle"))
        result.samples += baseline_samples
        baseline = Sample(
            0, 0,
            {k: max(s.tasks.get(k, 0) for s in baseline_samples) for k in baseline_samples[-1].tasks},
            {k: max(s.connections.get(k, 0) for s in baseline_samples)
             for k in baseline_samples[-1].connections},
            "idle",
        )  # fmt: skip
        result.baseline_tasks, result.baseline_connections = baseline.tasks, baseline.connections
        for url in sandbox.urls.values():
            faults = {
                **FAULTS,
                **(JIRA_FAULTS if "jira" in sandbox.urls and url == sandbox.urls["jira"] else {}),
            }
            async with http.put(f"{url}/_sandbox/faults", json=faults) as resp:
                assert resp.status == 200, await resp.text()

        tickets = ticket_service_pb2_grpc.TicketServiceStub(channel)
        templates = template_service_pb2_grpc.TemplateServiceStub(channel)
        started = time.monotonic()
        stop_at = started + duration

        async def worker() -> None:
            while time.monotonic() < stop_at:
                await traffic.one(tickets, templates, http)
                if args.pause > 0:
                    await asyncio.sleep(traffic.rng.uniform(0, 2 * args.pause))

        workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        while time.monotonic() < stop_at:
            await asyncio.sleep(args.sample_seconds)
            s = await sample(served, http, time.monotonic() - started, "traffic")
            result.samples.append(s)
            if args.progress:
                print(
                    f"  {s.at:6.0f} s  RSS {s.rss_kib / 1024:.0f} MiB  tasks {s.tasks}  connections "
                    f"{s.connections}  calls {sum(result.calls.values())}  bad {len(result.bad)}",
                    flush=True,
                )
        await asyncio.gather(*workers)
        result.elapsed = time.monotonic() - started
        stopped = time.monotonic()
        for url in sandbox.urls.values():  # faults off: what is left to settle, settles
            async with http.put(f"{url}/_sandbox/faults", json={"error_rate": 0, "latency_ms": 0}) as resp:
                await resp.read()
        during = [x for x in result.samples if x.phase == "traffic"]
        peak = {k: max(x.connections.get(k, 0) for x in during) for k in baseline.connections}
        # The whole cooldown is sampled: the gauges must come back and stay back.
        while True:
            s = await sample(served, http, time.monotonic() - started, "cooldown")
            result.samples.append(s)
            if not settled(s, baseline, peak):
                result.settled_after = None
            elif result.settled_after is None:
                result.settled_after = time.monotonic() - stopped
            result.connections_idle_again = idle_again(s, baseline)
            if time.monotonic() - stopped > args.cooldown_seconds:
                break
            await asyncio.sleep(args.sample_seconds)
        result.end_tasks, result.end_connections = s.tasks, s.connections
        result.serving = await health(channel)
    window = [
        s.rss_kib
        for s in result.samples
        if s.phase == "traffic" and args.warmup_seconds <= s.at < args.warmup_seconds + args.window_seconds
    ]
    last = [
        s.rss_kib for s in result.samples if s.phase == "traffic" and s.at >= duration - args.window_seconds
    ]
    result.first_rss = statistics.median(window) if window else 0.0
    result.last_rss = statistics.median(last) if last else 0.0
    return result


async def run_soak(args: argparse.Namespace) -> SoakResult:
    with tempfile.TemporaryDirectory(prefix="itsm-soak-") as tmp:
        directory = Path(tmp)
        sandbox = await start_sandbox(SandboxConfig.on_free_ports(seed=args.seed))
        served = None
        try:
            url = await prepare_database(args.database_url, directory, "soak")

            def faster_rounds(raw: dict[str, Any]) -> None:
                raw["idempotency"]["reconcile_interval_seconds"] = 5
                raw["sla"]["sync_interval_seconds"] = 5

            config, env = gateway_config(sandbox.urls, directory, faster_rounds)
            served = start_serve(config, {**env, "ITSM_LOG_LEVEL": "WARNING"}, url, directory)
            await wait_serving(served)
            result = await soak(served, sandbox, args, config)
        finally:
            if served is not None:
                stop_serve(served)
            await sandbox.stop()
        result.log_errors = unhandled_lines(served.log_path.read_text(errors="replace"))
        return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of traffic (default 10)")
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--window-seconds", type=float, default=60.0, help="the RSS windows compared")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument(
        "--cooldown-seconds",
        type=float,
        default=60.0,
        help="how long the gauges are watched after the traffic (they must be back by the end)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pause", type=float, default=0.01, help="mean pause between a worker's calls (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("ITSM_TEST_DATABASE_URL"))
    parser.add_argument("--quiet", dest="progress", action="store_false")
    args = parser.parse_args()
    print(
        f"soak: {args.minutes:g} min of traffic, concurrency {args.concurrency}, faults {FAULTS}", flush=True
    )
    result = asyncio.run(run_soak(args))
    print(result.summary())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
