"""In-memory Jira issues: numbering, workflow state, comments, and issue and comment properties."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.jira.catalog import (
    TO_DO,
    Component,
    IssueType,
    JiraUser,
    Priority,
    Project,
    Resolution,
    Status,
    Transition,
    Version,
)

FIRST_ISSUE_ID = 10000
FIRST_COMMENT_ID = 10000


def jira_timestamp() -> str:
    """Jira's timestamp format: 2024-05-01T12:34:56.789+0000."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


@dataclass(frozen=True)
class Visibility:
    """Who may see a comment: members of a project role or of a group."""

    type: str  # role or group
    value: str


@dataclass
class Comment:
    id: str
    body: Any  # str (v2) or ADF dict (v3), as sent
    author: JiraUser
    created: str
    updated: str
    visibility: Visibility | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # entity properties, insertion ordered


@dataclass
class Issue:
    id: int
    key: str
    project: Project
    issue_type: IssueType
    priority: Priority
    summary: str
    reporter: JiraUser
    creator: JiraUser
    created: str
    created_at: float  # monotonic, for search lag
    updated: str
    status: Status = TO_DO
    status_changed: str = ""
    resolution: Resolution | None = None
    resolution_date: str | None = None
    description: Any = None
    environment: Any = None
    labels: list[str] = field(default_factory=list)
    assignee: JiraUser | None = None
    duedate: str | None = None
    components: list[Component] = field(default_factory=list)
    fix_versions: list[Version] = field(default_factory=list)
    versions: list[Version] = field(default_factory=list)
    parent: Issue | None = None
    original_estimate: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)


# Attribute names the field validator produces, per Jira field id.
FIELD_ATTRIBUTES = {
    "issuetype": "issue_type",
    "priority": "priority",
    "summary": "summary",
    "description": "description",
    "environment": "environment",
    "labels": "labels",
    "assignee": "assignee",
    "reporter": "reporter",
    "duedate": "duedate",
    "components": "components",
    "fixVersions": "fix_versions",
    "versions": "versions",
    "parent": "parent",
    "timetracking": "original_estimate",
}


class StoreFull(Exception):
    pass


class IssueStore:
    def __init__(
        self,
        max_issues: int,
        clock: Callable[[], str] = jira_timestamp,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_issues = max_issues
        self._clock = clock
        self._monotonic = monotonic
        self._by_id: dict[int, Issue] = {}
        self._by_key: dict[str, Issue] = {}
        self._next_id = FIRST_ISSUE_ID
        self._next_comment_id = FIRST_COMMENT_ID
        self._next_number: dict[str, int] = {}
        # Comment id -> its issue: Jira addresses comment properties by comment id alone.
        self._comment_issue: dict[str, Issue] = {}

    def record_count(self) -> int:
        return len(self._by_id)

    def clear(self) -> None:
        self._by_id.clear()
        self._by_key.clear()
        self._next_id = FIRST_ISSUE_ID
        self._next_comment_id = FIRST_COMMENT_ID
        self._next_number.clear()
        self._comment_issue.clear()

    def all(self) -> list[Issue]:
        return list(self._by_id.values())

    def now_monotonic(self) -> float:
        return self._monotonic()

    def find(self, id_or_key: str) -> Issue | None:
        if id_or_key.isdigit():
            return self._by_id.get(int(id_or_key))
        return self._by_key.get(id_or_key.upper())

    def create(
        self,
        project: Project,
        values: Mapping[str, Any],
        default_priority: Priority,
        me: JiraUser,
        properties: Mapping[str, Any],
    ) -> Issue:
        if len(self._by_id) >= self._max_issues:
            raise StoreFull
        number = self._next_number.get(project.key, 1)
        now = self._clock()
        issue = Issue(
            id=self._next_id,
            key=f"{project.key}-{number}",
            project=project,
            issue_type=values["issuetype"],
            priority=values.get("priority") or default_priority,
            summary=values["summary"],
            reporter=values.get("reporter") or me,
            creator=me,
            created=now,
            created_at=self._monotonic(),
            updated=now,
            status_changed=now,
        )
        self._assign(issue, values)
        issue.properties.update(properties)
        self._by_id[issue.id] = issue
        self._by_key[issue.key] = issue
        self._next_id += 1
        self._next_number[project.key] = number + 1
        return issue

    def edit(self, issue: Issue, values: Mapping[str, Any]) -> None:
        self._assign(issue, values)
        issue.updated = self._clock()

    def _assign(self, issue: Issue, values: Mapping[str, Any]) -> None:
        for field_id, value in values.items():
            if field_id in FIELD_ATTRIBUTES:
                setattr(issue, FIELD_ATTRIBUTES[field_id], value)
            elif field_id.startswith("customfield_"):
                issue.custom[field_id] = value

    def delete(self, issue: Issue) -> None:
        self._by_id.pop(issue.id, None)
        self._by_key.pop(issue.key, None)
        for comment in issue.comments:
            self._comment_issue.pop(comment.id, None)

    def add_comment(
        self,
        issue: Issue,
        body: Any,
        author: JiraUser,
        visibility: Visibility | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> Comment:
        now = self._clock()
        comment = Comment(
            str(self._next_comment_id), body, author, now, now, visibility, dict(properties or {})
        )
        self._next_comment_id += 1
        issue.comments.append(comment)
        issue.updated = now
        # A late write may land on an issue deleted (or reset away) meanwhile: not addressable then.
        if self._by_id.get(issue.id) is issue:
            self._comment_issue[comment.id] = issue
        return comment

    def find_comment(self, comment_id: str) -> tuple[Issue, Comment] | None:
        issue = self._comment_issue.get(comment_id)
        if issue is None:
            return None
        comment = next((c for c in issue.comments if c.id == comment_id), None)
        return None if comment is None else (issue, comment)

    def transition(self, issue: Issue, transition: Transition, resolution: Resolution | None) -> None:
        now = self._clock()
        if transition.to.category.key == "done":
            issue.resolution = resolution
            issue.resolution_date = now
        else:
            issue.resolution = None
            issue.resolution_date = None
        if transition.to.category != issue.status.category:
            issue.status_changed = now
        issue.status = transition.to
        issue.updated = now
