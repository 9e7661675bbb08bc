"""Gateways as real processes, for tests of the command line, of replicas and of crashes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.runtime.devmode import sandbox_config_overrides

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "config" / "itsm_config.json"
# The shipped config names these variables; their values do not matter where the sandbox is used.
ENV = {
    "SERVICENOW_USERNAME": "svc",
    "SERVICENOW_PASSWORD": "pw",
    "JIRA_EMAIL": "bot@example.com",
    "JIRA_API_TOKEN": "tok",
}


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # The web port defaults to a fixed 8080: gateways started by tests take a free one unless a test
    # says otherwise, so that they can run side by side.
    env = {**os.environ, **ENV, "ITSM_WEB_PORT": "0", **(extra or {})}
    env.pop("ITSM_AUTH_TOKENS_FILE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen")])
    return env


def gateway(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """`itsm-gateway <args>` as a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "server.runtime.cli", *args],
        cwd=cwd,
        env=command_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def serve_on(config: Path, env: Mapping[str, str], url: str, cwd: Path) -> tuple[int, subprocess.Popen[str]]:
    """`serve` on free ports with `config`, unauthenticated: (its gRPC port, the process)."""
    port = free_port()
    process = gateway(
        "serve", "--allow-unauthenticated", "--config", str(config), "--grpc-port", str(port),
        "--metrics-port", str(free_port()), "--database-url", url, cwd=cwd, env=env,
    )
    return port, process


def run(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    process = gateway(*args, cwd=cwd, env=env)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(port: int, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            time.sleep(0.2)
    raise AssertionError("the gateway did not become SERVING")


async def wait_serving_async(port: int, process: subprocess.Popen[str], seconds: float = 30) -> None:
    await asyncio.to_thread(wait_serving, port, process, seconds)


def config_on(sandbox_urls: Mapping[str, str], directory: Path, mutate: Any = None) -> tuple[Path, dict[str, str]]:
    """The shipped config pointed at a sandbox, written to a file; and the env holding its secrets."""
    raw = json.loads(SHIPPED_CONFIG.read_text())
    raw, env = sandbox_config_overrides(raw, sandbox_urls)
    raw["limits"]["shutdown_drain_seconds"] = 0
    if mutate is not None:
        mutate(raw)
    path = directory / "itsm_config.json"
    path.write_text(json.dumps(raw))
    return path, env


def stop(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    if process.poll() is None:
        process.terminate()
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def clock_ahead(offset: str) -> dict[str, str]:
    """The environment that runs a process with its clock moved by `offset` ("+5m"), through
    Debian's libfaketime (package faketime; .ci/run installs it); skip without it (fail under CI).
    The monotonic clock stays real: only the wall clock, which replicas would compare, moves."""
    library = next(
        (p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                     "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1") if Path(p).is_file()),
        None,
    )
    if library is None or shutil.which("faketime") is None:
        reason = "faketime is not installed (apt-get install faketime)"
        if os.environ.get("ITSM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return {"LD_PRELOAD": library, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def alertmanager_binary() -> str:
    """Debian's prometheus-alertmanager (.ci/run installs it); skip without it (fail under CI)."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        reason = "Alertmanager is not installed (apt-get install prometheus-alertmanager)"
        if os.environ.get("ITSM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found
