"""ServiceNow encoded queries (sysparm_query): parsing, matching and ordering.

Supported: `^` (and), `^OR` (or with the previous condition), `^NQ` (new query, or'd groups),
`^^` (a literal caret), ORDERBY<col> / ORDERBYDESC<col> and the operators in _OPERATORS.
Like the instance, a condition on an unknown field or with an unknown operator is dropped rather
than refused, so a misspelt field silently widens the match: the gateway must guard against that.
Like the instance's database, string comparison ignores case and empty values never satisfy
negative or range operators (they are NULL there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

_CARET = "\x00"  # stands in for an escaped ^^ while splitting

# Longest first, so NOTLIKE is not read as a field ending in "NOT" followed by LIKE.
_OPERATORS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "STARTSWITH",
    "ENDSWITH",
    "ANYTHING",
    "NOTLIKE",
    "NOT IN",
    "LIKE",
    "IN",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)
_FIELD = re.compile(r"([a-z_][a-z0-9_]*)(.*)", re.DOTALL)


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: str


@dataclass(frozen=True)
class EncodedQuery:
    # Or'd ^NQ groups, each an and-list of or-lists of conditions.
    groups: tuple[tuple[tuple[Condition, ...], ...], ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending)


def _parse_condition(term: str, is_known: Callable[[str], bool]) -> Condition | None:
    match = _FIELD.fullmatch(term)
    if match is None or not is_known(match.group(1)):
        return None
    rest = match.group(2)
    for operator in _OPERATORS:
        if rest.startswith(operator):
            value = rest[len(operator) :].replace(_CARET, "^")
            return Condition(match.group(1), operator, value)
    return None


def parse_encoded_query(text: str, is_known: Callable[[str], bool]) -> EncodedQuery:
    groups: list[tuple[tuple[Condition, ...], ...]] = []
    order: list[tuple[str, bool]] = []
    for group_text in text.replace("^^", _CARET).split("^NQ"):
        and_terms: list[list[Condition]] = []
        for term in group_text.split("^"):
            if term.startswith("ORDERBYDESC"):
                if is_known(term[11:]):
                    order.append((term[11:], True))
            elif term.startswith("ORDERBY"):
                if is_known(term[7:]):
                    order.append((term[7:], False))
            elif term.startswith("OR"):
                condition = _parse_condition(term[2:], is_known)
                if condition is not None and and_terms:
                    and_terms[-1].append(condition)
                elif condition is not None:
                    and_terms.append([condition])
            elif term and term != "EQ":
                condition = _parse_condition(term, is_known)
                if condition is not None:
                    and_terms.append([condition])
        groups.append(tuple(tuple(alternatives) for alternatives in and_terms))
    return EncodedQuery(tuple(groups), tuple(order))


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(actual: str, operator: str, wanted: str) -> bool:
    left, right = _as_number(actual), _as_number(wanted)
    if left is not None and right is not None:
        ordered: tuple[float, float] | tuple[str, str] = (left, right)
    else:
        ordered = (actual.casefold(), wanted.casefold())
    a, b = ordered
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[operator]  # type: ignore[operator]


def condition_holds(condition: Condition, actual: str) -> bool:
    op, wanted = condition.operator, condition.value
    a, w = actual.casefold(), wanted.casefold()
    if op == "ISEMPTY":
        return actual == ""
    if op == "ISNOTEMPTY":
        return actual != ""
    if op == "ANYTHING":
        return True
    if op == "=":
        return a == w
    if op == "LIKE":
        return w in a
    if op == "STARTSWITH":
        return a.startswith(w)
    if op == "ENDSWITH":
        return a.endswith(w)
    if op == "IN":
        return a in {item.strip().casefold() for item in wanted.split(",")}
    if actual == "":
        return False  # NULL in the database: no negative or range operator matches it
    if op == "!=":
        return a != w
    if op == "NOTLIKE":
        return w not in a
    if op == "NOT IN":
        return a not in {item.strip().casefold() for item in wanted.split(",")}
    return _compare(actual, op, wanted)


def matches(query: EncodedQuery, values: Mapping[str, str]) -> bool:
    def group_holds(group: tuple[tuple[Condition, ...], ...]) -> bool:
        return all(
            any(condition_holds(c, values.get(c.field, "")) for c in alternatives) for alternatives in group
        )

    return any(group_holds(group) for group in query.groups)


def sort_key(integer_fields: frozenset[str], name: str) -> Callable[[Mapping[str, str]], tuple[float, str]]:
    """ORDERBY key: integer columns numerically (empty first), the rest as case-insensitive text."""

    def key(values: Mapping[str, str]) -> tuple[float, str]:
        raw = values.get(name, "")
        if name in integer_fields:
            number = _as_number(raw)
            return (number if number is not None else float("-inf"), "")
        return (0.0, raw.casefold())

    return key


Row = TypeVar("Row")


def select(
    rows: Sequence[Row],
    columns: Callable[[Row], Mapping[str, str]],
    params: Mapping[str, str],
    is_known: Callable[[str], bool],
    integer_fields: frozenset[str] = frozenset(),
) -> list[Row]:
    """The rows a Table API list request asks for, in the order it asks for (`rows` come oldest first).

    sysparm_query filters and orders; plain field=value parameters filter too, and unknown names
    are ignored like unknown sysparms.
    """
    encoded = parse_encoded_query(params.get("sysparm_query", ""), is_known)
    plain = [
        Condition(name, "=", value)
        for name, value in params.items()
        if not name.startswith("sysparm_") and is_known(name)
    ]
    found = [
        row
        for row in rows
        if matches(encoded, columns(row))
        and all(columns(row).get(c.field, "").casefold() == c.value.casefold() for c in plain)
    ]
    if encoded.order and encoded.order[0][1]:
        # Timestamps have whole seconds: rows created in the same second come newest first under a
        # descending primary order, as the instance's finer internal clock would put them.
        found.reverse()
    for name, descending in reversed(encoded.order):  # stable sorts, last key first
        key = sort_key(integer_fields, name)
        found.sort(key=lambda row: key(columns(row)), reverse=descending)
    return found
