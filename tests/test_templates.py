"""Templates: parsing at load, safe rendering, every variable problem at once, the shipped templates."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from server.domain.fitting import MARK, fit_lengths
from server.domain.payload import build_payload
from server.domain.rules import Limits
from server.domain.templates import (
    CompiledTemplate,
    JobContext,
    Ref,
    TemplateError,
    TemplateSpec,
    compile_template,
    compiled_template,
    iso_utc,
    measure_variables,
    parse_text,
    render,
    render_and_validate,
)
from server.domain.validation import Reason, Violation, validate
from server.runtime.config import ConfigError, load_config
from tests.shipped import CONFIG_PATH, DUMMY_ENV, config

JOB = JobContext(id="job-42", time=datetime(2024, 5, 1, 12, 30, 5, 999_999, tzinfo=UTC))
LIMITS = Limits()


def make(fields: dict[str, str], required: tuple[str, ...] = (), name: str = "t") -> CompiledTemplate:
    spec = TemplateSpec(
        name=name, platform="jira", description="", required_variables=required, fields=fields
    )
    return compile_template(spec)


def shipped(name: str) -> CompiledTemplate:
    return compiled_template(config().templates[name])


def pairs(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.field, v.reason) for v in violations]


# --- parsing ----------------------------------------------------------------------------------


def test_parse_splits_literals_and_variables() -> None:
    assert parse_text("P1: {service.name} on {alert.host}!") == (
        "P1: ",
        Ref("service.name"),
        " on ",
        Ref("alert.host"),
        "!",
    )
    assert parse_text("") == ()
    assert parse_text("plain") == ("plain",)


def test_doubled_braces_are_literal_braces() -> None:
    assert parse_text("{{x}} {{{y}}} }}{{") == ("{x} {", Ref("y"), "} }{")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{0}", "invalid placeholder {0}"),
        ("{x.__class__}", "may not start with '__'"),
        ("{__import__}", "may not start with '__'"),
        ("{a[0]}", "invalid placeholder {a[0]}"),
        ("{a!r}", "invalid placeholder {a!r}"),
        ("{a:>10}", "invalid placeholder {a:>10}"),
        ("{ a }", "invalid placeholder"),
        ("{a.}", "invalid placeholder"),
        ("{a..b}", "invalid placeholder"),
        ("{}", "empty placeholder"),
        ("open {a", "unbalanced '{' at character 5"),
        ("close a}", "unbalanced '}' at character 7"),
        ("{a{b}}", "unbalanced '{' at character 0"),
    ],
)
def test_bad_placeholders_are_refused_at_parse(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_text(text)
    assert message in str(caught.value)


def test_compile_names_the_template_and_field() -> None:
    with pytest.raises(TemplateError) as caught:
        make({"summary": "ok", "description": "bad {x.__class__}"}, required=("x",), name="demo")
    assert caught.value.where == "fields.description"
    assert str(caught.value).startswith("template 'demo', fields.description: invalid placeholder")


def test_a_template_may_use_only_declared_variables_and_job_id_time() -> None:
    make({"summary": "{a} {job.id} {job.time}"}, required=("a",))
    with pytest.raises(TemplateError, match=r"\{b\} is not declared"):
        make({"summary": "{a} {b}"}, required=("a",))
    with pytest.raises(TemplateError, match=r"\{job.name\} is not declared"):
        make({"summary": "{job.name}"})


@pytest.mark.parametrize("declared", ["job", "job.id"])
def test_a_template_cannot_declare_the_job_namespace(declared: str) -> None:
    with pytest.raises(TemplateError) as caught:
        make({"summary": "s"}, required=(declared,))
    assert caught.value.where == "required_variables"


def write_config(tmp_path: Path, change: dict[str, Any]) -> Path:
    raw = json.loads(CONFIG_PATH.read_text(encoding="utf-8"))
    raw["templates"]["servicenow_service_outage"].update(change)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("summary", "problem"),
    [
        ("P1 {service.name.__class__}", "may not start with '__'"),
        ("P1 {0}", "invalid placeholder {0}"),
        ("P1 {service.name", "unbalanced '{'"),
        ("P1 {undeclared}", "{undeclared} is not declared in required_variables"),
    ],
)
def test_config_load_refuses_a_bad_template_naming_the_json_path(
    tmp_path: Path, summary: str, problem: str
) -> None:
    fields = {"summary": summary, "impact": "1"}
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, {"fields": fields}), env=DUMMY_ENV)
    assert caught.value.path == "templates.servicenow_service_outage.fields.summary"
    assert problem in caught.value.problem


def test_config_load_refuses_a_declared_job_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, {"required_variables": ["job"]}), env=DUMMY_ENV)
    assert caught.value.path == "templates.servicenow_service_outage.required_variables"


def test_shipped_templates_are_compiled_at_load() -> None:
    for spec in config().templates.values():
        assert spec.compiled is not None
        assert spec.compiled.name == spec.name
        assert set(spec.compiled.fields) == set(spec.fields)


# --- rendering --------------------------------------------------------------------------------


def test_nested_variables_and_job_context_are_inserted() -> None:
    template = make(
        {"summary": "{alert.labels.severity} on {alert.host}", "description": "{job.id} {job.time}"},
        required=("alert.labels.severity", "alert.host"),
    )
    variables = {"alert": {"host": "web-7", "labels": {"severity": "critical"}}}
    result = render(template, variables, JOB, LIMITS)
    assert result.violations == []
    assert result.fields == {
        "summary": "critical on web-7",
        "description": "job-42 2024-05-01T12:30:05Z",
    }


def test_job_time_is_utc_to_the_second() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2024, 5, 1, 14, 30, 5, 500_000, tzinfo=plus_two)) == "2024-05-01T12:30:05Z"
    assert iso_utc(datetime(2024, 5, 1, 12, 30, 5)) == "2024-05-01T12:30:05Z"  # naive is UTC


def test_every_missing_variable_is_reported_at_once_and_renders_empty() -> None:
    template = make(
        {"summary": "{a} / {b.c} / {d}", "description": "fixed"}, required=("a", "b.c", "d")
    )
    result = render(template, {"b": "not an object", "d": "here"}, JOB, LIMITS)
    assert pairs(result.violations) == [
        ("variables.a", Reason.MISSING_VARIABLE),
        ("variables.b.c", Reason.MISSING_VARIABLE),
    ]
    assert "variables.b is not an object" in result.violations[1].description
    assert result.fields == {"summary": " /  / here", "description": "fixed"}
    assert result.incomplete == {"summary"}


def test_a_declared_variable_that_no_field_uses_must_still_be_present() -> None:
    template = make({"summary": "s"}, required=("context",))
    assert pairs(render(template, {}, JOB, LIMITS).violations) == [
        ("variables.context", Reason.MISSING_VARIABLE)
    ]
    assert render(template, {"context": {"any": ["shape"]}}, JOB, LIMITS).violations == []


@pytest.mark.parametrize(
    "value",
    ["{job.id}", "{{", "}}", "{0}{x.__class__}", "{a!r:>10}", "%s %(x)s", "${a}", "{{job.time}}"],
)
def test_values_are_inserted_literally_and_never_expanded(value: str) -> None:
    template = make({"summary": "[{a}] {job.id}"}, required=("a",))
    result = render(template, {"a": value}, JOB, LIMITS)
    assert result.violations == []
    assert result.fields["summary"] == f"[{value}] job-42"


def test_job_id_from_the_request_is_inserted_literally_too() -> None:
    template = make({"summary": "{job.id}"})
    job = JobContext(id="{job.time}", time=JOB.time)
    assert render(template, {}, job, LIMITS).fields["summary"] == "{job.time}"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1e20, "1e+20"),
        (float(2**53), "9007199254740992.0"),
        (7, "7"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ("text", "text"),
    ],
)
def test_struct_like_scalars_format_as_json_would(value: object, text: str) -> None:
    template = make({"summary": "<{n}>"}, required=("n",))
    result = render(template, {"n": value}, JOB, LIMITS)
    assert result.violations == []
    assert result.fields["summary"] == f"<{text}>"


class Sneaky:
    def __str__(self) -> str:
        raise AssertionError("str() was called on caller data")


@pytest.mark.parametrize(
    ("value", "got"),
    [({"k": "v"}, "got an object"), (["a"], "got a list"), (Sneaky(), "unsupported value")],
)
def test_a_non_scalar_value_is_a_type_violation_reported_once(value: object, got: str) -> None:
    template = make({"summary": "{a}", "description": "again {a}"}, required=("a",))
    result = render(template, {"a": value}, JOB, LIMITS)
    assert result.violations == [
        Violation(
            "variables.a",
            f"must be a scalar (string, number, boolean or null); {got}",
            Reason.TYPE,
        )
    ]
    assert result.fields == {"summary": "", "description": "again "}


def test_a_caller_job_variable_is_reserved_and_does_not_override_job_id() -> None:
    template = make({"summary": "{job.id}"})
    result = render(template, {"job": {"id": "forged"}}, JOB, LIMITS)
    assert pairs(result.violations) == [("variables.job", Reason.RESERVED)]
    assert result.fields["summary"] == "job-42"


def test_an_oversized_value_is_a_violation_on_its_variable() -> None:
    limits = Limits(max_field_value_chars=100)
    template = make({"summary": "{a}{b}"}, required=("a", "b"))
    result = render(template, {"a": "x" * 101, "b": "ok"}, JOB, limits)
    assert pairs(result.violations) == [("variables.a", Reason.MAX_LENGTH)]
    assert result.fields["summary"] == "ok"


def test_oversized_variables_are_refused_whole() -> None:
    template = make({"summary": "{a}"}, required=("a",))
    limits = Limits(max_variables_bytes=1000)
    measured = render(template, {"a": "x" * 2000}, JOB, limits)
    given = render(template, {"a": "x"}, JOB, limits, variables_bytes=1001)
    for result in (measured, given):
        assert pairs(result.violations) == [("variables", Reason.MAX_SIZE)]
        assert result.fields == {}
    assert render(template, {"a": "x"}, JOB, limits, variables_bytes=1000).violations == []


def test_measure_variables_counts_utf8_and_stops_past_the_limit() -> None:
    assert measure_variables({}, 100) == 0
    small = measure_variables({"a": "é", "n": 1.0, "l": [True, None]}, 1000)
    assert small == (1 + 2) + (2 + 2) + (1 + 2) + 8 + (1 + 2) + 2 + 8 + 8
    huge = {f"k{i}": {"deep": ["x" * 100] * 100} for i in range(1000)}
    assert 1000 < measure_variables(huge, 1000) < 200_000  # stopped early, not the ~10 MB total
    flat = dict.fromkeys(map(str, range(200_000)), 1.0)
    assert 1000 < measure_variables(flat, 1000) < 1100  # one huge object is not walked to its end


def test_a_constant_field_renders_without_variables() -> None:
    template = make({"summary": "no {{placeholders}} here", "priority": "High"})
    assert render(template, {}, JOB, LIMITS).fields == {
        "summary": "no {placeholders} here",
        "priority": "High",
    }


# --- the shipped templates, through validation to a payload -----------------------------------

SHIPPED_VARIABLES: dict[str, dict[str, Any]] = {
    "servicenow_service_outage": {
        "service": {"name": "checkout"},
        "alert": {"host": "web-07", "summary": "HTTP 5xx above 20% for 5 minutes"},
    },
    "servicenow_batch_job_failed": {
        "job_name": "nightly-export",
        "error": {"message": "exit status 3", "code": 3.0},
    },
    "jira_job_failure_bug": {"pipeline": "etl-main", "error": {"message": "OOMKilled"}},
    "jira_ops_task": {"title": "Rotate TLS certificates", "details": "Expiring in 14 days."},
}


@pytest.mark.parametrize("name", sorted(SHIPPED_VARIABLES))
def test_each_shipped_template_renders_to_a_valid_payload(name: str) -> None:
    spec = config().templates[name]
    rules = config().field_mapping[spec.platform]
    outcome = render_and_validate(
        shipped(name), SHIPPED_VARIABLES[name], JOB, rules, config().limits
    )
    assert outcome.ok, outcome.violations
    assert set(outcome.rendered) == set(spec.fields)
    assert all("{" not in value for value in outcome.rendered.values())
    payload = build_payload(rules, outcome.fields)
    assert payload  # every shipped template fills its platform's required fields


def test_outage_template_renders_the_expected_text() -> None:
    result = render(
        shipped("servicenow_service_outage"),
        SHIPPED_VARIABLES["servicenow_service_outage"],
        JOB,
        config().limits,
    )
    assert result.fields["summary"] == "P1 outage: checkout down on web-07"
    assert result.fields["description"] == (
        "HTTP 5xx above 20% for 5 minutes\n\nService: checkout\nHost: web-07\nJob: job-42\n"
        "Reported by the ITSM gateway at 2024-05-01T12:30:05Z."
    )
    assert result.fields["configuration_item"] == "web-07"


def test_jira_bug_payload_carries_the_rendered_labels() -> None:
    rules = config().field_mapping["jira"]
    outcome = render_and_validate(
        shipped("jira_job_failure_bug"),
        SHIPPED_VARIABLES["jira_job_failure_bug"],
        JOB,
        rules,
        config().limits,
    )
    payload = build_payload(rules, outcome.fields)
    assert payload["fields"]["labels"] == ["job-failure", "etl-main"]
    assert payload["fields"]["issuetype"] == {"name": "Bug"}
    assert payload["fields"]["summary"] == "Job job-42 of etl-main failed"


def test_missing_variables_are_not_echoed_as_field_violations() -> None:
    outcome = render_and_validate(
        shipped("jira_ops_task"), {}, JOB, config().field_mapping["jira"], config().limits
    )
    # summary renders "" but is not reported REQUIRED: the missing variable is the cause.
    assert pairs(outcome.violations) == [
        ("variables.title", Reason.MISSING_VARIABLE),
        ("variables.details", Reason.MISSING_VARIABLE),
    ]
    assert outcome.rendered["summary"] == ""


def test_a_rendered_value_that_breaks_a_field_rule_is_reported_on_the_field() -> None:
    outcome = render_and_validate(
        shipped("jira_job_failure_bug"),
        {"pipeline": "etl main", "error": {"message": "boom"}},
        JOB,
        config().field_mapping["jira"],
        config().limits,
    )
    assert pairs(outcome.violations) == [("labels[1]", Reason.PATTERN)]


def test_a_long_rendered_summary_is_reported_by_the_validator() -> None:
    variables = {"title": "t" * 300, "details": "d"}
    outcome = render_and_validate(
        shipped("jira_ops_task"), variables, JOB, config().field_mapping["jira"], config().limits
    )
    assert pairs(outcome.violations) == [("summary", Reason.MAX_LENGTH)]


def test_render_output_goes_through_the_same_validator() -> None:
    result = render(shipped("jira_ops_task"), {"title": "T", "details": "D"}, JOB, config().limits)
    checked = validate(config().field_mapping["jira"], result.fields, config().limits)
    assert checked.ok
    assert checked.fields_with_defaults["labels"] == "ops"


# --- fitting (the Alertmanager path: a notification cannot be edited) ----------------------------


def test_fit_cuts_string_fields_to_their_length_with_a_mark() -> None:
    rules = config().field_mapping["servicenow"]
    template = make({"summary": "{title}", "description": "{title}"}, ("title",))
    long = {"title": "disk full " * 40}
    refused = render_and_validate(template, long, JOB, rules, LIMITS)
    assert pairs(refused.violations) == [("summary", Reason.MAX_LENGTH)]
    fitted = render_and_validate(template, long, JOB, rules, LIMITS, fit=True)
    assert fitted.ok
    assert len(fitted.fields["summary"]) <= 160 and fitted.fields["summary"].endswith(MARK)
    assert fitted.fields["description"] == long["title"]  # within its 4000: untouched


def test_fit_leaves_what_cutting_cannot_make_right() -> None:
    rules = config().field_mapping["jira"]
    fields = {"summary": "s", "labels": "has space," + "x" * 300, "priority": "Urgent", "colour": "red"}
    assert fit_lengths(rules, fields, LIMITS.max_field_value_chars) == fields
    tiny = {"summary": "abc"}
    assert fit_lengths({"summary": replace(rules["summary"], max_length=1)}, tiny, 100) == {"summary": "a"}
