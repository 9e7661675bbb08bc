"""What the crash and replica drills share: the sandbox as its own process, gateways as real
`itsm-gateway serve` processes, the drill configuration, the workload (creates, creates sharing dedup
keys, updates, comments, resolves), callers that repeat every request_id until it has a final answer
(over gRPC, or a share of them over the web port's Connect JSON), and the verdict, counted in the
sandbox through its HTTP API and in the gateway's database.

scripts/drill_crash.py and scripts/drill_replica.py are the two drills; tests/test_drills.py runs both
at a reduced size.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "gen"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc  # noqa: E402
from sandbox.jira import settings as jira_sandbox  # noqa: E402
from sandbox.servicenow import settings as servicenow_sandbox  # noqa: E402

SHIPPED_CONFIG = ROOT / "config" / "itsm_config.json"
POSTGRES_ADMIN_URL = os.environ.get(
    "ITSM_DRILL_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PLATFORMS = ("servicenow", "jira")
PLATFORM_ENUM = {"servicenow": common_pb2.PLATFORM_SERVICENOW, "jira": common_pb2.PLATFORM_JIRA}
SANDBOX_AUTH = {  # Authorization headers for the sandbox's well-known credentials
    "servicenow": "Basic " + base64.b64encode(
        f"{servicenow_sandbox.DEFAULT_USER}:{servicenow_sandbox.DEFAULT_PASSWORD}".encode()
    ).decode(),
    "jira": "Basic " + base64.b64encode(
        f"{jira_sandbox.DEFAULT_USER}:{jira_sandbox.DEFAULT_TOKEN}".encode()
    ).decode(),
}
# Codes a caller repeats its request_id on: the gateway died, restarted, is still settling the
# outcome (OutcomePending is UNAVAILABLE), or ran out of time.
RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED", "CANCELLED"}
CALL_TIMEOUT_SECONDS = 20.0


# -- faults, timings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """What the sandbox does wrong (issue 12): 20% 503/429/502/504, 5% drops after commit, 5% late
    commits, Jira search lag. The late commit (plus the lag, for a search) is shorter than the gateway's
    confirmation delays in the drill configuration (Timings), as a real platform's are shorter than
    the delays configured for it."""

    error_rate: float = 0.20
    statuses: tuple[int, ...] = (503, 429, 502, 504)
    drop_after_commit_rate: float = 0.05
    late_commit_rate: float = 0.05
    late_commit_ms: int = 1500
    search_lag_ms: int = 2500  # Jira only

    def arguments(self) -> list[str]:
        return [
            "--error-rate", str(self.error_rate),
            "--fault-statuses", ",".join(map(str, self.statuses)),
            "--retry-after-seconds", "1",
            "--drop-after-commit-rate", str(self.drop_after_commit_rate),
            "--late-commit-rate", str(self.late_commit_rate),
            "--late-commit-ms", str(self.late_commit_ms),
            "--search-lag-ms", str(self.search_lag_ms),
        ]


@dataclass(frozen=True)
class Timings:
    """Short timeouts and leases, so that recovering from a killed gateway takes seconds."""

    total_seconds: float = 5.0  # timeout.total_seconds; the lease must be >= 2 * this + 10
    pending_lease_seconds: float = 20.0
    reconcile_interval_seconds: float = 2.0
    in_flight_wait_seconds: float = 10.0
    # Per platform: (direct, search) confirmation delays. They must outlast what the sandbox does: a
    # late commit lands late_commit_ms after its 504, and a Jira search shows it search_lag_ms after
    # that (write_config refuses delays that do not cover both).
    confirmation: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {"servicenow": (2.5, 2.5), "jira": (2.5, 5.0)}
    )
    sla_sync_interval_seconds: float = 2.0
    sla_lease_seconds: float = 5.0


# -- processes ---------------------------------------------------------------------------------


def clock_ahead(offset: str) -> dict[str, str] | None:
    """The environment that moves a process's wall clock by `offset` ("+5m") through Debian's
    libfaketime (the monotonic clock stays real); None without it (apt-get install faketime)."""
    library = next(
        (p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                     "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1") if Path(p).is_file()),
        None,
    )
    if library is None:
        return None
    return {"LD_PRELOAD": library, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env.pop("ITSM_AUTH_TOKENS_FILE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen")])
    return env


def itsm_gateway(args: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`itsm-gateway <args>` as a child process, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "server.runtime.cli", *args],
            cwd=ROOT, env=child_env(env), stdout=out, stderr=subprocess.STDOUT,
        )


class SandboxProcess:
    """`itsm-gateway sandbox` on free ports, with the drill's faults, as its own process."""

    def __init__(self, scratch: Path, faults: Faults, seed: int) -> None:
        self.ports = {name: free_port() for name in PLATFORMS}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        ports = [a for name, port in self.ports.items() for a in (f"--{name}-port", str(port))]
        self.process = itsm_gateway(
            ["sandbox", *ports, "--seed", str(seed), *faults.arguments()], scratch / "sandbox.log"
        )
        self.faults = faults

    async def ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as http:
            for url in self.urls.values():
                while True:
                    if self.process.poll() is not None:
                        raise RuntimeError("the sandbox exited at start")
                    try:
                        async with http.get(f"{url}/_sandbox/stats") as reply:
                            if reply.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("the sandbox did not start")
                    await asyncio.sleep(0.2)

    async def calm(self) -> None:
        """Faults off, so the counting reads every record; late commits still land (wait for them
        before counting)."""
        calm = {"error_rate": 0.0, "drop_after_commit_rate": 0.0, "late_commit_rate": 0.0, "search_lag_ms": 0}
        async with aiohttp.ClientSession() as http:
            for url in self.urls.values():
                async with http.put(f"{url}/_sandbox/faults", json=calm) as reply:
                    reply.raise_for_status()

    async def stats(self) -> dict[str, dict[str, int]]:
        async with aiohttp.ClientSession() as http:
            result = {}
            for name, url in self.urls.items():
                async with http.get(f"{url}/_sandbox/stats") as reply:
                    result[name] = await reply.json()
            return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class GatewayProcess:
    """`itsm-gateway serve` on fixed ports (kept across restarts, so callers reconnect to it)."""

    def __init__(self, name: str, config: Path, database_url: str, scratch: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.config, self.database_url, self.env = config, database_url, dict(env or {})
        self.grpc_port, self.web_port, self.metrics_port = free_port(), free_port(), free_port()
        self.log = scratch / f"gateway-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.killed = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> None:
        self.starts += 1
        self.killed = False
        self.process = itsm_gateway(
            [
                "serve", "--allow-unauthenticated", "--config", str(self.config), "--bind", "127.0.0.1",
                "--grpc-port", str(self.grpc_port), "--web-port", str(self.web_port),
                "--metrics-port", str(self.metrics_port), "--database-url", self.database_url,
            ],
            self.log, self.env,
        )

    async def serving(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"gateway {self.name} exited: see {self.log}")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"gateway {self.name} did not become SERVING")

    def kill(self) -> None:
        """SIGKILL: no drain, no final write."""
        assert self.process is not None
        self.killed = True
        self.process.kill()
        self.process.wait()

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


CONFIRMATION_MARGIN_SECONDS = 0.5


def write_config(
    sandbox_urls: Mapping[str, str], path: Path, timings: Timings, faults: Faults, *, tiny_sla: bool
) -> dict[str, str]:
    """The shipped configuration on the sandbox, with the drill's short timeouts and leases; with
    tiny_sla, every SLA target is seconds long, so tickets breach during the drill. Returns the
    environment holding the sandbox's credentials."""
    raw = json.loads(SHIPPED_CONFIG.read_text())
    env: dict[str, str] = {}
    for name, url in sandbox_urls.items():
        prefix = f"ITSM_SANDBOX_{name.upper()}"
        user, secret = (
            (servicenow_sandbox.DEFAULT_USER, servicenow_sandbox.DEFAULT_PASSWORD) if name == "servicenow"
            else (jira_sandbox.DEFAULT_USER, jira_sandbox.DEFAULT_TOKEN)
        )
        direct, search = timings.confirmation[name]
        landed = faults.late_commit_ms / 1000 + CONFIRMATION_MARGIN_SECONDS
        searchable = landed + (faults.search_lag_ms / 1000 if name == "jira" else 0)
        if direct < landed or search < searchable:
            # The platform would still be applying (or indexing) a write when the gateway looks for
            # it: duplicates would be the drill's configuration, not the gateway.
            raise ValueError(
                f"{name}: confirmation delays ({direct}, {search}) s must be at least ({landed}, "
                f"{searchable}) s for late commits of {faults.late_commit_ms} ms and a search lag of "
                f"{faults.search_lag_ms} ms"
            )
        raw["platforms"][name].update(
            enabled=True, base_url=url, verify_tls=True, ca_bundle=None, proxy=None,
            auth={"type": "basic", "username_env": f"{prefix}_USER", "password_env": f"{prefix}_PASSWORD"},
            confirmation_delay_seconds=direct, search_confirmation_delay_seconds=search,
        )
        env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"] = user, secret
    total = timings.total_seconds
    raw["timeout"] = {"connect_seconds": 2, "read_seconds": total, "total_seconds": total}
    raw["retry_policy"].update(max_attempts=8, initial_delay_seconds=0.1, max_delay_seconds=1)
    raw["idempotency"] = {
        "pending_lease_seconds": timings.pending_lease_seconds,
        "reconcile_interval_seconds": timings.reconcile_interval_seconds,
        "in_flight_wait_seconds": timings.in_flight_wait_seconds,
    }
    raw["limits"]["shutdown_drain_seconds"] = 0
    raw["sla"].update(
        sync_interval_seconds=timings.sla_sync_interval_seconds, lease_seconds=timings.sla_lease_seconds,
        max_requests_per_second=20,
    )
    if tiny_sla:
        for targets in raw["sla"]["targets"].values():
            for priority in targets:
                targets[priority] = {"response_seconds": 2, "resolution_seconds": 6}
    path.write_text(json.dumps(raw, indent=1))
    return env


# -- databases ---------------------------------------------------------------------------------


class Database:
    """A throwaway database: a SQLite file in the scratch directory, or a PostgreSQL database
    created for the drill and dropped after it."""

    def __init__(self, kind: str, scratch: Path, postgres_url: str | None = None) -> None:
        """postgres_url: any database on the server to create it on (ITSM_DRILL_POSTGRES_URL, by
        default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)."""
        self.kind = kind
        self.admin_url = postgres_url or POSTGRES_ADMIN_URL
        self.name = f"itsm_drill_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if kind == "sqlite":
            self.url = f"sqlite+aiosqlite:///{scratch}/{self.name}.db"
        elif kind == "postgres":
            self.url = self.admin_url.rsplit("/", 1)[0] + "/" + self.name
        else:
            raise ValueError(f"unknown database {kind!r}")

    async def _admin(self, statement: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    async def create(self, scratch: Path) -> None:
        """Created and migrated (`itsm-gateway migrate`); `serve` migrates SQLite itself."""
        if self.kind != "postgres":
            return
        await self._admin(f'CREATE DATABASE "{self.name}"')
        process = itsm_gateway(["migrate", "--database-url", self.url], scratch / "migrate.log")
        if await asyncio.to_thread(process.wait) != 0:
            raise RuntimeError(f"migrate failed: see {scratch / 'migrate.log'}")

    async def drop(self) -> None:
        if self.kind == "postgres":
            await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as connection:
                return [tuple(r) for r in (await connection.execute(text(query))).all()]
        finally:
            await engine.dispose()


# -- the workload ------------------------------------------------------------------------------


@dataclass
class Op:
    """One request_id and everything its callers saw."""

    request_id: str
    kind: str  # create, dedup, update, comment, resolve
    platform: str
    tag: str  # what the platform record's summary carries: the create's request_id, or the dedup key
    parent: Op | None = None  # the create a follow-up acts on
    via_web: bool = False
    dedup_key: str = ""
    follow_ups: list[Op] = field(default_factory=list)
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (gateway, ticket id, comment id)
    calls: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    error: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ticket_id(self) -> str:
        return self.answers[0][1] if self.answers else ""


def plan(creates: int, seed: int, run: str, web_share: float) -> list[Op]:
    """`creates` creates, half on each platform, each with its follow-ups (every third updated, 0 to 2
    comments, every fourth resolved, in that order once the create answered); and a tenth as many
    dedup keys, four creates sharing each (never resolved: one open ticket per key)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for i in range(creates):
        platform = PLATFORMS[i % 2]
        rid = f"{run}-c{i}"
        create = Op(rid, "create", platform, rid, via_web=rng.random() < web_share)
        ops.append(create)
        follow = []
        if i % 3 == 0:
            follow.append(Op(f"{run}-u{i}", "update", platform, rid, create, rng.random() < web_share))
        for j in range(i % 3):
            follow.append(Op(f"{run}-m{i}.{j}", "comment", platform, rid, create, rng.random() < web_share))
        if i % 4 == 0:
            follow.append(Op(f"{run}-r{i}", "resolve", platform, rid, create, rng.random() < web_share))
        create.follow_ups = follow
        ops.extend(follow)
    for k in range(max(1, creates // 10)):
        key = f"{run}-k{k}"
        for n in range(4):
            ops.append(Op(f"{key}.{n}", "dedup", PLATFORMS[k % 2], key, dedup_key=key,
                          via_web=rng.random() < web_share))
    return ops


def grpc_request(op: Op) -> tuple[str, Any]:
    """The method and request message of one operation."""
    if op.kind in ("create", "dedup"):
        return "CreateTicket", ticket_service_pb2.CreateTicketRequest(
            platform=PLATFORM_ENUM[op.platform], request_id=op.request_id, job_id="drill",
            fields={"summary": f"drill {op.tag}", "description": f"Opened by the drill ({op.request_id})."},
            dedup_key=op.dedup_key,
        )
    assert op.parent is not None
    ticket = op.parent.ticket_id
    if op.kind == "update":
        return "UpdateTicket", ticket_service_pb2.UpdateTicketRequest(
            id=ticket, request_id=op.request_id, fields={"description": f"updated by {op.request_id}"}
        )
    if op.kind == "comment":
        return "AddComment", ticket_service_pb2.AddCommentRequest(
            id=ticket, request_id=op.request_id, body=f"drill comment {op.request_id}"
        )
    return "ResolveTicket", ticket_service_pb2.ResolveTicketRequest(id=ticket, request_id=op.request_id)


RESPONSES = {
    "CreateTicket": ticket_service_pb2.CreateTicketResponse,
    "UpdateTicket": ticket_service_pb2.UpdateTicketResponse,
    "AddComment": ticket_service_pb2.AddCommentResponse,
    "ResolveTicket": ticket_service_pb2.ResolveTicketResponse,
}


class Caller:
    """Sends operations to gateways over gRPC, or over the web port's Connect JSON, and says what
    came back: ("OK", response) or (code name, detail)."""

    def __init__(self, gateways: Iterable[GatewayProcess]) -> None:
        options = [
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._channels = {g.name: grpc.aio.insecure_channel(g.target, options=options) for g in gateways}
        self._stubs = {n: ticket_service_pb2_grpc.TicketServiceStub(c) for n, c in self._channels.items()}
        self._web = {g.name: g.web_url for g in gateways}
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_SECONDS + 5))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        await self._http.close()

    async def call(self, gateway: str, op: Op) -> tuple[str, Any]:
        method, request = grpc_request(op)
        if op.via_web:
            return await self._connect(gateway, method, request)
        try:
            reply = await getattr(self._stubs[gateway], method)(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as err:
            return err.code().name, err.details() or ""
        return "OK", reply

    async def _connect(self, gateway: str, method: str, request: Any) -> tuple[str, Any]:
        url = f"{self._web[gateway]}/itsm.v1.TicketService/{method}"
        timeout_ms = str(int(CALL_TIMEOUT_SECONDS * 1000))
        headers = {"Connect-Protocol-Version": "1", "Connect-Timeout-Ms": timeout_ms}
        body = json_format.MessageToDict(request)
        try:
            async with self._http.post(url, json=body, headers=headers) as reply:
                body = await reply.json(content_type=None)
                if reply.status == 200:
                    return "OK", json_format.ParseDict(body, RESPONSES[method](), ignore_unknown_fields=True)
                return str(body.get("code", f"http {reply.status}")).upper(), body.get("message", "")
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
            return "UNAVAILABLE", f"web port: {type(exc).__name__}"


def answer_of(op: Op, reply: Any) -> tuple[str, str]:
    comment = getattr(reply, "comment_id", "") if op.kind == "comment" else ""
    return reply.ticket.id, comment


@dataclass
class Progress:
    total: int
    answered: int = 0
    started: int = 0  # operations that took a slot (in flight: started - answered)
    milestone: asyncio.Event = field(default_factory=asyncio.Event)
    threshold: int = 0

    def count(self) -> None:
        self.answered += 1
        if self.threshold and self.answered >= self.threshold:
            self.milestone.set()


async def run_workload(
    ops: list[Op], caller: Caller, live: Callable[[], list[str]], in_flight: int, progress: Progress,
    *, all_at_once: bool,
) -> None:
    """Every operation repeated (same request_id) until it has a final answer. With all_at_once, each
    is sent to every live gateway at the same time and is final once every live gateway answered it;
    a gateway that dies on the way is dropped, the rest answer."""
    gate = asyncio.Semaphore(in_flight)

    async def one(op: Op) -> None:
        if op.parent is not None:
            await op.parent.done.wait()
            if not op.parent.ticket_id:
                op.error = "its create never answered"
                op.done.set()
                return
        async with gate:
            progress.started += 1
            answered: set[str] = set()
            while True:
                targets = [g for g in live() if g not in answered]
                if not all_at_once:
                    targets = targets[:1]
                if not targets:
                    if answered:
                        break
                    await asyncio.sleep(0.2)
                    continue
                results = await asyncio.gather(*(caller.call(g, op) for g in targets))
                op.calls += len(targets)
                final_error = ""
                for g, (code, reply) in zip(targets, results, strict=True):
                    if code == "OK":
                        op.answers.append((g, *answer_of(op, reply)))
                        answered.add(g)
                    elif code in RETRYABLE:
                        op.retries[code] += 1
                    else:
                        final_error = f"{code}: {reply}"
                if final_error:
                    op.error = final_error
                    break
                if all_at_once and answered and all(g in answered for g in live()):
                    break
                if not all_at_once and answered:
                    break
                await asyncio.sleep(0.3 + random.random() * 0.3)
        progress.count()
        op.done.set()

    # Creates first in the queue, follow-ups wait for theirs without holding a slot.
    await asyncio.gather(*(one(op) for op in ops))


async def replay(ops: list[Op], caller: Caller, gateways: list[str], in_flight: int) -> int:
    """Every request_id once more, to every gateway still up: the same answer each time. Returns how
    many replays answered something else (or not at all)."""
    gate = asyncio.Semaphore(in_flight)
    wrong = 0

    async def again(op: Op, gateway: str) -> None:
        nonlocal wrong
        if not op.answers:
            return
        async with gate:
            for _ in range(50):
                code, reply = await caller.call(gateway, op)
                if code not in RETRYABLE:
                    break
                await asyncio.sleep(0.3)
        if code != "OK" or answer_of(op, reply) != op.answers[0][1:]:
            wrong += 1
            seen = answer_of(op, reply) if code == "OK" else reply
            op.error = op.error or f"replay on {gateway}: {code} {seen}"

    await asyncio.gather(*(again(op, g) for op in ops for g in gateways))
    return wrong


# -- the verdict -------------------------------------------------------------------------------

_TAG = re.compile(r"^drill (\S+)$")


@dataclass
class Records:
    """What one platform holds, read through its API: summary tag -> records."""

    by_tag: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    comments: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # record id -> texts


async def _get(http: aiohttp.ClientSession, url: str, auth: str, params: Any = None) -> Any:
    headers = {"Accept": "application/json", "Authorization": auth}
    for _ in range(10):
        async with http.get(url, params=params, headers=headers) as reply:
            if reply.status == 200:
                return await reply.json()
        await asyncio.sleep(0.5)
    raise RuntimeError(f"GET {url} kept failing")


async def read_servicenow(http: aiohttp.ClientSession, base: str) -> Records:
    auth = SANDBOX_AUTH["servicenow"]
    records = Records()
    incidents = await _get(http, f"{base}/api/now/table/incident", auth, {
        "sysparm_limit": "10000", "sysparm_fields": "sys_id,short_description,description,state",
    })
    for incident in incidents["result"]:
        match = _TAG.match(incident.get("short_description", ""))
        if match:
            records.by_tag[match.group(1)].append(
                {"id": incident["sys_id"], "resolved": incident.get("state") == "6",
                 "text": incident.get("description", "")}
            )
    journal = await _get(http, f"{base}/api/now/table/sys_journal_field", auth, {
        "sysparm_limit": "10000", "sysparm_fields": "element_id,value",
    })
    for entry in journal["result"]:
        records.comments[entry["element_id"]].append(entry.get("value", ""))
    return records


async def read_jira(http: aiohttp.ClientSession, base: str, with_comments: set[str]) -> Records:
    auth = SANDBOX_AUTH["jira"]
    records = Records()
    start = 0
    while True:
        page = await _get(http, f"{base}/rest/api/2/search", auth, {
            "jql": "order by created", "startAt": str(start), "maxResults": "1000",
            "fields": "summary,description,status",
        })
        for issue in page["issues"]:
            fields = issue["fields"]
            match = _TAG.match(fields.get("summary") or "")
            if match:
                records.by_tag[match.group(1)].append(
                    {"id": issue["id"], "key": issue["key"],
                     "resolved": fields["status"]["statusCategory"]["key"] == "done",
                     "text": json.dumps(fields.get("description"))}
                )
        start += len(page["issues"])
        if not page["issues"] or start >= page["total"]:
            break
    for tag, found in records.by_tag.items():
        if tag not in with_comments:
            continue
        for issue in found:
            url = f"{base}/rest/api/3/issue/{issue['key']}/comment"
            listed = await _get(http, url, auth, {"maxResults": "5000"})
            records.comments[issue["id"]] = [json.dumps(c.get("body")) for c in listed["comments"]]
    return records


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    @property
    def passed(self) -> bool:
        return not self.failures


async def verify(ops: list[Op], sandbox: SandboxProcess, database: Database, verdict: Verdict) -> None:
    """Every request_id answered with one ticket (the same on every repeat and every gateway); one
    platform record per create, one per dedup key; the comments and resolves asked for, each once;
    nothing PENDING in the ledger."""
    figures = verdict.figures
    for op in ops:
        if op.error:
            verdict.fail(f"{op.request_id} ({op.kind}): {op.error}")
        elif not op.answers:
            verdict.fail(f"{op.request_id} ({op.kind}): no answer")
        elif len({a[1:] for a in op.answers}) != 1:
            verdict.fail(f"{op.request_id} ({op.kind}): different answers {sorted(set(op.answers))}")
    await sandbox.calm()
    # A late commit answered 504 long ago may still be on its way: let it land before counting.
    await asyncio.sleep(sandbox.faults.late_commit_ms / 1000 + 1)
    creates = [op for op in ops if op.kind == "create"]
    dedups = [op for op in ops if op.kind == "dedup"]
    commented = {op.tag for op in ops if op.kind in ("comment", "resolve")}
    async with aiohttp.ClientSession() as http:
        held = {
            "servicenow": await read_servicenow(http, sandbox.urls["servicenow"]),
            "jira": await read_jira(http, sandbox.urls["jira"], commented),
        }
    duplicates = missing = 0
    for op in creates:
        found = held[op.platform].by_tag.get(op.tag, [])
        if len(found) != 1:
            duplicates += max(0, len(found) - 1)
            missing += len(found) == 0
            verdict.fail(f"{op.request_id}: {len(found)} records on {op.platform}")
    keys = {op.tag: op.platform for op in dedups}
    for key, platform in keys.items():
        found = held[platform].by_tag.get(key, [])
        tickets = {op.ticket_id for op in dedups if op.tag == key}
        if len(found) != 1:
            duplicates += max(0, len(found) - 1)
            missing += len(found) == 0
            verdict.fail(f"dedup key {key}: {len(found)} records on {platform}")
        open_records = [r for r in found if not r["resolved"]]
        if len(open_records) != 1:
            verdict.fail(f"dedup key {key}: {len(open_records)} open records")
        if len(tickets) != 1:
            verdict.fail(f"dedup key {key}: answered with {len(tickets)} tickets")
    comments = resolves = updates = 0
    for create in creates:
        found = held[create.platform].by_tag.get(create.tag, [])
        if len(found) != 1:
            continue
        record = found[0]
        texts = held[create.platform].comments.get(record["id"], [])
        for op in create.follow_ups:
            if op.kind == "comment":
                n = sum(f"drill comment {op.request_id}" in t for t in texts)
                comments += n
                if n != 1:
                    verdict.fail(f"{op.request_id}: the comment is there {n} times")
            elif op.kind == "update":
                updates += f"updated by {op.request_id}" in record["text"]
                if f"updated by {op.request_id}" not in record["text"]:
                    verdict.fail(f"{op.request_id}: the update is not on the record")
        resolve = any(op.kind == "resolve" for op in create.follow_ups)
        resolves += resolve and record["resolved"]
        if record["resolved"] != resolve:
            verdict.fail(f"{create.request_id}: resolved {record['resolved']}, asked {resolve}")
    pending_ops = (await database.rows("SELECT count(*) FROM operations WHERE state = 'PENDING'"))[0][0]
    pending_tickets = (await database.rows("SELECT count(*) FROM tickets WHERE state = 'PENDING'"))[0][0]
    if pending_ops or pending_tickets:
        verdict.fail(f"left PENDING in the database: {pending_ops} operations, {pending_tickets} tickets")
    stats = await sandbox.stats()
    figures.update(
        records={p: sum(len(v) for v in held[p].by_tag.values()) for p in PLATFORMS},
        expected_records={p: sum(o.platform == p for o in creates) + sum(v == p for v in keys.values())
                          for p in PLATFORMS},
        duplicates=duplicates, missing=missing, comments=comments,
        comments_asked=sum(op.kind == "comment" for op in ops),
        updates=updates, updates_asked=sum(op.kind == "update" for op in ops),
        resolves=resolves, resolves_asked=sum(op.kind == "resolve" for op in ops),
        pending_operations=pending_ops, pending_tickets=pending_tickets,
        sandbox_requests={p: stats[p]["requests"] for p in PLATFORMS},
        faults_injected={p: stats[p]["faults_injected"] for p in PLATFORMS},
    )


def workload_figures(ops: list[Op]) -> dict[str, Any]:
    retries: Counter[str] = Counter()
    for op in ops:
        retries.update(op.retries)
    return {
        "requests": len(ops),
        "by_kind": dict(Counter(op.kind for op in ops)),
        "via_web": sum(op.via_web for op in ops),
        "answered": sum(bool(op.answers) and not op.error for op in ops),
        "calls": sum(op.calls for op in ops),
        "retries": dict(retries),
    }


def breaches_logged(logs: Iterable[Path]) -> Counter[tuple[str, str]]:
    """(ticket id, kind) -> how many times a gateway counted that breach (its log line)."""
    counted: Counter[tuple[str, str]] = Counter()
    pattern = re.compile(r"^SLA (\w+) target breached$")
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"SLA ' not in line:
                continue
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                match = pattern.match(entry.get("message", ""))
                if match and entry.get("ticket_id"):
                    counted[(entry["ticket_id"], match.group(1))] += 1
    return counted


def print_figures(title: str, verdict: Verdict) -> None:
    verdict_line = "PASS" if verdict.passed else f"FAIL ({len(verdict.failures)} failures)"
    print(f"{verdict_line} {title}")
    for key, value in verdict.figures.items():
        print(f"  {key}: {value}")
    for failure in verdict.failures[:20]:
        print(f"  ! {failure}")
    if len(verdict.failures) > 20:
        print(f"  ! ... and {len(verdict.failures) - 20} more")


def keep_or_remove(scratch: Path, keep: bool) -> None:
    if keep:
        print(f"  logs and config kept in {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)


async def verify_breaches(
    database: Database, logs: Iterable[Path], verdict: Verdict, *, killed: bool
) -> None:
    """Every SLA breach the database holds was counted once, by one gateway (its log line, the same
    moment it counts itsm_sla_breaches_total), and none was counted that the database does not hold.

    A gateway killed between recording a breach and counting it loses that count (with the rest of
    its counters): with `killed`, breaches recorded and never counted are reported, not failed."""
    rows = await database.rows("SELECT id, sla_breaches FROM tickets WHERE sla_breaches <> ''")
    recorded = {(ticket, kind) for ticket, kinds in rows for kind in kinds.split(",") if kind}
    counted = breaches_logged(logs)
    twice = {k: n for k, n in counted.items() if n > 1}
    unrecorded = set(counted) - recorded
    uncounted = recorded - set(counted)
    verdict.figures.update(
        breached_tickets=len(rows), breaches_recorded=len(recorded),
        breaches_counted=sum(counted.values()), breaches_counted_twice=len(twice),
        breaches_recorded_uncounted=len(uncounted),
    )
    if not recorded:
        verdict.fail("no ticket breached: the drill's SLA targets did not bite")
    if twice:
        verdict.fail(f"{len(twice)} breaches counted more than once, e.g. {sorted(twice.items())[:3]}")
    if unrecorded:
        verdict.fail(f"{len(unrecorded)} breaches counted but not recorded, e.g. {sorted(unrecorded)[:3]}")
    if uncounted and not killed:
        verdict.fail(f"{len(uncounted)} breaches recorded but never counted, e.g. {sorted(uncounted)[:3]}")
