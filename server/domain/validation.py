"""Canonical ticket fields checked against one platform's field rules.

Every violation is reported at once, named by its canonical field ("labels[1]" for the second list
item, 0-based, counted after empty items are dropped), in mapping order, then unknown fields sorted.

Work is bounded whatever the input. More than limits.max_fields fields is TOO_MANY_FIELDS, and then
unknown fields are looked for only among the first max_fields keys (request order). Every value's
length is checked (the rule's max_length and limits.max_field_value_chars) before any regular
expression sees it, so a huge value or a pattern prone to backtracking cannot stall the event loop.
A list is judged on at most max_items items (LIST_ITEMS_CAP when the rule sets none). Names echoed
back are escaped and truncated (shown()).

An empty string, or a list value with no items (",,"), counts as absent: the rule's default applies,
else a required field is REQUIRED, else the field is left out. Values are otherwise passed through
unchanged (no trimming); payload.py turns them into platform types.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from server.domain.rules import FieldRule, Limits


class Reason:
    """Stable reason codes: programs match on these, so they never change."""

    REQUIRED: Final = "REQUIRED"
    MAX_LENGTH: Final = "MAX_LENGTH"
    ENUM: Final = "ENUM"
    PATTERN: Final = "PATTERN"
    TYPE: Final = "TYPE"
    MIN: Final = "MIN"
    MAX: Final = "MAX"
    MAX_ITEMS: Final = "MAX_ITEMS"
    UNKNOWN_FIELD: Final = "UNKNOWN_FIELD"
    TOO_MANY_FIELDS: Final = "TOO_MANY_FIELDS"
    MISSING_VARIABLE: Final = "MISSING_VARIABLE"
    RESERVED: Final = "RESERVED"
    IMMUTABLE: Final = "IMMUTABLE"
    MAX_SIZE: Final = "MAX_SIZE"
    TEMPLATE_ERROR: Final = "TEMPLATE_ERROR"  # for callers: a loaded config never holds a broken template


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem with one field; mirrors itsm.v1.FieldViolation without depending on it."""

    field: str
    description: str
    reason: str


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a microsecond on every request
class ValidationResult:
    fields_with_defaults: dict[str, str]  # known, non-empty fields plus defaults, in mapping order
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


# A list without max_items still has a ceiling, so one value cannot produce thousands of violations.
LIST_ITEMS_CAP: Final = 1000
# Beyond this many digits an int cannot be a sane ticket value, and int() would do needless work.
_INT_MAX_DIGITS: Final = 18
# ASCII digits only: int() would also take "٣", "1_0" and " 7 ".
_INT = re.compile(rf"[+-]?[0-9]{{1,{_INT_MAX_DIGITS}}}", re.ASCII)
_SHOWN_CHARS: Final = 64
_SUGGESTED: Final = 5  # unknown fields that get a "did you mean" (difflib is not free)


def validate(
    rules: Mapping[str, FieldRule], fields: Mapping[str, str], limits: Limits
) -> ValidationResult:
    """Check fields against every rule; return the fields with defaults and every violation."""
    violations: list[Violation] = []
    if len(fields) > limits.max_fields:
        violations.append(
            Violation(
                "fields",
                f"at most {limits.max_fields} fields are allowed, got {len(fields)}",
                Reason.TOO_MANY_FIELDS,
            )
        )
    total, most = sum(map(len, fields.values())), limits.max_message_bytes // 2
    if total > most:
        # A ticket comes back in answers (and in list pages) that must fit the message limit too.
        description = f"all values together must be at most {most} characters, got {total}"
        violations.append(Violation("fields", description, Reason.MAX_SIZE))
    out: dict[str, str] = {}
    cap = limits.max_field_value_chars
    seen = 0
    for name, rule in rules.items():
        value = fields.get(name)
        if value is None:
            pass
        elif value:
            seen += 1
            if _check_value(rule, name, value, cap, violations):
                out[name] = value
                continue
        else:
            seen += 1  # present but empty: counts as absent below
        if rule.default is not None:
            out[name] = rule.default
        elif rule.required:
            violations.append(Violation(name, "is required", Reason.REQUIRED))
    if seen != len(fields):  # only then can there be unknown fields; skips the scan on the hot path
        violations.extend(_unknown_fields(rules, fields, limits.max_fields))
    return ValidationResult(out, violations)


def validate_update(
    rules: Mapping[str, FieldRule], fields: Mapping[str, str], limits: Limits
) -> list[Violation]:
    """Violations of a change to some fields of an existing ticket: only the fields given are
    checked; an empty value clears a field, which a required one refuses; a field the platform does
    not let change after creation, or that appends to its journal, is IMMUTABLE."""
    violations: list[Violation] = []
    if not fields:
        violations.append(Violation("fields", "name at least one field to change", Reason.REQUIRED))
    if len(fields) > limits.max_fields:
        violations.append(
            Violation("fields", f"at most {limits.max_fields} fields are allowed", Reason.TOO_MANY_FIELDS)
        )
        return violations
    cap = limits.max_field_value_chars
    for name, value in fields.items():
        rule = rules.get(name)
        if rule is None:
            violations.append(_unknown(name, rules, True))
        elif rule.immutable:
            description = "cannot be changed after the ticket was created"
            violations.append(Violation(name, description, Reason.IMMUTABLE))
        elif rule.journal:
            description = "adds to the ticket's journal, not a value to change: use AddComment"
            violations.append(Violation(name, description, Reason.IMMUTABLE))
        elif not value:
            if rule.required:
                violations.append(Violation(name, "is required and cannot be emptied", Reason.REQUIRED))
        else:
            _check_value(rule, name, value, cap, violations)
    return violations


def check_value(rule: FieldRule, value: str, limits: Limits) -> list[Violation]:
    """The violations of one non-empty value against one rule (e.g. to check a default at load)."""
    violations: list[Violation] = []
    _check_value(rule, rule.name, value, limits.max_field_value_chars, violations)
    return violations


def _check_value(
    rule: FieldRule, name: str, value: str, cap: int, violations: list[Violation]
) -> bool:
    """Judge a non-empty value; False when it holds nothing after all (a list of only commas)."""
    kind = rule.type
    if kind == "string":
        _check_text(rule, name, value, cap, violations)
        return True
    if kind == "int":
        _check_int(rule, name, value, violations)
        return True
    return _check_list(rule, name, value, cap, violations)


def _check_text(
    rule: FieldRule, name: str, value: str, cap: int, violations: list[Violation]
) -> None:
    limit = rule.max_length
    if limit is None or limit > cap:
        limit = cap
    if len(value) > limit:
        # Stop here: a value over its length is never shown to enum or pattern (bounded regex work).
        violations.append(_too_long(name, limit, len(value)))
        return
    enum = rule.enum
    if enum is not None and value not in enum:
        violations.append(Violation(name, f"must be one of: {', '.join(enum)}", Reason.ENUM))
    pattern = rule.pattern
    if pattern is not None and pattern.fullmatch(value) is None:
        violations.append(Violation(name, _pattern_text(rule, pattern), Reason.PATTERN))


def _check_int(rule: FieldRule, name: str, value: str, violations: list[Violation]) -> None:
    # The length check keeps even the trivial regex off a huge value.
    if len(value) > _INT_MAX_DIGITS + 1 or _INT.fullmatch(value) is None:
        violations.append(
            Violation(
                name,
                f"must be an integer: an optional sign and at most {_INT_MAX_DIGITS} digits",
                Reason.TYPE,
            )
        )
        return
    number = int(value)
    if rule.minimum is not None and number < rule.minimum:
        violations.append(Violation(name, f"must be at least {rule.minimum}", Reason.MIN))
    if rule.maximum is not None and number > rule.maximum:
        violations.append(Violation(name, f"must be at most {rule.maximum}", Reason.MAX))


def _check_list(
    rule: FieldRule, name: str, value: str, cap: int, violations: list[Violation]
) -> bool:
    if len(value) > cap:
        violations.append(_too_long(name, cap, len(value)))
        return True
    items = split_list(value)
    if not items:
        return False
    max_items = rule.max_items if rule.max_items is not None else LIST_ITEMS_CAP
    if len(items) > max_items:
        violations.append(
            Violation(
                name, f"must have at most {max_items} items, got {len(items)}", Reason.MAX_ITEMS
            )
        )
        items = items[:max_items]  # the rest are not checked: bounded violations
    limit = rule.max_length if rule.max_length is not None and rule.max_length < cap else cap
    enum, pattern = rule.enum, rule.pattern
    for i, item in enumerate(items):
        # Inline happy path: the item's name is only built when something is wrong with it.
        if (
            len(item) <= limit
            and (enum is None or item in enum)
            and (pattern is None or pattern.fullmatch(item) is not None)
        ):
            continue
        _check_text(rule, f"{name}[{i}]", item, cap, violations)
    return True


def split_list(value: str) -> list[str]:
    """A comma-separated value as its items: stripped, empty ones dropped."""
    return [item for part in value.split(",") if (item := part.strip())]


def shown(text: str, limit: int = _SHOWN_CHARS) -> str:
    """Text safe to echo in a message or field name: escaped to printable ASCII and truncated."""
    head = text[: limit + 1]
    if len(head) <= limit and head.isascii() and head.isprintable():
        return head
    escaped = head.encode("unicode_escape").decode("ascii")
    return escaped[:limit] + "..." if len(escaped) > limit or len(text) > limit else escaped


def _unknown_fields(
    rules: Mapping[str, FieldRule], fields: Mapping[str, str], max_fields: int
) -> list[Violation]:
    names: Iterable[str] = fields
    if len(fields) > max_fields:
        # Already refused as TOO_MANY_FIELDS: look only at the first keys, in request order, so a
        # request stuffed with 100k keys costs no more than one within the cap.
        names = itertools.islice(fields, max_fields)
    unknown = sorted(name for name in names if name not in rules)
    return [_unknown(name, rules, i < _SUGGESTED) for i, name in enumerate(unknown)]


def _unknown(name: str, rules: Mapping[str, FieldRule], suggest: bool) -> Violation:
    field = shown(name)
    description = f"unknown field {field!r}"
    if suggest:
        # Bounded: a few names, each cut to _SHOWN_CHARS, against the platform's field names.
        close = difflib.get_close_matches(name[:_SHOWN_CHARS], list(rules), n=1)
        if close:
            description += f"; did you mean {close[0]!r}?"
    return Violation(field, description, Reason.UNKNOWN_FIELD)


def _too_long(name: str, limit: int, length: int) -> Violation:
    return Violation(
        name, f"must be at most {limit} characters, got {length}", Reason.MAX_LENGTH
    )


def _pattern_text(rule: FieldRule, pattern: re.Pattern[str]) -> str:
    # The value itself is never echoed: it may be sensitive and error texts end up in logs.
    text = f"must match {pattern.pattern}"
    return f"{text} ({rule.description})" if rule.description else text
