"""The itsm-gateway command as a person runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.processes import SHIPPED_CONFIG, free_port, gateway, run, wait_serving


def test_check_config_accepts_the_shipped_file(tmp_path: Path) -> None:
    code, err = run("check-config", str(SHIPPED_CONFIG), cwd=tmp_path)
    assert code == 0, err


def test_a_broken_config_is_refused_with_its_json_path(tmp_path: Path) -> None:
    raw = json.loads(SHIPPED_CONFIG.read_text())
    raw["field_mapping"]["jira"]["labels"]["pattern"] = "[unclosed"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(raw))
    for command in (["check-config", str(broken)], ["serve", "--config", str(broken), "--allow-unauthenticated"]):
        code, err = run(*command, cwd=tmp_path)
        assert code == 2
        lines = err.strip().splitlines()
        assert lines[-1].startswith("itsm-gateway: config error: field_mapping.jira.labels.pattern:")
        assert "Traceback" not in err


def test_a_missing_secret_is_named(tmp_path: Path) -> None:
    code, err = run("check-config", str(SHIPPED_CONFIG), cwd=tmp_path, env={"JIRA_API_TOKEN": ""})
    assert code == 2
    assert "platforms.jira.auth.password_env: environment variable JIRA_API_TOKEN is not set" in err


def test_serve_refuses_to_start_without_a_tokens_file(tmp_path: Path) -> None:
    code, err = run("serve", "--config", str(SHIPPED_CONFIG), cwd=tmp_path)
    assert code == 2
    assert "ITSM_AUTH_TOKENS_FILE" in err and "--allow-unauthenticated" in err


def test_serve_drains_on_sigterm_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    process = gateway(
        "serve", "--config", str(SHIPPED_CONFIG), "--allow-unauthenticated", "--bind", "127.0.0.1",
        "--grpc-port", str(port), "--metrics-port", str(free_port()),
        cwd=tmp_path,
    )
    try:
        wait_serving(port, process)
        assert (tmp_path / "var" / "itsm.db").is_file()  # embedded default, created on first run
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
    finally:
        process.kill()


def test_serve_takes_the_web_port_flag_and_drains_it(tmp_path: Path) -> None:
    port, web = free_port(), free_port()
    process = gateway(
        "serve", "--config", str(SHIPPED_CONFIG), "--allow-unauthenticated", "--bind", "127.0.0.1",
        "--grpc-port", str(port), "--metrics-port", str(free_port()), "--web-port", str(web),
        cwd=tmp_path,
    )
    try:
        wait_serving(port, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/readyz", timeout=5) as ready:
            assert ready.status == 200 and json.load(ready)["status"] == "SERVING"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert f"web (Connect, gRPC-web) on 127.0.0.1:{web}" in err  # --web-bind follows --bind
    finally:
        process.kill()


def test_a_web_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web = taken.getsockname()[1]
        code, err = run(
            "serve", "--config", str(SHIPPED_CONFIG), "--allow-unauthenticated", "--bind", "127.0.0.1",
            "--grpc-port", str(free_port()), "--metrics-port", str(free_port()), "--web-port", str(web),
            cwd=tmp_path,
        )
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"itsm-gateway: cannot bind the web port on 127.0.0.1:{web}")


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run(
            "serve", "--config", str(SHIPPED_CONFIG), "--allow-unauthenticated", "--bind", "127.0.0.1",
            "--grpc-port", str(port), "--metrics-port", str(free_port()),
            cwd=tmp_path,
        )
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"itsm-gateway: cannot bind gRPC on 127.0.0.1:{port}: port in use or address unavailable"


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    code, err = run(
        "serve", "--config", str(SHIPPED_CONFIG), "--allow-unauthenticated",
        "--database-url", "postgresql+asyncpg://itsm:canary-pw@127.0.0.1:1/itsm",
        cwd=tmp_path,
    )
    assert code == 1
    assert "Traceback" not in err and "canary-pw" not in err
    assert "cannot use database" in err


def test_a_bad_event_loop_choice_is_one_line(tmp_path: Path) -> None:
    code, err = run(
        "migrate", "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        cwd=tmp_path, env={"ITSM_EVENT_LOOP": "bogus"},
    )
    assert code == 2 and "Traceback" not in err
    assert "ITSM_EVENT_LOOP must be one of uvloop, asyncio" in err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("flag", ["--grpc-port=99999", "--grpc-port=abc", "--web-port=70000"])
def test_bad_ports_are_usage_errors(tmp_path: Path, flag: str) -> None:
    code, err = run("serve", flag, cwd=tmp_path)
    assert code == 2
    assert "Traceback" not in err


def test_health_command_says_serving_then_refuses_when_nothing_listens(tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    process = gateway(
        "serve", "--allow-unauthenticated", "--config", str(SHIPPED_CONFIG), "--grpc-port", str(port),
        "--metrics-port", str(metrics), "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
        cwd=tmp_path,
    )
    try:
        wait_serving(port, process)
        code, err = run("health", "--address", f"127.0.0.1:{port}", cwd=tmp_path)
        assert code == 0, err
        assert "SERVING" in err
        code, err = run("health", "--address", f"127.0.0.1:{port}", "--service", "itsm.v1.TicketService", cwd=tmp_path)
        assert code == 0, err
        code, err = run("health", "--address", f"127.0.0.1:{port}", "--service", "no.such.Service", cwd=tmp_path)
        assert code == 1 and "NOT_FOUND" in err
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    code, err = run("health", "--address", f"127.0.0.1:{port}", "--timeout", "1", cwd=tmp_path)
    assert code == 1
    assert err.count("\n") == 1
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err


def test_check_config_on_a_database_no_gateway_used_says_so_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    code, err = run("check-config", str(SHIPPED_CONFIG), "--database-url", f"sqlite+aiosqlite:///{missing}",
                    cwd=tmp_path)
    assert code == 0, err
    assert not missing.exists()


def test_a_newer_schema_runs_when_it_says_it_is_compatible_and_is_refused_in_one_line_otherwise(
    tmp_path: Path,
) -> None:
    """A rolling upgrade: the new version migrated (an expand migration keeps schema_compat at a
    revision the old version knows), so the old replicas keep serving; after a contract migration
    they refuse to start, in one line, and migrate refuses to touch the schema."""
    import sqlite3

    url = f"sqlite+aiosqlite:///{tmp_path}/newer.db"
    code, err = run("migrate", "--database-url", url, cwd=tmp_path)
    assert code == 0, err
    with sqlite3.connect(tmp_path / "newer.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed0099'")  # an expand migration
    port = free_port()
    serve = ("serve", "--allow-unauthenticated", "--config", str(SHIPPED_CONFIG), "--database-url", url,
             "--grpc-port", str(port), "--web-port", str(free_port()), "--metrics-port", str(free_port()))
    process = gateway(*serve, cwd=tmp_path)
    try:
        wait_serving(port, process)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "newer than this version's" in err and "compatible with it (since 0005)" in err

    with sqlite3.connect(tmp_path / "newer.db") as db:
        db.execute("UPDATE schema_compat SET compatible_since = 'f00dfeed0099'")  # a contract one
    for command in (("migrate", "--database-url", url), serve):
        code, err = run(*command, cwd=tmp_path)
        assert code == 1, err
        assert "f00dfeed0099, which this version does not know" in err and "Traceback" not in err, err
