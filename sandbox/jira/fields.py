"""Validates the `fields` / `update` parts of Jira create and edit bodies.

Every problem is reported the way Jira does: per field in `errors`, so one answer names all of
them. Parsed values come back keyed by field id, ready for the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sandbox.jira import adf
from sandbox.jira.catalog import Catalog, Project, Resolution, find_by_ref
from sandbox.jira.store import Issue

MAX_SUMMARY = 254  # "less than 255 characters"
MAX_LABEL = 255
MAX_TEXT = 32_767  # Jira's text field limit
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([wdhm])\s*")
_UNITS = {"w": 5 * 8 * 3600, "d": 8 * 3600, "h": 3600, "m": 60}  # Jira's default 8h day, 5d week
_LIST_FIELDS = ("labels", "components", "fixVersions", "versions")


def cannot_set(field_id: str) -> str:
    return f"Field '{field_id}' cannot be set. It is not on the appropriate screen, or unknown."


def duration_seconds(text: str) -> int | None:
    """Seconds in a Jira duration such as "2d 4h" (a bare number means minutes), else None."""
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped) * 60
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION.match(text, position)
        if match is None or match.end() == position:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return int(total) if stripped else None


@dataclass
class FieldContext:
    catalog: Catalog
    version: int  # 2: strings for rich text; 3: ADF
    find_issue: Callable[[str], Issue | None]


@dataclass
class FieldCheck:
    values: dict[str, Any] = field(default_factory=dict)
    comments: list[Any] = field(default_factory=list)  # bodies from update.comment[].add
    errors: dict[str, str] = field(default_factory=dict)


def rich_text_error(value: Any, version: int) -> str | None:
    if version >= 3:
        return None if adf.is_document(value) else adf.NOT_A_DOCUMENT
    if not isinstance(value, str):
        return "Operation value must be a string"
    return "Value exceeds the 32767 character limit." if len(value) > MAX_TEXT else None


def label_error(label: Any) -> str | None:
    if not isinstance(label, str):
        return "Operation value must be a string"
    if label == "":
        return "The label must not be empty."
    if any(ch.isspace() for ch in label):
        return f"The label '{label}' contains spaces which is invalid."
    if len(label) > MAX_LABEL:
        return f"The label '{label}' exceeds the maximum length for a single label of {MAX_LABEL} characters."
    return None


class _Parser:
    def __init__(self, ctx: FieldContext, project: Project, issue: Issue | None) -> None:
        self.ctx = ctx
        self.project = project
        self.issue = issue

    def parse(self, field_id: str, value: Any) -> tuple[Any, str | None]:
        handler = getattr(self, "_" + field_id, None)
        if handler is not None:
            result: tuple[Any, str | None] = handler(value)
            return result
        custom = self.ctx.catalog.custom_field(field_id)
        if custom is None:
            return None, cannot_set(field_id)
        if value is None:
            return None, None
        if custom.kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return (value, None) if ok else (None, "Operation value must be a number.")
        return (value, None) if isinstance(value, str) else (None, "Operation value must be a string")

    def _summary(self, value: Any) -> tuple[Any, str | None]:
        if not isinstance(value, str) or not value.strip():
            return None, "You must specify a summary of the issue."
        if len(value) > MAX_SUMMARY:
            return None, "Summary must be less than 255 characters."
        if "\n" in value or "\r" in value:
            return None, "The summary is invalid because it contains newline characters."
        return value, None

    def _rich_text(self, value: Any) -> tuple[Any, str | None]:
        if value is None:
            return None, None
        error = rich_text_error(value, self.ctx.version)
        return (None, error) if error else (value, None)

    _description = _rich_text
    _environment = _rich_text

    def _issuetype(self, value: Any) -> tuple[Any, str | None]:
        if value is None:
            return None, "Specify an issue type"
        found = find_by_ref(self.project.issue_types, value, ("id", "name"))
        return (found, None) if found else (None, "The issue type selected is invalid.")

    def _priority(self, value: Any) -> tuple[Any, str | None]:
        found = self.ctx.catalog.priority(value)
        return (found, None) if found else (None, "The priority selected is invalid.")

    def _user(self, value: Any, required: bool) -> tuple[Any, str | None]:
        if value is None:
            return (None, "Reporter is required.") if required else (None, None)
        found = self.ctx.catalog.user(value)
        if found:
            return found, None
        shown = value.get("name") or value.get("accountId") if isinstance(value, dict) else value
        return None, f"User '{shown}' does not exist."

    def _assignee(self, value: Any) -> tuple[Any, str | None]:
        return self._user(value, required=False)

    def _reporter(self, value: Any) -> tuple[Any, str | None]:
        return self._user(value, required=True)

    def _duedate(self, value: Any) -> tuple[Any, str | None]:
        if value is None:
            return None, None
        try:
            return date.fromisoformat(str(value)).isoformat(), None
        except ValueError:
            return None, f"Error parsing date string: {value}"

    def _labels(self, value: Any) -> tuple[Any, str | None]:
        if not isinstance(value, list):
            return None, "data was not an array"
        for label in value:
            if error := label_error(label):
                return None, error
        return sorted(set(value)), None

    def _named_list(self, value: Any, items: tuple[Any, ...], what: str) -> tuple[Any, str | None]:
        if not isinstance(value, list):
            return None, "data was not an array"
        found = []
        for ref in value:
            item = find_by_ref(items, ref, ("id", "name"))
            if item is None:
                shown = ref.get("name", ref.get("id")) if isinstance(ref, dict) else ref
                return None, f"{what} name '{shown}' is not valid"
            if item not in found:
                found.append(item)
        return found, None

    def _components(self, value: Any) -> tuple[Any, str | None]:
        return self._named_list(value, self.project.components, "Component")

    def _fixVersions(self, value: Any) -> tuple[Any, str | None]:
        return self._named_list(value, self.project.versions, "Version")

    def _versions(self, value: Any) -> tuple[Any, str | None]:
        return self._named_list(value, self.project.versions, "Version")

    def _parent(self, value: Any) -> tuple[Any, str | None]:
        ref = value.get("key") or value.get("id") if isinstance(value, dict) else None
        parent = self.ctx.find_issue(str(ref)) if ref else None
        if parent is None or parent is self.issue or parent.project is not self.project:
            return None, "Could not find issue by id or key."
        return parent, None

    def _timetracking(self, value: Any) -> tuple[Any, str | None]:
        if value is None or value == {}:
            return None, None
        estimate = value.get("originalEstimate") if isinstance(value, dict) else None
        if not isinstance(estimate, str) or duration_seconds(estimate) is None:
            return None, "The original estimate specified is not valid."
        return estimate.strip(), None


def _check_fields(parser: _Parser, fields: Mapping[str, Any], check: FieldCheck) -> None:
    for field_id, value in fields.items():
        parsed, error = parser.parse(field_id, value)
        if error:
            check.errors[field_id] = error
        else:
            check.values[field_id] = parsed


def _apply_list_ops(
    parser: _Parser, field_id: str, operations: list[Any], current: list[Any]
) -> tuple[Any, str | None]:
    """labels / components / versions edited by add, remove and set operations."""
    raw: list[Any] = (
        list(current) if field_id == "labels" else [{"id": i.id, "name": i.name} for i in current]
    )
    for operation in operations:
        if not isinstance(operation, dict) or len(operation) != 1:
            return None, "Operation must be a single add, remove or set."
        verb, argument = next(iter(operation.items()))
        if verb == "set":
            raw = list(argument) if isinstance(argument, list) else [argument]
        elif verb == "add":
            raw.append(argument)
        elif verb == "remove":
            raw = [item for item in raw if not _same_item(item, argument)]
        else:
            return None, f"Operation '{verb}' is not supported for field '{field_id}'."
    return parser.parse(field_id, raw)


def _same_item(item: Any, argument: Any) -> bool:
    if isinstance(item, str) or not isinstance(argument, dict) or not isinstance(item, dict):
        return bool(item == argument)
    return any(
        item.get(k) is not None and str(item.get(k)).casefold() == str(argument.get(k)).casefold()
        for k in ("id", "name")
    )


def _current_list(issue: Issue | None, field_id: str) -> list[Any]:
    if issue is None:
        return []
    attribute = {"labels": "labels", "components": "components", "fixVersions": "fix_versions"}
    return list(getattr(issue, attribute.get(field_id, "versions")))


def _check_update(parser: _Parser, update: Mapping[str, Any], check: FieldCheck) -> None:
    for field_id, operations in update.items():
        if not isinstance(operations, list):
            check.errors[field_id] = "Operations must be a list."
            continue
        if field_id == "comment":
            for operation in operations:
                added = operation.get("add") if isinstance(operation, dict) else None
                body = added.get("body") if isinstance(added, dict) else None
                error = (
                    "Comment body can not be empty!"
                    if not body
                    else rich_text_error(body, parser.ctx.version)
                )
                if error:
                    check.errors["comment"] = error
                else:
                    check.comments.append(body)
            continue
        if field_id in _LIST_FIELDS:
            current = check.values.get(field_id, _current_list(parser.issue, field_id))
            parsed, error = _apply_list_ops(parser, field_id, operations, current)
        else:
            sets = [op["set"] for op in operations if isinstance(op, dict) and "set" in op]
            if len(sets) != 1 or len(operations) != 1:
                check.errors[field_id] = f"Field '{field_id}' supports only a single set operation."
                continue
            parsed, error = parser.parse(field_id, sets[0])
        if error:
            check.errors[field_id] = error
        else:
            check.values[field_id] = parsed


def _sections(body: Mapping[str, Any], check: FieldCheck) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    fields = body.get("fields") or {}
    update = body.get("update") or {}
    if not isinstance(fields, dict):
        check.errors["fields"] = "fields must be an object"
        fields = {}
    if not isinstance(update, dict):
        check.errors["update"] = "update must be an object"
        update = {}
    return fields, update


def check_create(body: Mapping[str, Any], ctx: FieldContext) -> tuple[Project | None, FieldCheck]:
    check = FieldCheck()
    fields, update = _sections(body, check)
    project = ctx.catalog.project(fields.get("project"))
    if project is None:
        check.errors["project"] = "Specify a valid project ID or key"
        return None, check
    parser = _Parser(ctx, project, None)
    _check_fields(parser, {k: v for k, v in fields.items() if k != "project"}, check)
    _check_update(parser, update, check)
    if "summary" not in check.values and "summary" not in check.errors:
        check.errors["summary"] = "You must specify a summary of the issue."
    if "issuetype" not in check.values and "issuetype" not in check.errors:
        check.errors["issuetype"] = "Specify an issue type"
    return project, check


def check_edit(body: Mapping[str, Any], issue: Issue, ctx: FieldContext) -> FieldCheck:
    check = FieldCheck()
    fields, update = _sections(body, check)
    parser = _Parser(ctx, issue.project, issue)
    for field_id in ("project", "resolution", "status"):
        if field_id in fields or field_id in update:
            check.errors[field_id] = cannot_set(field_id)
    settable = {k: v for k, v in fields.items() if k not in check.errors}
    _check_fields(parser, settable, check)
    _check_update(parser, {k: v for k, v in update.items() if k not in check.errors}, check)
    return check


def check_transition(
    body: Mapping[str, Any], issue: Issue, to_done: bool, ctx: FieldContext
) -> tuple[Resolution | None, FieldCheck]:
    """The transition screen: a resolution (required into Done, refused elsewhere) and comments;
    nothing else is on it."""
    check = FieldCheck()
    fields, update = _sections(body, check)
    resolution: Resolution | None = None
    for field_id, value in fields.items():
        if field_id != "resolution" or not to_done:
            check.errors[field_id] = cannot_set(field_id)
        elif (resolution := ctx.catalog.resolution(value)) is None:
            check.errors["resolution"] = "Could not find resolution by id or name."
    for field_id in update:
        if field_id != "comment":
            check.errors[field_id] = cannot_set(field_id)
    comments = {"comment": update["comment"]} if "comment" in update else {}
    _check_update(_Parser(ctx, issue.project, issue), comments, check)
    if to_done and "resolution" not in fields:
        check.errors["resolution"] = "Resolution is required."
    return resolution, check
