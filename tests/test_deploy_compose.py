"""deploy/docker/docker-compose.yml without Docker: valid against the Compose Specification's JSON schema
(vendored in deploy/docker/schema/), every mounted path present, the start-up order (PostgreSQL
healthy -> migrate succeeded -> gateway), Prometheus and Grafana wired to the services by name, and the
demo profile's config and credentials proven against a real sandbox and a real gateway.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import jsonschema
import pytest
import yaml

from itsm.v1 import common_pb2, ticket_service_pb2, ticket_service_pb2_grpc
from server.runtime.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "deploy/docker"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
SCHEMA = COMPOSE_DIR / "schema/compose-spec.json"
SHIPPED_CONFIG = ROOT / "config/itsm_config.json"
DEMO_PROFILE = "demo"
# The sandbox's well-known development credentials (itsm-gateway sandbox --help): only the demo
# profile may carry them.
SANDBOX_CREDENTIALS = {"admin", "dev@example.com", "dev-token"}

# ${VAR}, ${VAR:-default}, ${VAR-default}; the only interpolation forms this file may use, because
# they are the only ones the checks below resolve (to their defaults, as with an empty environment).
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def _interpolate(value: Any) -> Any:
    if isinstance(value, str):
        resolved = _VARIABLE.sub(lambda m: m.group("default") or "", value.replace("$$", "\0"))
        assert "$" not in resolved, f"unsupported interpolation in {value!r}"
        return resolved.replace("\0", "$")
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    return value


def compose() -> dict[str, Any]:
    """The file as Compose sees it with no variable set: YAML anchors merged, defaults interpolated."""
    return _interpolate(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def gateways() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("command", [None])[0] == "serve"}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume, short or long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        found.append((source, target))
    return found


def host_path(source: str) -> Path | None:
    """The file a relative bind-mount source names, None for a named volume or an absolute path."""
    if source.startswith(("./", "../")) or source in (".", ".."):
        return (COMPOSE_DIR / source).resolve()
    return None


def mounted_file(service: dict[str, Any], target: str) -> Path:
    for source, mounted_at in mounts(service):
        path = host_path(source)
        if path is None:
            continue
        if mounted_at == target:
            return path
        if target.startswith(mounted_at.rstrip("/") + "/") and path.is_dir():
            return path / target[len(mounted_at.rstrip("/")) + 1:]
    raise AssertionError(f"nothing from the repository is mounted at {target}")


def names_in_network(name: str) -> set[str]:
    """The host names a service answers to on the default network: its name and its aliases."""
    service = services()[name]
    aliases: set[str] = set()
    networks = service.get("networks", {})
    if isinstance(networks, dict):
        for network in networks.values():
            aliases.update((network or {}).get("aliases", []))
    return {name, *aliases}


# ------------------------------------------------------------------------------- the specification


def test_the_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_can_fail() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["postgres"]["depends_on"] = {"migrate": {"condition": "when_it_feels_like_it"}}
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_every_relative_path_exists_and_every_named_volume_is_declared() -> None:
    document = compose()
    declared_volumes = set(document.get("volumes", {}))
    missing = []
    for name, service in document["services"].items():
        for source, _ in mounts(service):
            path = host_path(source)
            if path is None and not source.startswith("/"):
                assert source in declared_volumes, f"{name}: volume {source!r} is not declared"
            elif path is not None and not path.exists():
                missing.append(f"{name}: {source}")
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                missing.append(f"{name}: build {build}")
    for name, secret in document.get("secrets", {}).items():
        if "file" in secret and not (COMPOSE_DIR / secret["file"]).exists():
            missing.append(f"secret {name}: {secret['file']}")
    assert not missing, missing


# --------------------------------------------------------------------------------- start-up order


def test_every_dependency_is_defined_and_enabled_with_its_dependent() -> None:
    document = services()
    for name, service in document.items():
        depends_on = service.get("depends_on", {})
        for dependency in depends_on if isinstance(depends_on, list) else depends_on.keys():
            assert dependency in document, f"{name} depends on undefined {dependency}"
            # A dependency that only another profile enables would stop `up` for this one.
            needed = set(document[dependency].get("profiles", []))
            assert not needed or needed & set(service.get("profiles", [])), (name, dependency)


def test_postgres_then_migrate_then_the_gateway() -> None:
    document = services()
    assert document["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert document["migrate"]["command"] == ["migrate"]
    assert document["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert document["migrate"].get("restart") == "no"
    assert set(gateways()) == {"gateway", "gateway-demo"}
    for name, gateway in gateways().items():
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        # The gateway and the migration use the same database.
        assert environment(gateway)["ITSM_DATABASE_URL"] == environment(document["migrate"])["ITSM_DATABASE_URL"]
        assert urlsplit(environment(gateway)["ITSM_DATABASE_URL"]).hostname == "postgres"


def test_the_gateway_serves_two_workers_health_checked_on_a_read_only_root() -> None:
    for name, gateway in gateways().items():
        assert gateway["command"][:3] == ["serve", "--workers", "2"], name
        assert gateway["healthcheck"]["test"][:3] == ["CMD", "itsm-gateway", "health"], name
        assert gateway["read_only"] is True and "/tmp" in gateway["tmpfs"], name
        assert gateway["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        config_path = environment(gateway)["ITSM_CONFIG"]
        assert mounted_file(gateway, config_path).is_file(), name
    live = services()["gateway"]
    # The live gateway never runs open: its tokens come from a compose secret.
    assert "--allow-unauthenticated" not in live["command"]
    assert environment(live)["ITSM_AUTH_TOKENS_FILE"] == "/run/secrets/itsm_tokens"
    assert "itsm_tokens" in live["secrets"]


# ------------------------------------------------------------------------------ monitoring wiring


def prometheus_config() -> tuple[dict[str, Any], Path]:
    path = mounted_file(services()["prometheus"], "/etc/prometheus/prometheus.yml")
    return yaml.safe_load(path.read_text(encoding="utf-8")), path


def test_prometheus_scrapes_the_gateway_service_and_loads_the_alert_rules() -> None:
    config, _ = prometheus_config()
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "itsm-gateway")
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == ["gateway:9464"]
    host, port = targets[0].split(":")
    for name in gateways():
        assert host in names_in_network(name), f"{name} does not answer to {host}"
        # 9464 is serve's default metrics port; nothing in compose moves it.
        assert "--metrics-port" not in services()[name]["command"]
        assert "ITSM_METRICS_PORT" not in environment(services()[name])
    assert port == "9464"
    for rule_file in config["rule_files"]:
        target = rule_file if rule_file.startswith("/") else f"/etc/prometheus/{rule_file}"
        mounted = mounted_file(services()["prometheus"], target)
        assert mounted == (ROOT / "deploy/prometheus/alerts.yml").resolve()


_PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(_PROMTOOL is None, reason="promtool not on PATH (apt-get install prometheus)")
def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    assert _PROMTOOL is not None
    # Laid out as the container sees /etc/prometheus.
    prometheus = services()["prometheus"]
    for _, target in mounts(prometheus):
        if target.startswith("/etc/prometheus/"):
            shutil.copy(mounted_file(prometheus, target), tmp_path / Path(target).name)
    done = subprocess.run([_PROMTOOL, "check", "config", "prometheus.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_reads_the_prometheus_service_and_the_dashboards_folder() -> None:
    grafana = services()["grafana"]
    datasources = yaml.safe_load(
        mounted_file(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    url = urlsplit(datasources[0]["url"])
    assert url.hostname in names_in_network("prometheus") and url.port == 9090
    provider = yaml.safe_load(
        mounted_file(grafana, "/etc/grafana/provisioning/dashboards/itsm.yml").read_text()
    )["providers"][0]
    dashboards = mounted_file(grafana, provider["options"]["path"])
    assert (dashboards / "itsm_analytics.json").is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_started"


# ------------------------------------------------------------------------------------ demo profile


def demo_config() -> dict[str, Any]:
    gateway = services()["gateway-demo"]
    path = mounted_file(gateway, environment(gateway)["ITSM_CONFIG"])
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_demo_profile_adds_the_sandbox_and_points_the_gateway_at_it() -> None:
    sandbox = services()["sandbox"]
    assert sandbox["profiles"] == [DEMO_PROFILE]
    assert services()["gateway-demo"]["profiles"] == [DEMO_PROFILE]
    assert sandbox["command"] == ["sandbox", "--host", "0.0.0.0"]
    assert {p.rsplit(":", 1)[-1] for p in sandbox["ports"]} == {"8081", "8082"}
    platforms = demo_config()["platforms"]
    assert platforms["servicenow"]["base_url"] == "http://sandbox:8081"
    assert platforms["jira"]["base_url"] == "http://sandbox:8082"
    assert platforms["jira"]["api_version"] == 3
    for platform in platforms.values():
        assert urlsplit(platform["base_url"]).hostname in names_in_network("sandbox")


def test_the_demo_config_is_the_shipped_one_but_for_the_base_urls() -> None:
    shipped = json.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    demo = demo_config()
    for name in ("servicenow", "jira"):
        demo["platforms"][name]["base_url"] = shipped["platforms"][name]["base_url"]
    assert demo == shipped, "copy config/itsm_config.json again, changing only the base_urls"


def test_the_demo_config_loads_with_the_demo_environment_only() -> None:
    config = parse_config(demo_config(), environment(services()["gateway-demo"]))
    assert set(config.enabled_platforms()) == {"servicenow", "jira"}


def test_sandbox_credentials_appear_in_the_demo_profile_only() -> None:
    for name, service in services().items():
        if DEMO_PROFILE in service.get("profiles", []):
            continue
        leaked = SANDBOX_CREDENTIALS & set(environment(service).values())
        assert not leaked, f"{name} carries {leaked}"


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all held open until all are picked, so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _gateway_binary() -> str:
    return str(Path(sys.executable).parent / "itsm-gateway")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(check: Any, what: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        assert process.poll() is None, f"{what} exited {process.returncode}:\n{log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready within {seconds} s:\n{log.read_text()}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_the_demo_gateway_creates_tickets_in_the_sandbox(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The demo profile's config and credentials against the real sandbox, as compose would run them,
    with the host names swapped for loopback ports (compose's DNS is not here)."""
    sandbox = services()["sandbox"]
    sn_port, jira_port, grpc_port = _free_ports(3)
    sandbox_log = tmp_path / "sandbox.log"
    with sandbox_log.open("wb") as sink:
        # The compose command, on loopback and free ports instead of 0.0.0.0:8081/8082.
        command = [arg for arg in sandbox["command"] if arg not in ("--host", "0.0.0.0")]
        processes.append(subprocess.Popen(
            [_gateway_binary(), *command, "--host", "127.0.0.1",
             "--servicenow-port", str(sn_port), "--jira-port", str(jira_port)],
            cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT,
        ))
    for port in (sn_port, jira_port):
        _wait_for(lambda p=port: _answers(f"http://127.0.0.1:{p}/_sandbox/stats"), "sandbox", processes[0],
                  sandbox_log)

    config = demo_config()
    config["platforms"]["servicenow"]["base_url"] = f"http://127.0.0.1:{sn_port}"
    config["platforms"]["jira"]["base_url"] = f"http://127.0.0.1:{jira_port}"
    config_path = tmp_path / "itsm_config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    demo = services()["gateway-demo"]
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "ITSM_LOG_FORMAT": "text",
        **environment(demo),
        "ITSM_CONFIG": str(config_path),
        "ITSM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/itsm.db",
    }
    # `--workers` is left out: this test is about the config and credentials, and runs one process.
    flags = [arg for arg in demo["command"] if arg == "--allow-unauthenticated"]
    gateway_log = tmp_path / "gateway.log"
    with gateway_log.open("wb") as sink:
        processes.append(subprocess.Popen(
            [_gateway_binary(), "serve", *flags, "--grpc-port", str(grpc_port), "--metrics-port", "0",
             "--web-port", "0"],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
        ))
    _wait_for(lambda: "itsm-gateway serving gRPC" in gateway_log.read_text(), "gateway", processes[1],
              gateway_log)

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = ticket_service_pb2_grpc.TicketServiceStub(channel)
        keys = {}
        for platform, fields in (
            (common_pb2.PLATFORM_SERVICENOW, {"summary": "compose demo", "urgency": "1", "impact": "2"}),
            (common_pb2.PLATFORM_JIRA, {"summary": "compose demo", "labels": "demo"}),
        ):
            reply = stub.CreateTicket(
                ticket_service_pb2.CreateTicketRequest(
                    platform=platform, request_id=f"compose-demo-{platform}", fields=fields
                ),
                timeout=30,
            )
            assert reply.ticket.state == common_pb2.TICKET_STATE_CREATED
            keys[platform] = reply.ticket.external_key
    assert keys[common_pb2.PLATFORM_SERVICENOW].startswith("INC")
    assert keys[common_pb2.PLATFORM_JIRA].startswith("OPS-")
