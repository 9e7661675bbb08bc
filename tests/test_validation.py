"""Field rules against the shipped configuration: every rule, both platforms, all violations at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from server.domain.rules import FieldRule, Limits
from server.domain.validation import (
    LIST_ITEMS_CAP,
    Reason,
    ValidationResult,
    Violation,
    check_value,
    shown,
    split_list,
    validate,
)
from server.runtime.config import ConfigError, load_config
from tests.shipped import CONFIG_PATH, DUMMY_ENV, config


def check(platform: str, fields: dict[str, str]) -> ValidationResult:
    return validate(config().field_mapping[platform], fields, config().limits)


def reasons(result: ValidationResult) -> list[tuple[str, str]]:
    return [(v.field, v.reason) for v in result.violations]


# --- valid input and defaults -----------------------------------------------------------------


def test_servicenow_summary_alone_is_valid_and_gets_defaults() -> None:
    result = check("servicenow", {"summary": "Disk full on db-01"})
    assert result.ok
    assert result.fields_with_defaults == {
        "summary": "Disk full on db-01",
        "impact": "3",
        "urgency": "3",
        "contact_type": "monitoring",
    }


def test_jira_summary_alone_is_valid_and_gets_defaults() -> None:
    result = check("jira", {"summary": "Nightly export failed"})
    assert result.ok
    assert result.fields_with_defaults == {
        "project": "OPS",
        "issue_type": "Task",
        "summary": "Nightly export failed",
        "priority": "Medium",
    }


def test_given_values_win_over_defaults_and_keep_mapping_order() -> None:
    result = check("jira", {"priority": "High", "summary": "s", "project": "WEB"})
    assert result.ok
    assert list(result.fields_with_defaults) == ["project", "issue_type", "summary", "priority"]
    assert result.fields_with_defaults["priority"] == "High"
    assert result.fields_with_defaults["project"] == "WEB"


def test_empty_string_counts_as_absent() -> None:
    result = check("servicenow", {"summary": "", "impact": "", "description": ""})
    assert reasons(result) == [("summary", Reason.REQUIRED)]
    assert result.fields_with_defaults["impact"] == "3"  # the default, not ""
    assert "description" not in result.fields_with_defaults


def test_a_typical_payload_of_each_platform_is_valid() -> None:
    servicenow = check(
        "servicenow",
        {
            "summary": "Disk full",
            "impact": "1",
            "urgency": "2",
            "category": "database",
            "due_date": "2024-05-01 12:00:00",
            "reassignment_count": "0",
        },
    )
    jira = check(
        "jira",
        {
            "summary": "Export failed",
            "issue_type": "Bug",
            "labels": " export , nightly,,",
            "components": "api,db",
            "parent": "OPS-12",
            "original_estimate": "2d 4h",
            "customfield_10016": "+8",
        },
    )
    assert servicenow.ok, servicenow.violations
    assert jira.ok, jira.violations


# --- one test per rule, both platforms --------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "fields", "expected"),
    [
        ("servicenow", {"description": "no summary"}, ("summary", Reason.REQUIRED)),
        ("jira", {"description": "no summary"}, ("summary", Reason.REQUIRED)),
        ("servicenow", {"summary": "x" * 161}, ("summary", Reason.MAX_LENGTH)),
        ("jira", {"summary": "x" * 255}, ("summary", Reason.MAX_LENGTH)),
        ("servicenow", {"summary": "s", "impact": "4"}, ("impact", Reason.ENUM)),
        ("jira", {"summary": "s", "priority": "Urgent"}, ("priority", Reason.ENUM)),
        ("servicenow", {"summary": "s", "due_date": "tomorrow"}, ("due_date", Reason.PATTERN)),
        ("jira", {"summary": "s", "project": "ops"}, ("project", Reason.PATTERN)),
        ("jira", {"summary": "s", "parent": "OPS-0"}, ("parent", Reason.PATTERN)),
        ("servicenow", {"summary": "s", "reassignment_count": "1.5"}, ("reassignment_count", "TYPE")),
        ("jira", {"summary": "s", "customfield_10016": "five"}, ("customfield_10016", Reason.TYPE)),
        ("servicenow", {"summary": "s", "reassignment_count": "-1"}, ("reassignment_count", "MIN")),
        ("servicenow", {"summary": "s", "reassignment_count": "1001"}, ("reassignment_count", "MAX")),
        ("jira", {"summary": "s", "customfield_10016": "1001"}, ("customfield_10016", Reason.MAX)),
        ("jira", {"summary": "s", "customfield_10016": "-3"}, ("customfield_10016", Reason.MIN)),
        ("jira", {"summary": "s", "labels": ",".join("l" * 21)}, ("labels", Reason.MAX_ITEMS)),
        ("jira", {"summary": "s", "components": ",".join("c" * 11)}, ("components", "MAX_ITEMS")),
        ("jira", {"summary": "s", "components": "x" * 256}, ("components[0]", Reason.MAX_LENGTH)),
        ("servicenow", {"summary": "s", "sumary": "typo"}, ("sumary", Reason.UNKNOWN_FIELD)),
        ("jira", {"summary": "s", "Priority": "High"}, ("Priority", Reason.UNKNOWN_FIELD)),
    ],
)
def test_each_rule_reports_its_reason(
    platform: str, fields: dict[str, str], expected: tuple[str, str]
) -> None:
    assert reasons(check(platform, fields)) == [expected]


@pytest.mark.parametrize("value", [" 5", "5 ", "1_000", "٣", "0x10", "", "+", "1e3", "9" * 19])
def test_int_accepts_only_an_optional_sign_and_ascii_digits(value: str) -> None:
    result = check("servicenow", {"summary": "s", "reassignment_count": value})
    if value == "":
        assert result.ok  # empty is absent, and the field is optional
    else:
        assert reasons(result) == [("reassignment_count", Reason.TYPE)]


@pytest.mark.parametrize("value", ["0", "+7", "-0", "1000", "007"])
def test_int_in_range_passes(value: str) -> None:
    assert check("servicenow", {"summary": "s", "reassignment_count": value}).ok


def test_every_violation_is_reported_at_once_in_mapping_order_then_unknown_sorted() -> None:
    result = check(
        "jira",
        {
            "zeta": "?",
            "labels": "ok,bad label,fine,another bad",
            "priority": "Urgent",
            "project": "ops",
            "issue_type": "Epic",
            "customfield_10016": "x",
            "alpha": "?",
        },
    )
    assert reasons(result) == [
        ("project", Reason.PATTERN),
        ("issue_type", Reason.ENUM),
        ("summary", Reason.REQUIRED),
        ("priority", Reason.ENUM),
        ("labels[1]", Reason.PATTERN),
        ("labels[3]", Reason.PATTERN),
        ("customfield_10016", Reason.TYPE),
        ("alpha", Reason.UNKNOWN_FIELD),
        ("zeta", Reason.UNKNOWN_FIELD),
    ]
    assert "alpha" not in result.fields_with_defaults


def test_list_items_are_stripped_and_empty_items_dropped_before_numbering() -> None:
    result = check("jira", {"summary": "s", "labels": " a ,, ,b c,d"})
    assert reasons(result) == [("labels[1]", Reason.PATTERN)]
    assert split_list(" a ,, ,b c,d") == ["a", "b c", "d"]


def test_a_list_of_only_commas_is_absent() -> None:
    rule = FieldRule(name="tags", path=("tags",), type="list", required=True)
    result = validate({"tags": rule}, {"tags": " , ,"}, Limits())
    assert [(v.field, v.reason) for v in result.violations] == [("tags", Reason.REQUIRED)]


def test_violation_messages_explain_the_rule_without_echoing_the_value() -> None:
    result = check("servicenow", {"summary": "s", "impact": "hunter2", "due_date": "secret-ish"})
    by_field = {v.field: v for v in result.violations}
    assert by_field["impact"].description == "must be one of: 1, 2, 3"
    assert "YYYY-MM-DD" in by_field["due_date"].description
    assert all("hunter2" not in v.description for v in result.violations)
    assert all(isinstance(v, Violation) for v in result.violations)


def test_unknown_field_names_a_close_match() -> None:
    (violation,) = check("servicenow", {"summary": "s", "urgencey": "1"}).violations
    assert violation.description == "unknown field 'urgencey'; did you mean 'urgency'?"


# --- bounded work -----------------------------------------------------------------------------

# Exponential backtracking on "aaaa...a" without a trailing "b": minutes at a few dozen characters.
CATASTROPHIC = re.compile(r"(a+)+b")


def test_value_over_max_length_never_reaches_a_catastrophic_pattern() -> None:
    rule = FieldRule(name="x", path=("x",), max_length=100, pattern=CATASTROPHIC)
    result = validate({"x": rule}, {"x": "a" * 400_000}, Limits())
    assert [(v.field, v.reason) for v in result.violations] == [("x", Reason.MAX_LENGTH)]


def test_values_together_must_fit_half_a_message() -> None:
    """A ticket comes back in answers and list pages that must fit the message size limit."""
    rule = FieldRule(name="x", path=("x",))
    limits = Limits(max_message_bytes=1000, max_field_value_chars=10_000)
    assert validate({"x": rule}, {"x": "a" * 500}, limits).violations == []
    result = validate({"x": rule}, {"x": "a" * 501}, limits)
    assert [(v.field, v.reason) for v in result.violations] == [("fields", Reason.MAX_SIZE)]


def test_server_value_cap_applies_when_the_rule_has_no_max_length() -> None:
    rule = FieldRule(name="x", path=("x",), pattern=CATASTROPHIC)
    limits = Limits(max_field_value_chars=64)
    result = validate({"x": rule}, {"x": "a" * 400_000}, limits)
    assert [(v.field, v.reason) for v in result.violations] == [("x", Reason.MAX_LENGTH)]
    assert "at most 64 characters" in result.violations[0].description


def test_list_items_over_max_length_never_reach_the_pattern() -> None:
    rule = FieldRule(name="x", path=("x",), type="list", max_length=10, pattern=CATASTROPHIC)
    result = validate({"x": rule}, {"x": "ab," + "a" * 5000 + ",aab"}, Limits())
    assert [(v.field, v.reason) for v in result.violations] == [("x[1]", Reason.MAX_LENGTH)]


def test_a_whole_list_over_the_server_cap_is_rejected_before_splitting() -> None:
    rule = FieldRule(name="x", path=("x",), type="list", pattern=CATASTROPHIC)
    limits = Limits(max_field_value_chars=1000)
    result = validate({"x": rule}, {"x": "a," * 100_000}, limits)
    assert [(v.field, v.reason) for v in result.violations] == [("x", Reason.MAX_LENGTH)]


def test_a_list_without_max_items_is_still_capped() -> None:
    rule = FieldRule(name="x", path=("x",), type="list", enum=("y",))
    result = validate({"x": rule}, {"x": ",".join(["n"] * 5000)}, Limits())
    assert result.violations[0].reason == Reason.MAX_ITEMS
    assert len(result.violations) == 1 + LIST_ITEMS_CAP  # items past the cap are not judged


def test_huge_int_is_a_type_error_not_a_slow_parse() -> None:
    result = check("servicenow", {"summary": "s", "reassignment_count": "9" * 400_000})
    assert reasons(result) == [("reassignment_count", Reason.TYPE)]


def test_too_many_fields_is_reported_and_only_the_first_keys_are_named() -> None:
    limit = config().limits.max_fields
    fields = {f"extra_{i:05d}": "v" for i in range(10_000, 0, -1)} | {"impact": "9"}
    result = check("servicenow", fields)
    assert result.violations[0] == Violation(
        "fields", f"at most {limit} fields are allowed, got 10001", Reason.TOO_MANY_FIELDS
    )
    # Every rule is still checked; unknown names come from the first max_fields keys, sorted.
    assert [v.field for v in result.violations[1:3]] == ["summary", "impact"]
    unknown = result.violations[3:]
    assert len(unknown) == limit
    assert [v.field for v in unknown[:2]] == [f"extra_{10_001 - limit:05d}", f"extra_{10_002 - limit:05d}"]
    assert {v.reason for v in unknown} == {Reason.UNKNOWN_FIELD}


def test_a_huge_or_odd_unknown_key_is_truncated_and_escaped() -> None:
    fields = {"summary": "s", "k" * 1_000_000: "v", "bad\nkey\x00\u202e": "v"}
    violations = check("servicenow", fields).violations
    assert [v.reason for v in violations] == [Reason.UNKNOWN_FIELD] * 2
    odd, huge = violations  # sorted: "b" < "k"
    assert huge.field == "k" * 64 + "..."
    assert len(huge.description) < 200
    assert odd.field == "bad\\nkey\\x00\\u202e"
    assert odd.field.isascii() and odd.field.isprintable()


def test_shown_leaves_ordinary_names_alone() -> None:
    assert shown("summary") == "summary"
    assert shown("x" * 64) == "x" * 64
    assert shown("x" * 65) == "x" * 64 + "..."
    assert shown("café") == "caf\\xe9"


def test_check_value_judges_one_value_against_one_rule() -> None:
    rule = config().field_mapping["jira"]["project"]
    assert check_value(rule, "OPS", config().limits) == []
    assert [v.reason for v in check_value(rule, "o", config().limits)] == [Reason.PATTERN]


# --- defaults are checked once, at config load --------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "field", "rule_change", "problem"),
    [
        ("jira", "project", {"default": "ops"}, "breaks its own rule: must match"),
        ("jira", "summary", {"default": ""}, "must not be empty"),
        ("servicenow", "reassignment_count", {"default": "many"}, "must be an integer"),
        ("servicenow", "reassignment_count", {"default": "5000"}, "must be at most 1000"),
        ("servicenow", "subcategory", {"default": "x" * 41}, "at most 40 characters"),
    ],
)
def test_config_load_refuses_a_default_that_breaks_its_own_rule(
    tmp_path: Path, platform: str, field: str, rule_change: dict[str, str], problem: str
) -> None:
    raw = json.loads(CONFIG_PATH.read_text(encoding="utf-8"))
    raw["field_mapping"][platform][field].update(rule_change)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=DUMMY_ENV)
    assert caught.value.path == f"field_mapping.{platform}.{field}.default"
    assert problem in caught.value.problem
