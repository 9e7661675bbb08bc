"""The configuration schema: the shipped file loads; every kind of mistake is refused by JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.runtime.config import ConfigError, load_config, parse_config

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "itsm_config.json"
ENV = {
    "SERVICENOW_USERNAME": "svc",
    "SERVICENOW_PASSWORD": "pw",
    "JIRA_EMAIL": "bot@example.com",
    "JIRA_API_TOKEN": "tok",
}


@pytest.fixture
def raw() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text())


def refused(raw: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, ENV if env is None else env)
    return caught.value


def test_shipped_config_loads_with_its_rules_and_templates() -> None:
    config = load_config(SHIPPED, ENV)
    assert config.enabled_platforms() == ["servicenow", "jira"]
    assert len(config.field_mapping["servicenow"]) >= 15
    assert len(config.field_mapping["jira"]) >= 15
    summary = config.field_mapping["servicenow"]["summary"]
    assert summary.path == ("short_description",) and summary.required and summary.max_length == 160
    assert config.field_mapping["jira"]["project"].path == ("fields", "project", "key")
    assert sorted(config.templates) == [
        "jira_alert",
        "jira_job_failure_bug",
        "jira_ops_task",
        "servicenow_alert",
        "servicenow_batch_job_failed",
        "servicenow_service_outage",
    ]
    assert config.retry_policy.max_attempts == 12
    assert config.timeout.total == 60


def test_secrets_come_from_the_environment_and_are_not_printed() -> None:
    config = load_config(SHIPPED, {**ENV, "JIRA_API_TOKEN": "canary-5ecret"})
    settings = config.platforms["jira"].settings
    assert settings is not None and settings.credentials.password == "canary-5ecret"
    assert "canary-5ecret" not in repr(config)


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [
        (lambda r: r.update(surprise=1), "surprise", "unknown key"),
        (lambda r: r["retry_policy"].update(max_attempts="3"), "retry_policy.max_attempts", "integer"),
        (lambda r: r["retry_policy"].update(retryable_statuses=[503, 400]), "retry_policy.retryable_statuses[1]", "never retried"),
        (lambda r: r["timeout"].update(total_seconds=120), "timeout.total_seconds", "at most 60"),
        (lambda r: r["platforms"]["jira"].update(api_version=4), "platforms.jira.api_version", "2"),
        (lambda r: r["platforms"]["jira"].update(base_url="ftp://x"), "platforms.jira.base_url", "http"),
        (lambda r: r["platforms"]["jira"].update(base_url="https://u:p@x.example"), "platforms.jira.base_url", "credentials"),
        (lambda r: r["platforms"]["servicenow"]["auth"].update(type="ntlm"), "platforms.servicenow.auth.type", "basic"),
        (lambda r: r["field_mapping"]["jira"]["labels"].update(pattern="[a-"), "field_mapping.jira.labels.pattern", "regular expression"),
        (lambda r: r["field_mapping"]["jira"]["summary"].update(max_lenght=3), "field_mapping.jira.summary.max_lenght", "unknown key"),
        (lambda r: r["field_mapping"]["jira"]["summary"].update(type="float"), "field_mapping.jira.summary.type", "string, int or list"),
        (lambda r: r["templates"]["jira_ops_task"]["fields"].update(colour="red"), "templates.jira_ops_task.fields.colour", "unknown jira field"),
        (lambda r: r["templates"]["jira_ops_task"].update(platform="remedy"), "templates.jira_ops_task.platform", "servicenow"),
        (lambda r: r["sla"].update(at_risk_ratio=2), "sla.at_risk_ratio", "between 0 and 1"),
        (lambda r: r["limits"].update(max_concurrent_rpcs=0), "limits.max_concurrent_rpcs", "at least 1"),
    ],
)
def test_each_mistake_is_refused_naming_its_json_path(
    raw: dict[str, Any], mutate: Any, path: str, problem: str
) -> None:
    mutate(raw)
    error = refused(raw)
    assert error.path == path
    assert problem in error.problem


def test_missing_secret_variable_of_an_enabled_platform_is_refused(raw: dict[str, Any]) -> None:
    env = {k: v for k, v in ENV.items() if k != "JIRA_API_TOKEN"}
    error = refused(raw, env)
    assert error.path == "platforms.jira.auth.password_env"
    assert "JIRA_API_TOKEN is not set" in error.problem


def test_a_disabled_platform_needs_no_secrets(raw: dict[str, Any]) -> None:
    raw["platforms"]["jira"]["enabled"] = False
    env = {k: v for k, v in ENV.items() if not k.startswith("JIRA")}
    config = parse_config(raw, env)
    assert config.enabled_platforms() == ["servicenow"]


def test_no_enabled_platform_is_refused(raw: dict[str, Any]) -> None:
    for block in raw["platforms"].values():
        block["enabled"] = False
    assert refused(raw).path == "platforms"


def test_overlapping_payload_paths_are_refused(raw: dict[str, Any]) -> None:
    raw["field_mapping"]["jira"]["project_name"] = {"path": "fields.project"}
    error = refused(raw)
    assert error.path.startswith("field_mapping.jira.")
    assert "overlaps" in error.problem


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json", ENV)
    broken = tmp_path / "broken.json"
    broken.write_text("{\n  \"platforms\": ,\n}")
    with pytest.raises(ConfigError, match="invalid JSON at line 2"):
        load_config(broken, ENV)


def test_config_errors_never_echo_secret_values(raw: dict[str, Any]) -> None:
    bad = copy.deepcopy(raw)
    bad["platforms"]["servicenow"]["auth"]["password_env"] = "not a name"
    error = refused(bad, {**ENV, "SERVICENOW_PASSWORD": "canary-5ecret"})
    assert "canary-5ecret" not in str(error)


def test_the_readme_lifecycle_and_dedup_blocks_are_accepted_as_written(raw: dict[str, Any]) -> None:
    """The README's "Lifecycle and dedup configuration" example, parsed by the real parser."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Lifecycle and dedup configuration", 1)[1]
    snippet = section.split("```json", 1)[1].split("```", 1)[0]
    blocks = json.loads("{" + snippet + "}")
    for name, block in blocks.items():
        raw["platforms"][name].update(block)
    config = parse_config(raw, ENV)
    jira = config.platforms["jira"].settings.lifecycle
    assert jira.resolve_via == ("In Progress", "Start Progress")
    assert jira.internal_visibility == {"type": "role", "value": "Developers"}
    assert config.platforms["servicenow"].dedup.reopen_window_seconds == 3600
    assert config.platforms["servicenow"].settings.lifecycle.dedup_field == "correlation_display"


# --- alertmanager receivers -----------------------------------------------------------------------


def test_shipped_alertmanager_receivers() -> None:
    config = load_config(SHIPPED, ENV)
    receivers = config.alertmanager.receivers
    assert sorted(receivers) == ["ops_jira", "ops_servicenow"]
    assert receivers["ops_servicenow"].template == "servicenow_alert"
    assert receivers["ops_servicenow"].on_resolved == "resolve"
    assert receivers["ops_servicenow"].dedup_labels is None  # the group labels
    assert receivers["ops_jira"].on_resolved == "comment" and receivers["ops_jira"].text.max_chars == 8000
    assert config.alertmanager.timeout_seconds == 8


def test_no_alertmanager_block_means_no_receivers(raw: dict[str, Any]) -> None:
    del raw["alertmanager"]
    assert parse_config(raw, ENV).alertmanager.receivers == {}


RECEIVER = "alertmanager.receivers.ops_jira"


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        ({"template": "nope"}, f"{RECEIVER}.template", "unknown template 'nope'"),
        ({"template": "jira_ops_task"}, f"{RECEIVER}.template", "needs 'title', which an Alertmanager"),
        ({"on_resolved": "close"}, f"{RECEIVER}.on_resolved", "resolve, comment, nothing"),
        ({"dedup_labels": []}, f"{RECEIVER}.dedup_labels", "at least one label"),
        ({"dedup_labels": ["a", "a"]}, f"{RECEIVER}.dedup_labels[1]", "named twice"),
        ({"dedup_labels": "alertname"}, f"{RECEIVER}.dedup_labels", "array"),
        ({"resolution": "x" * 256}, f"{RECEIVER}.resolution", "at most 255"),
        ({"alerts_text": {"max_chars": 50}}, f"{RECEIVER}.alerts_text.max_chars", "between 200"),
        ({"alerts_text": {"max_lines": 5}}, f"{RECEIVER}.alerts_text.max_lines", "unknown key"),
        ({"send_resolved": True}, f"{RECEIVER}.send_resolved", "unknown key"),
    ],
)
def test_each_receiver_mistake_is_refused_naming_its_json_path(
    raw: dict[str, Any], change: dict[str, Any], path: str, problem: str
) -> None:
    raw["alertmanager"]["receivers"]["ops_jira"].update(change)
    error = refused(raw)
    assert (error.path, problem in error.problem) == (path, True), error


def test_receiver_names_and_the_timeout(raw: dict[str, Any]) -> None:
    receivers = raw["alertmanager"]["receivers"]
    receivers["a/b"] = receivers["ops_jira"]
    assert refused(raw).path == "alertmanager.receivers.a/b"
    del receivers["a/b"]
    raw["alertmanager"]["timeout_seconds"] = 61
    assert refused(raw).path == "alertmanager.timeout_seconds"
    raw["alertmanager"] = {"receivers": {}, "bogus": 1}
    assert refused(raw).path == "alertmanager.bogus"


def test_a_template_for_alerts_may_use_only_what_a_notification_provides(raw: dict[str, Any]) -> None:
    raw["templates"]["jira_alert"]["required_variables"].append("commonLabels")
    error = refused(raw)
    assert error.path == f"{RECEIVER}.template" and "'commonLabels'" in error.problem
    assert "commonLabels.<name>" in error.problem  # says what it may use
