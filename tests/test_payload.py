"""Validated canonical fields -> platform payloads, with the shipped field mappings."""

from __future__ import annotations

import pytest

from server.domain.payload import build_payload
from server.domain.validation import validate
from tests.shipped import config


def payload_for(platform: str, fields: dict[str, str]) -> dict[str, object]:
    rules = config().field_mapping[platform]
    result = validate(rules, fields, config().limits)
    assert result.ok, result.violations
    return build_payload(rules, result.fields_with_defaults)


def test_servicenow_payload_is_flat_with_mapped_names_and_an_int() -> None:
    payload = payload_for(
        "servicenow",
        {
            "summary": "Disk full on db-01",
            "caller": "jdoe",
            "configuration_item": "db-01",
            "impact": "1",
            "reassignment_count": "+2",
        },
    )
    assert payload == {
        "short_description": "Disk full on db-01",
        "impact": "1",
        "urgency": "3",
        "caller_id": "jdoe",
        "contact_type": "monitoring",
        "cmdb_ci": "db-01",
        "reassignment_count": 2,
    }


def test_jira_payload_is_nested_with_lists_objects_and_an_int() -> None:
    payload = payload_for(
        "jira",
        {
            "summary": "Export failed",
            "issue_type": "Bug",
            "labels": "export, nightly,,",
            "components": "api , db",
            "fix_versions": "1.2",
            "parent": "OPS-7",
            "customfield_10016": "5",
            "customfield_10010": "Platform",
        },
    )
    assert payload == {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Bug"},
            "summary": "Export failed",
            "priority": {"name": "Medium"},
            "labels": ["export", "nightly"],
            "components": [{"name": "api"}, {"name": "db"}],
            "fixVersions": [{"name": "1.2"}],
            "parent": {"key": "OPS-7"},
            "customfield_10010": "Platform",
            "customfield_10016": 5,
        }
    }


def test_negative_int_becomes_a_json_int() -> None:
    rules = config().field_mapping["jira"]
    assert build_payload(rules, {"customfield_10016": "-0"}) == {"fields": {"customfield_10016": 0}}


def test_a_field_without_a_rule_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="validate the fields first"):
        build_payload(config().field_mapping["servicenow"], {"nope": "x"})


def test_build_payload_does_not_touch_its_input() -> None:
    fields = {"summary": "s", "labels": "a,b"}
    build_payload(config().field_mapping["jira"], fields)
    assert fields == {"summary": "s", "labels": "a,b"}
