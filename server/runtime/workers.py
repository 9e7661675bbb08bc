"""`serve --workers N`: one supervisor process and N gateway worker processes on the same ports.

The supervisor reserves the gRPC and web ports with SO_REUSEPORT sockets before any gRPC server
exists (as grpc's multiprocessing example does; the reservation resolves port 0 and keeps the port
ours), starts each worker as a fresh interpreter (`serve ... --worker-index i`: no fork of a process
holding gRPC state), and lets the kernel spread connections over the workers' listeners. It serves the
one /metrics, summing every worker's samples through prometheus_client's multiprocess mode (the
workers write them to files in PROMETHEUS_MULTIPROC_DIR, set before they import prometheus_client).

A worker that dies after it served is logged and restarted (with a backoff when it keeps dying); one
that dies before it ever served is a start-up failure: everything stops and the command fails with
its exit code. SIGTERM or SIGINT drains every worker (each runs its own drain), then the supervisor
exits 0 when they all did. Background work (reconciler, status sync) runs in every worker and is
safe so: the workers share it through the database's leases, as replicas do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from server.observability.metrics_http import MetricsEndpoint

log = logging.getLogger("itsm.workers")

MAX_WORKERS = 64
# The file descriptor a worker writes "ready" to once it serves (inherited through pass_fds).
READY_FD_ENV = "ITSM_WORKER_READY_FD"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker restarted this soon after its previous start counts as crashing: back off.
_STABLE_SECONDS = 30.0
_MAX_BACKOFF_SECONDS = 30.0
# How long a stopping supervisor waits for its workers past their own drain and grace.
_STOP_MARGIN_SECONDS = 15.0


def worker_count(text: str) -> int:
    """`--workers`: a number from 1 to 64, or `auto` (the CPUs this process may run on)."""
    if text.strip().lower() == "auto":
        return max(1, min(MAX_WORKERS, usable_cpus()))
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"must be a number of processes or auto, got {text!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise ValueError(f"must be between 1 and {MAX_WORKERS}, got {count}")
    return count


def usable_cpus() -> int:
    """The CPUs the scheduler lets this process use, lowered to the container's CPU quota (cgroup
    v2 cpu.max, or v1 cfs quota): a pod limited to 2 CPUs on a 64-core node gets 2."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, quota)) if quota else cpus


def _cgroup_quota() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if limit != "max":
            return max(1, -(-int(limit) // int(period)))  # rounded up: 1.5 CPUs is 2 workers
        return None
    with contextlib.suppress(OSError, ValueError):
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0:
            return max(1, -(-quota // period))
    return None


def reserve_port(host: str | None, port: int) -> socket.socket:
    """A bound (not listening) SO_REUSEPORT socket holding `port` (0: a free one) on `host`
    (None: every interface). Listeners the workers open on the same port join it; the kernel
    spreads connections over the listening ones only."""
    family = socket.AF_INET6 if host is None or ":" in host else socket.AF_INET
    address = "::" if host is None else host
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot reserve port {port} on {address}: {exc.strerror or exc}") from None
    return sock


@dataclass(frozen=True)
class WorkerPlan:
    """What the supervisor runs: `argv` is the `serve` command line each worker gets (ports
    resolved, --workers and the metrics port overridden); the rest is what it serves itself."""

    count: int
    argv: Sequence[str]
    metrics_bind: str | None  # None: every interface
    metrics_port: int | None
    stop_seconds: float  # a worker's own drain and grace, the longest a stopping one takes


class _Worker:
    def __init__(self, index: int, process: subprocess.Popen[bytes], ready: int) -> None:
        self.index, self.process, self.ready_fd = index, process, ready
        self.started = time.monotonic()
        self.served = False


class _SupervisorMetrics(Collector):
    """The supervisor's own samples, from plain numbers (not prometheus_client metric objects, whose
    values would go to the multiprocess files when PROMETHEUS_MULTIPROC_DIR is set for this process
    too, and be counted twice)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> list[Metric]:
        restarts = CounterMetricFamily(
            "itsm_worker_restarts", "Worker processes that died and were restarted."
        )
        restarts.add_metric([], self._supervisor.restarts)
        serving = GaugeMetricFamily("itsm_workers_serving", "Worker processes serving now.")
        serving.add_metric([], self._supervisor.serving())
        return [restarts, serving]


class Supervisor:
    def __init__(self, plan: WorkerPlan, metrics_dir: Path) -> None:
        self._plan = plan
        self._dir = metrics_dir
        self._workers: dict[int, _Worker] = {}
        self._failures: dict[int, int] = {}  # index -> crashes in a row
        self._stopping = asyncio.Event()
        self._registry = CollectorRegistry()
        MultiProcessCollector(self._registry, path=str(metrics_dir))
        self._registry.register(_SupervisorMetrics(self))
        self.restarts = 0
        self.metrics_port = 0

    def serving(self) -> int:
        for worker in self._workers.values():
            self._note_ready(worker)
        return sum(1 for w in self._workers.values() if w.served and w.process.poll() is None)

    async def run(self) -> int:
        """Serves until a signal (exit 0 once every worker drained) or a start-up failure (its code)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        metrics = None
        try:
            if self._plan.metrics_port is not None:
                metrics = MetricsEndpoint(self._plan.metrics_bind, self._plan.metrics_port, self._registry)
                self.metrics_port = await metrics.start()
            for index in range(self._plan.count):
                self._start(index)
            failed = await self._watch()
            code = await self._stop_all()
            return failed if failed is not None else code
        finally:
            if metrics is not None:
                await metrics.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _start(self, index: int) -> None:
        read_end, write_end = os.pipe()
        env = {**os.environ, MULTIPROC_ENV: str(self._dir), READY_FD_ENV: str(write_end)}
        argv = [sys.executable, "-m", "server.runtime.cli", *self._plan.argv, "--worker-index", str(index)]
        # The worker's stdout and stderr are ours: its log lines reach the operator's log as they are.
        process = subprocess.Popen(argv, env=env, pass_fds=(write_end,))
        os.close(write_end)
        os.set_blocking(read_end, False)
        self._workers[index] = _Worker(index, process, read_end)
        extra = {"worker": index, "worker_pid": process.pid}
        log.info("worker %d started (pid %d)", index, process.pid, extra=extra)

    async def _watch(self) -> int | None:
        """Until a signal: notices workers that serve, restarts those that die after serving.
        Returns the exit code of a worker that died before it ever served (None on a signal)."""
        while not self._stopping.is_set():
            for worker in list(self._workers.values()):
                self._note_ready(worker)
                code = worker.process.poll()
                if code is None:
                    continue
                self._forget(worker)
                if not worker.served:
                    log.error("worker %d (pid %d) exited with code %d before it served: stopping",
                              worker.index, worker.process.pid, code)
                    return code or 1
                await self._restart(worker, code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.2)
        return None

    def _note_ready(self, worker: _Worker) -> None:
        if worker.served:
            return
        with contextlib.suppress(BlockingIOError):
            if os.read(worker.ready_fd, 16):
                worker.served = True

    async def _restart(self, worker: _Worker, code: int) -> None:
        crashed_soon = time.monotonic() - worker.started < _STABLE_SECONDS
        failures = self._failures.get(worker.index, 0) + 1 if crashed_soon else 0
        self._failures[worker.index] = failures
        delay = min(_MAX_BACKOFF_SECONDS, 0.5 * 2 ** failures) if failures else 0.0
        log.error(
            "worker %d (pid %d) died (exit code %d); restarting it in %.1f s",
            worker.index, worker.process.pid, code, delay,
            extra={"worker": worker.index, "worker_pid": worker.process.pid, "exit_code": code},
        )
        self.restarts += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if not self._stopping.is_set():
            self._start(worker.index)

    def _forget(self, worker: _Worker) -> None:
        os.close(worker.ready_fd)
        self._workers.pop(worker.index, None)
        # Its live gauges no longer count; its counters and histograms still do (they happened).
        mark_process_dead(worker.process.pid, str(self._dir))

    async def _stop_all(self) -> int:
        """SIGTERM to every worker (each drains), then waits; a worker still running after its
        drain, its grace and a margin is killed. 0 when every worker exited 0."""
        workers = list(self._workers.values())
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._plan.stop_seconds + _STOP_MARGIN_SECONDS
        code = 0
        for worker in workers:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                exit_code = await asyncio.to_thread(worker.process.wait, remaining)
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop in time: killed", worker.index, worker.process.pid)
                worker.process.kill()
                exit_code = await asyncio.to_thread(worker.process.wait)
            code = code or exit_code
            self._forget(worker)
        return code


def metrics_directory() -> tuple[Path, bool]:
    """Where the workers write their samples: PROMETHEUS_MULTIPROC_DIR when the operator set one
    (emptied: files from an earlier run would be summed in), else a fresh one we remove at exit.
    Returns (the directory, whether it is ours to remove)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
        return path, False
    return Path(tempfile.mkdtemp(prefix="itsm-metrics-")), True


def remove_directory(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def signal_ready() -> None:
    """Called by a worker once it serves: tells the supervisor (a no-op outside worker mode)."""
    descriptor = os.environ.pop(READY_FD_ENV, None)
    if descriptor is None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(descriptor), b"ready\n")
        os.close(int(descriptor))
