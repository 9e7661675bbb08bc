"""Rendered text cut to fit its field: for callers that cannot fix what they send.

A person calling CreateTicketFromTemplate with a summary too long gets a violation and shortens it.
An Alertmanager notification cannot be edited, and Alertmanager does not retry a refusal: its
annotations (written long before, by someone else) would cost the ticket. So on that path a string
field over its length is cut, with a mark that says so, before validation judges it. Lists, enums and
patterns are left as they are: cutting cannot make them right.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from server.domain.rules import FieldRule

MARK: Final = "…"  # one character: the reader sees the text was cut


def fit_lengths(rules: Mapping[str, FieldRule], fields: Mapping[str, str], cap: int) -> dict[str, str]:
    """fields with every string value longer than its rule's max_length (and than cap, the limit on
    any value) cut to it, ending in MARK. Fields without a rule are left for validation to name."""
    fitted: dict[str, str] = {}
    for name, value in fields.items():
        rule = rules.get(name)
        if rule is None or rule.type != "string":
            fitted[name] = value
            continue
        limit = cap if rule.max_length is None else min(rule.max_length, cap)
        fitted[name] = value if len(value) <= limit else _cut(value, limit)
    return fitted


def _cut(value: str, limit: int) -> str:
    if limit <= len(MARK):
        return value[:limit]
    return value[: limit - len(MARK)].rstrip() + MARK
