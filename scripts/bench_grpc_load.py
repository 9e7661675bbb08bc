"""Load generator for scripts/bench_grpc.py: N callers in flight on one or a few channels, one process.

Kinds ending in _web call the gateway's web port instead: Connect JSON over HTTP/1.1 (aiohttp, one
keep-alive connection per caller, as HTTP/1.1 carries one call at a time), the same requests as JSON.

    python scripts/bench_grpc_load.py '<json spec>'

Connects, checks one reply of the RPC under test (and for `replay` creates the ticket that every
call then repeats), prints {"ready": true}, waits for a line on stdin, then runs: warm-up, a
measured window, a drain of the calls still in flight. Prints one JSON line of results.

Requests are serialised once up front (CreateTicket: per call, for its unique request_id) and
replies are left as bytes, so the client spends as little CPU as possible per call on every kind,
echo included. The process measuring (`watch` in the spec) also samples, over the window, the CPU
of the server, the sandbox, PostgreSQL and the whole machine, and the server's RSS over the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "gen"))

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

from itsm.v1 import (  # noqa: E402
    common_pb2,
    template_service_pb2,
    ticket_service_pb2,
)

ECHO_METHOD = "/bench.Echo/Echo"
SERVICENOW_FIELDS = {
    "summary": "Disk full on db-01",
    "description": "The /var volume on db-01 reached 100% at 03:12 UTC.",
    "impact": "2",
    "urgency": "2",
    "category": "database",
    "assignment_group": "DBA",
}
OUTAGE_VARIABLES = {
    "service": {"name": "checkout"},
    "alert": {"host": "web-07", "summary": "HTTP 5xx rate above 20% for 5 minutes", "count": 3},
}
METHODS = {
    "echo": ECHO_METHOD,
    "validate": "/itsm.v1.TicketService/ValidateTicket",
    "render": "/itsm.v1.TemplateService/RenderTemplate",
    "create": "/itsm.v1.TicketService/CreateTicket",
    "floor": "/itsm.v1.TicketService/CreateTicket",
    "replay": "/itsm.v1.TicketService/CreateTicket",
    "validate_web": "/itsm.v1.TicketService/ValidateTicket",
    "create_web": "/itsm.v1.TicketService/CreateTicket",
}
JSON_HEADERS = {"Content-Type": "application/json"}
RSS_SAMPLE_SECONDS = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MAX_ERROR_SAMPLES = 5

Request = Callable[[int, int], bytes]  # (caller, call number) -> serialised request


def validate_request() -> bytes:
    return ticket_service_pb2.ValidateTicketRequest(
        platform=common_pb2.PLATFORM_SERVICENOW, fields=SERVICENOW_FIELDS
    ).SerializeToString()


def render_request() -> bytes:
    variables = struct_pb2.Struct()
    variables.update(OUTAGE_VARIABLES)
    return template_service_pb2.RenderTemplateRequest(
        name="servicenow_service_outage", variables=variables, job_id="job-42"
    ).SerializeToString()


def create_request(request_id: str) -> bytes:
    return ticket_service_pb2.CreateTicketRequest(
        platform=common_pb2.PLATFORM_SERVICENOW,
        request_id=request_id,
        job_id="bench",
        fields=SERVICENOW_FIELDS,
    ).SerializeToString()


def validate_json() -> bytes:
    return json.dumps({"platform": "PLATFORM_SERVICENOW", "fields": SERVICENOW_FIELDS}).encode()


def create_json(request_id: str) -> bytes:
    body = {"platform": "PLATFORM_SERVICENOW", "request_id": request_id, "job_id": "bench"}
    return json.dumps({**body, "fields": SERVICENOW_FIELDS}).encode()


def request_maker(kind: str, prefix: str) -> Request:
    if kind == "create_web":
        return lambda caller, n: create_json(f"{prefix}-{caller}-{n}")
    if kind == "validate_web":
        fixed_json = validate_json()
        return lambda caller, n: fixed_json
    if kind in ("create", "floor"):
        return lambda caller, n: create_request(f"{prefix}-{caller}-{n}")
    fixed = {
        "echo": validate_request,  # the same bytes on the wire as ValidateTicket
        "validate": validate_request,
        "render": render_request,
        "replay": lambda: create_request(f"{prefix}-replay"),
    }[kind]()
    return lambda caller, n: fixed


def check_reply(kind: str, reply: bytes) -> None:
    """The RPC under test really does its work: raises on a reply that is not the expected one."""
    if kind == "validate_web":
        ok = json.loads(reply).get("valid") is True
    elif kind == "create_web":
        ticket = json.loads(reply).get("ticket", {})
        ok = ticket.get("state") == "TICKET_STATE_CREATED" and bool(ticket.get("externalKey"))
    elif kind == "echo":
        ok = reply == validate_request()
    elif kind == "validate":
        ok = ticket_service_pb2.ValidateTicketResponse.FromString(reply).valid
    elif kind == "render":
        fields = template_service_pb2.RenderTemplateResponse.FromString(reply).fields
        ok = fields.get("configuration_item") == "web-07"
    else:
        ticket = ticket_service_pb2.CreateTicketResponse.FromString(reply).ticket
        ok = ticket.state == common_pb2.TICKET_STATE_CREATED and bool(ticket.external_key)
    if not ok:
        raise SystemExit(f"unexpected {kind} reply: {reply[:200]!r}")


# ------------------------------------------------------------------------------------ /proc probes


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _all_cpu_seconds() -> dict[int, float]:
    return {int(e): _proc_cpu_seconds(int(e)) for e in os.listdir("/proc") if e.isdigit()}


def _describe(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        command = " ".join(w.decode(errors="replace") for w in words if w)
        command = command or f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}: {command[:100]}"


def _is_ours(pid: int) -> bool:
    """This benchmark's processes (servers, load, orchestrator, py-spy) and PostgreSQL."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
            return True
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        # serve --workers processes name the benchmark's database (itsm_bench_<pid>) on theirs.
        return b"bench_grpc" in command or b"itsm_bench_" in command
    except OSError:
        return False


class Probe:
    """CPU seconds of the processes that matter, and of every other one, between two snapshots."""

    def __init__(self, watch: dict[str, Any]) -> None:
        self.watch = watch
        self._all: dict[int, float] = {}
        self._previous: dict[int, float] = {}

    def snapshot(self) -> dict[str, float]:
        # A value may be a list of pids (serve --workers: supervisor and workers), summed.
        shot = {
            name: sum(_proc_cpu_seconds(p) for p in (pid if isinstance(pid, list) else [pid]))
            for name, pid in self.watch.items()
        }
        shot["postgres"] = sum(_proc_cpu_seconds(pid) for pid in _postgres_pids())
        shot["client"] = time.process_time()
        busy, total = _machine_ticks()
        shot["machine_busy"], shot["machine_total"] = busy / CLOCK_TICKS, total / CLOCK_TICKS
        self._previous, self._all = self._all, _all_cpu_seconds()
        return shot

    def foreign(self, elapsed: float, top: int = 3) -> tuple[float, list[str]]:
        """CPU % (of one core) of processes not ours since the previous snapshot, and the top ones."""
        used = {
            pid: cpu - self._previous.get(pid, 0.0)
            for pid, cpu in self._all.items()
            if cpu - self._previous.get(pid, 0.0) > 0 and not _is_ours(pid)
        }
        ranked = sorted(used.items(), key=lambda item: -item[1])[:top]
        shown = [f"{cpu / elapsed * 100:.0f}% {_describe(pid)}" for pid, cpu in ranked]
        return sum(used.values()) / elapsed * 100, shown


# ------------------------------------------------------------------------------------ the run


class WebError(Exception):
    """A non-200 answer of the web port; args[0] is its Connect code (or the HTTP status)."""


def _web_call(session: aiohttp.ClientSession, url: str) -> Callable[..., Any]:
    # The signature of a grpc multicallable, so that one caller loop drives both.
    async def call(body: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        async with session.post(
            url, data=body, headers=JSON_HEADERS, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            reply = await response.read()
            if response.status != 200:
                try:
                    code = json.loads(reply)["code"].upper()
                except (ValueError, KeyError, TypeError):
                    code = f"HTTP_{response.status}"
                raise WebError(code, reply[:200].decode(errors="replace"))
            return reply

    return call


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.kind: str = spec["kind"]
        self.make = request_maker(self.kind, spec["id_prefix"])
        self.channels: list[grpc.aio.Channel] = []
        self.session: aiohttp.ClientSession | None = None
        if self.kind.endswith("_web"):
            # One connection per caller: an HTTP/1.1 connection carries one call at a time.
            connector = aiohttp.TCPConnector(limit=spec["concurrency"])
            self.session = aiohttp.ClientSession(connector=connector)
            url = spec["target"] + METHODS[self.kind]
            self.calls: list[Callable[..., Any]] = [_web_call(self.session, url)]
        else:
            self.channels = [
                grpc.aio.insecure_channel(spec["target"], options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(spec["channels"])
            ]
            self.calls = [ch.unary_unary(METHODS[self.kind]) for ch in self.channels]
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.rss_peak_kb = 0

    async def prepare(self) -> None:
        for channel in self.channels:
            await asyncio.wait_for(channel.channel_ready(), 10)
        reply = await self.calls[0](self.make(-1, 0), timeout=30)
        check_reply(self.kind, reply)

    async def _caller(self, index: int, window_start: float, end: float) -> None:
        call = self.calls[index % len(self.calls)]
        timeout = self.spec["timeout"]
        n = 0
        clock = time.perf_counter
        while clock() < end:
            request = self.make(index, n)
            n += 1
            started = clock()
            try:
                await call(request, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                self._error(exc.code().name, exc.details() or "")
                continue
            except WebError as exc:
                self._error(exc.args[0], exc.args[1])
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._error(type(exc).__name__, str(exc))
                continue
            finished = clock()
            if window_start <= finished <= end:
                self.latencies.append(finished - started)

    def _error(self, code: str, detail: str) -> None:
        self.errors[code] += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{code}: {detail[:200]}")

    async def _sample_rss(self, pid: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss_peak_kb = max(self.rss_peak_kb, _status_kb(pid, "VmRSS"))
            try:
                await asyncio.wait_for(stop.wait(), RSS_SAMPLE_SECONDS)
            except TimeoutError:
                pass

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        watch: dict[str, Any] = spec.get("watch") or {}
        # RSS of the one process serving (with workers: the first worker; pids list supervisor first).
        server = watch.get("server")
        rss_pid = server[1 if len(server) > 1 else 0] if isinstance(server, list) else server
        probe = Probe(watch)
        start = time.perf_counter()
        window_start = start + spec["warmup"]
        end = window_start + spec["duration"]
        stop_sampling = asyncio.Event()
        sampler = (
            asyncio.ensure_future(self._sample_rss(rss_pid, stop_sampling)) if watch else None
        )
        callers = [
            asyncio.ensure_future(self._caller(i, window_start, end)) for i in range(spec["concurrency"])
        ]
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        before = probe.snapshot()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        after = probe.snapshot()
        elapsed = time.perf_counter() - window_start
        done, pending = await asyncio.wait(callers, timeout=spec["timeout"] + 5)
        for task in pending:
            task.cancel()
        drain = time.perf_counter() - end
        stop_sampling.set()
        if sampler is not None:
            await sampler
        for task in done:
            task.result()  # a bug in the load generator is not a measurement
        cpu = {key: after[key] - before[key] for key in after}
        foreign_pct, foreign_top = probe.foreign(elapsed) if watch else (0.0, [])
        return {
            "kind": self.kind,
            "concurrency": spec["concurrency"],
            "completed": len(self.latencies),
            "elapsed": elapsed,
            "drain_seconds": drain,
            "stuck_callers": len(pending),
            "latencies_ms": [round(v * 1000, 4) for v in self.latencies],
            "errors": dict(self.errors),
            "error_samples": self.error_samples,
            "cpu_seconds": cpu,
            "foreign_cpu_pct": foreign_pct,
            "foreign_top": foreign_top,
            "server_rss_peak_kb": self.rss_peak_kb,
            "server_rss_end_kb": _status_kb(rss_pid, "VmRSS") if watch else 0,
            "server_hwm_kb": _status_kb(rss_pid, "VmHWM") if watch else 0,
        }

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        if self.session is not None:
            await self.session.close()


async def main(spec: dict[str, Any]) -> None:
    load = Load(spec)
    try:
        await load.prepare()
        print(json.dumps({"ready": True}), flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        result = await load.run()
        print(json.dumps(result), flush=True)
    finally:
        await load.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
