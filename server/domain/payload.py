"""Validated canonical fields -> the platform's JSON payload, placed by each rule's path.

Pure and small: it trusts validation.validate to have run (ints parse, lists are within bounds), and
config loading to have refused overlapping paths (so nested objects never collide).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.rules import FieldRule
from server.domain.validation import split_list


def build_payload(rules: Mapping[str, FieldRule], fields: Mapping[str, str]) -> dict[str, Any]:
    """Place every field at its rule's path: int -> JSON int, list -> JSON list."""
    payload: dict[str, Any] = {}
    for name, value in fields.items():
        rule = rules.get(name)
        if rule is None:
            raise ValueError(f"field {name!r} has no rule: validate the fields first")
        _place(payload, rule.path, _json_value(rule, value))
    return payload


def _json_value(rule: FieldRule, value: str) -> Any:
    if not value:
        return None  # an update clearing the field: the platform's "no value"
    if rule.type == "int":
        return int(value)
    if rule.type == "list":
        items = split_list(value)
        if rule.item_key is not None:
            return [{rule.item_key: item} for item in items]
        return items
    return value


def _place(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = payload
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
