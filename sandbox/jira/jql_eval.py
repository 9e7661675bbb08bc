"""Gives parsed JQL its meaning over the sandbox's issues: value checks, matching and order.

Mirrors Jira where a client would notice: unknown fields and values are errors (not silent
misses), `!=` and NOT IN never match an empty field, and `key = X` for an issue that does not
exist is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.jira import adf
from sandbox.jira.catalog import STATUS_CATEGORIES, Catalog, JiraUser
from sandbox.jira.jql import BoolOp, Clause, Empty, Function, JqlError, JqlQuery, Node, Not
from sandbox.jira.store import Issue

_EQUALITY = frozenset({"=", "!=", "in", "not in", "is", "is not"})
_TEXT = frozenset({"~", "!~", "is", "is not"})
_RANGE = frozenset({"=", "!=", ">", ">=", "<", "<=", "is", "is not"})
_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*", re.IGNORECASE)
_PERIOD = re.compile(r"([+-]?)((?:\d+[wdhm]\s*)+)")
_PERIOD_PART = re.compile(r"(\d+)([wdhm])")
_PERIOD_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")

Aliases = list[frozenset[str]]  # one alias set per value the field holds (several for labels)


def _aliases(*values: Any) -> frozenset[str]:
    return frozenset(str(v).casefold() for v in values if v is not None)


def _user_aliases(user: JiraUser | None) -> Aliases:
    if user is None:
        return []
    return [_aliases(user.name, user.email, user.account_id, user.key, user.display_name)]


def _issue_values(issue: Issue, field: str) -> Aliases:
    """What an equality clause on `field` compares against."""
    single: dict[str, Callable[[], Aliases]] = {
        "project": lambda: [_aliases(issue.project.key, issue.project.id, issue.project.name)],
        "key": lambda: [_aliases(issue.key, issue.id)],
        "status": lambda: [_aliases(issue.status.name, issue.status.id)],
        "statuscategory": lambda: [
            _aliases(issue.status.category.key, issue.status.category.name, issue.status.category.id)
        ],
        "issuetype": lambda: [_aliases(issue.issue_type.name, issue.issue_type.id)],
        "priority": lambda: [_aliases(issue.priority.name, issue.priority.id)],
        "resolution": lambda: (
            [_aliases(issue.resolution.name, issue.resolution.id)] if issue.resolution else []
        ),
        "labels": lambda: [_aliases(label) for label in issue.labels],
        "assignee": lambda: _user_aliases(issue.assignee),
        "reporter": lambda: _user_aliases(issue.reporter),
        "creator": lambda: _user_aliases(issue.creator),
        "component": lambda: [_aliases(c.name, c.id) for c in issue.components],
        "fixversion": lambda: [_aliases(v.name, v.id) for v in issue.fix_versions],
        "affectedversion": lambda: [_aliases(v.name, v.id) for v in issue.versions],
        "parent": lambda: [_aliases(issue.parent.key, issue.parent.id)] if issue.parent else [],
    }
    return single[field]()


def _issue_text(issue: Issue, field: str) -> str:
    def rich(value: Any) -> str:
        return adf.as_version(value, 2) or ""

    if field == "summary":
        return issue.summary
    if field == "description":
        return rich(issue.description)
    if field == "environment":
        return rich(issue.environment)
    if field.startswith("customfield_"):
        value = issue.custom.get(field)
        return "" if value is None else str(value)
    return " ".join((issue.summary, rich(issue.description), rich(issue.environment)))  # "text"


def _issue_date(issue: Issue, field: str) -> datetime | None:
    raw = {"created": issue.created, "updated": issue.updated, "resolutiondate": issue.resolution_date}
    if field == "duedate":
        return datetime.fromisoformat(issue.duedate).replace(tzinfo=UTC) if issue.duedate else None
    text = raw[field]
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC) if text else None


_EQUALITY_FIELDS = frozenset(
    {
        "project",
        "key",
        "status",
        "statuscategory",
        "issuetype",
        "priority",
        "resolution",
        "labels",
        "assignee",
        "reporter",
        "creator",
        "component",
        "fixversion",
        "affectedversion",
        "parent",
    }
)
_TEXT_FIELDS = frozenset({"summary", "description", "environment", "text"})
_DATE_FIELDS = frozenset({"created", "updated", "resolutiondate", "duedate"})
_SORTABLE = frozenset(
    {
        "created",
        "updated",
        "resolutiondate",
        "duedate",
        "key",
        "id",
        "priority",
        "summary",
        "status",
        "issuetype",
        "project",
    }
)


def _no_such_field(name: str) -> JqlError:
    return JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")


@dataclass(frozen=True)
class CompiledJql:
    matches: Callable[[Issue], bool]
    order: Callable[[list[Issue]], list[Issue]]
    bounded: bool  # has a search restriction; Cloud's /search/jql refuses unbounded queries


class JqlCompiler:
    def __init__(self, catalog: Catalog, find_issue: Callable[[str], Issue | None]) -> None:
        self._catalog = catalog
        self._find_issue = find_issue

    def compile(self, query: JqlQuery, now: datetime | None = None) -> CompiledJql:
        moment = now or datetime.now(UTC)
        matcher = self._node(query.where, moment) if query.where is not None else (lambda _: True)
        return CompiledJql(matcher, self._order(query), query.where is not None)

    def _node(self, node: Node, now: datetime) -> Callable[[Issue], bool]:
        if isinstance(node, Not):
            inner = self._node(node.operand, now)
            return lambda issue: not inner(issue)
        if isinstance(node, BoolOp):
            parts = [self._node(operand, now) for operand in node.operands]
            if node.operator == "and":
                return lambda issue: all(part(issue) for part in parts)
            return lambda issue: any(part(issue) for part in parts)
        return self._clause(node, now)

    def _clause(self, clause: Clause, now: datetime) -> Callable[[Issue], bool]:
        field = clause.field
        custom = self._catalog.custom_field(field) if field.startswith("customfield_") else None
        if field in _EQUALITY_FIELDS:
            self._allow(clause, _EQUALITY)
            return self._equality(clause)
        if field in _TEXT_FIELDS or (custom is not None and custom.kind == "string"):
            self._allow(clause, _TEXT)
            return self._text(clause)
        if field in _DATE_FIELDS:
            self._allow(clause, _RANGE)
            return self._dates(clause, now)
        if field == "id" or (custom is not None and custom.kind == "number"):
            self._allow(clause, _RANGE | {"in", "not in"})
            return self._numbers(clause)
        raise _no_such_field(field)

    @staticmethod
    def _allow(clause: Clause, operators: frozenset[str]) -> None:
        if clause.operator not in operators:
            raise JqlError(
                f"The operator '{clause.operator.upper()}' is not supported by the '{clause.field}' field."
            )

    def _known_values(self, field: str) -> frozenset[str] | None:
        """Every value a catalog-backed field accepts, or None when any value is allowed."""
        catalog = self._catalog
        sets: dict[str, Callable[[], Iterable[frozenset[str]]]] = {
            "project": lambda: (_aliases(p.key, p.id, p.name) for p in catalog.projects),
            "status": lambda: (_aliases(s.name, s.id) for s in catalog.statuses),
            "statuscategory": lambda: (_aliases(c.key, c.name, c.id) for c in STATUS_CATEGORIES),
            "issuetype": lambda: (_aliases(t.name, t.id) for t in catalog.issue_types),
            "priority": lambda: (_aliases(p.name, p.id) for p in catalog.priorities),
            "resolution": lambda: [
                *(_aliases(r.name, r.id) for r in catalog.resolutions),
                _aliases("unresolved"),
            ],
            "assignee": lambda: (a for u in catalog.users for a in _user_aliases(u)),
            "reporter": lambda: (a for u in catalog.users for a in _user_aliases(u)),
            "creator": lambda: (a for u in catalog.users for a in _user_aliases(u)),
            "component": lambda: (_aliases(c.name, c.id) for p in catalog.projects for c in p.components),
            "fixversion": lambda: (_aliases(v.name, v.id) for p in catalog.projects for v in p.versions),
            "affectedversion": lambda: (_aliases(v.name, v.id) for p in catalog.projects for v in p.versions),
        }
        if field not in sets:
            return None
        return frozenset(alias for group in sets[field]() for alias in group)

    def _wanted(self, clause: Clause) -> list[frozenset[str]]:
        """The clause's values as alias sets, each checked against what the site knows."""
        known = self._known_values(clause.field)
        wanted: list[frozenset[str]] = []
        for value in clause.values:
            if isinstance(value, Empty):
                continue
            if isinstance(value, Function):
                if value.name != "currentuser" or clause.field not in ("assignee", "reporter", "creator"):
                    raise JqlError(f"Unable to find JQL function '{value.name}()'.")
                wanted.extend(_user_aliases(self._catalog.me))
                continue
            self._check_value(clause.field, value, known)
            wanted.append(_aliases(value))
        return wanted

    def _check_value(self, field: str, value: str, known: frozenset[str] | None) -> None:
        if field == "key":
            if value.isdigit():
                return
            if not _KEY.fullmatch(value):
                raise JqlError(f"The issue key '{value}' for field 'key' is invalid.")
            if self._find_issue(value) is None:
                raise JqlError(f"An issue with key '{value}' does not exist for field 'key'.")
        elif known is not None and value.casefold() not in known:
            raise JqlError(f"The value '{value}' does not exist for the field '{field}'.")

    def _equality(self, clause: Clause) -> Callable[[Issue], bool]:
        field, op = clause.field, clause.operator
        wanted = self._wanted(clause)
        empty_wanted = any(isinstance(v, Empty) for v in clause.values) or (
            field == "resolution" and frozenset({"unresolved"}) in wanted
        )

        def holds(issue: Issue) -> bool:
            held = _issue_values(issue, field)
            hit = any(w & h for w in wanted for h in held) or (empty_wanted and not held)
            if op in ("=", "in", "is"):
                return hit
            # Negative operators never match an empty field, as in Jira.
            return bool(held) and not hit if op in ("!=", "not in") else bool(held)

        return holds

    def _text(self, clause: Clause) -> Callable[[Issue], bool]:
        field, op = clause.field, clause.operator
        if op in ("is", "is not"):
            return lambda issue: (_issue_text(issue, field) == "") == (op == "is")
        value = clause.values[0]
        if not isinstance(value, str):
            raise JqlError(f"The operator '{op}' needs a text value for the '{field}' field.")
        needle = value.replace("*", "").casefold()
        if op == "~":
            return lambda issue: needle in _issue_text(issue, field).casefold()
        return lambda issue: needle not in _issue_text(issue, field).casefold()

    def _dates(self, clause: Clause, now: datetime) -> Callable[[Issue], bool]:
        field, op = clause.field, clause.operator
        if op in ("is", "is not"):
            return lambda issue: (_issue_date(issue, field) is None) == (op == "is")
        value = clause.values[0]
        moment = _parse_moment(value, now) if isinstance(value, str) else None
        if moment is None:
            raise JqlError(
                f"Date value '{value}' for field '{field}' is invalid. Valid formats include: "
                "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
                "or a period format e.g. '-5d', '4w 2d'."
            )

        def holds(issue: Issue) -> bool:
            when = _issue_date(issue, field)
            return when is not None and _compare(when, op, moment)

        return holds

    def _numbers(self, clause: Clause) -> Callable[[Issue], bool]:
        field, op = clause.field, clause.operator
        numbers: list[float] = []
        for value in clause.values:
            if isinstance(value, Empty):
                continue
            try:
                numbers.append(float(str(value)))
            except ValueError as exc:
                raise JqlError(f"The value '{value}' for field '{field}' is invalid.") from exc

        def number_of(issue: Issue) -> float | None:
            if field == "id":
                return float(issue.id)
            raw = issue.custom.get(field)
            return float(raw) if isinstance(raw, int | float) else None

        def holds(issue: Issue) -> bool:
            number = number_of(issue)
            if op in ("is", "is not"):
                return (number is None) == (op == "is")
            if number is None:
                return False
            if op in ("in", "not in"):
                return (number in numbers) == (op == "in")
            return _compare(number, op, numbers[0])

        return holds

    def _order(self, query: JqlQuery) -> Callable[[list[Issue]], list[Issue]]:
        keys = [(k.field, k.descending) for k in query.order] or [("created", True)]
        for field, _ in keys:
            if field not in _SORTABLE:
                if field in _EQUALITY_FIELDS or field in _TEXT_FIELDS or field.startswith("customfield_"):
                    raise JqlError(f"Not able to sort using field '{field}'.")
                raise _no_such_field(field)
        priorities = [p.id for p in self._catalog.priorities]

        def sort(issues: list[Issue]) -> list[Issue]:
            ordered = sorted(issues, key=lambda issue: issue.id, reverse=keys[0][1])
            for field, descending in reversed(keys):
                ordered.sort(key=_sort_key(field, priorities), reverse=descending)
            return ordered

        return sort


def _sort_key(field: str, priorities: list[str]) -> Callable[[Issue], Any]:
    def key(issue: Issue) -> Any:
        if field == "key":
            project, _, number = issue.key.rpartition("-")
            return (project, int(number))
        if field == "id":
            return issue.id
        if field == "priority":
            # Higher priority sorts later, so ORDER BY priority DESC puts Highest first.
            return -priorities.index(issue.priority.id) if issue.priority.id in priorities else 0
        if field in ("summary", "status", "issuetype", "project"):
            return {
                "summary": issue.summary,
                "status": issue.status.name,
                "issuetype": issue.issue_type.name,
                "project": issue.project.key,
            }[field].casefold()
        when = _issue_date(issue, field)
        return when.timestamp() if when else float("-inf")

    return key


def _compare(left: Any, op: str, right: Any) -> bool:
    outcomes = {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        ">=": left >= right,
        "<": left < right,
        "<=": left <= right,
    }
    return bool(outcomes[op])


def _parse_moment(text: str, now: datetime) -> datetime | None:
    period = _PERIOD.fullmatch(text.strip())
    if period:
        delta = sum(
            (int(n) * _PERIOD_UNITS[unit] for n, unit in _PERIOD_PART.findall(period.group(2))),
            timedelta(),
        )
        return now - delta if period.group(1) == "-" else now + delta
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
