"""What the Jira sandbox's site contains besides issues: project OPS, its issue types, components
and versions, priorities, the To Do -> In Progress -> Done workflow (with Reopen), resolutions,
users, project roles, groups and custom fields. Ids follow a fresh Jira Cloud site so clients that
hard-code them still work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar


@dataclass(frozen=True)
class StatusCategory:
    id: int
    key: str  # new / indeterminate / done
    name: str
    color: str


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: StatusCategory
    description: str = ""


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to: Status

    @property
    def has_screen(self) -> bool:
        """Transitions into a done status show the resolve screen, where Resolution is required
        (as in Jira's classic workflows); the others have no screen."""
        return self.to.category.key == "done"


@dataclass(frozen=True)
class IssueType:
    id: str
    name: str
    description: str
    subtask: bool = False


@dataclass(frozen=True)
class Priority:
    id: str
    name: str
    color: str


@dataclass(frozen=True)
class Resolution:
    id: str
    name: str
    description: str


@dataclass(frozen=True)
class Component:
    id: str
    name: str


@dataclass(frozen=True)
class Version:
    id: str
    name: str
    released: bool = False


@dataclass(frozen=True)
class JiraUser:
    account_id: str  # Cloud identity
    name: str  # Data Center user name
    key: str  # Data Center user key
    email: str
    display_name: str


@dataclass(frozen=True)
class CustomField:
    id: str
    name: str
    kind: Literal["string", "number"]


@dataclass(frozen=True)
class Project:
    id: str
    key: str
    name: str
    issue_types: tuple[IssueType, ...]
    components: tuple[Component, ...] = ()
    versions: tuple[Version, ...] = ()


NEW = StatusCategory(2, "new", "To Do", "blue-gray")
INDETERMINATE = StatusCategory(4, "indeterminate", "In Progress", "yellow")
DONE_CATEGORY = StatusCategory(3, "done", "Done", "green")
STATUS_CATEGORIES = (NEW, INDETERMINATE, DONE_CATEGORY)

TO_DO = Status("10000", "To Do", NEW)
IN_PROGRESS = Status("3", "In Progress", INDETERMINATE, "This issue is being actively worked on.")
DONE = Status("10001", "Done", DONE_CATEGORY)
STATUSES = (TO_DO, IN_PROGRESS, DONE)

# Transitions are named after their target status, as in Jira Cloud's simplified workflows.
TO_TO_DO = Transition("11", "To Do", TO_DO)
TO_IN_PROGRESS = Transition("21", "In Progress", IN_PROGRESS)
TO_DONE = Transition("31", "Done", DONE)
REOPEN = Transition("41", "Reopen", TO_DO)  # named for what it does, as workflows often name it
WORKFLOW: dict[str, tuple[Transition, ...]] = {
    TO_DO.id: (TO_IN_PROGRESS,),
    IN_PROGRESS.id: (TO_TO_DO, TO_DONE),
    DONE.id: (TO_TO_DO, REOPEN),
}

RESOLUTIONS = (
    Resolution("10000", "Done", "Work has been completed on this issue."),
    Resolution("10001", "Won't Do", "This issue won't be actioned."),
    Resolution("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
    Resolution("10003", "Cannot Reproduce", "This issue couldn't be reproduced."),
    Resolution("1", "Fixed", "A fix for this issue is checked in."),
)

PRIORITIES = (
    Priority("1", "Highest", "#d04437"),
    Priority("2", "High", "#f15C75"),
    Priority("3", "Medium", "#f79232"),
    Priority("4", "Low", "#707070"),
    Priority("5", "Lowest", "#999999"),
)

ISSUE_TYPES = (
    IssueType("10001", "Task", "A small, distinct piece of work."),
    IssueType("10002", "Bug", "A problem or error."),
    IssueType("10003", "Story", "A user story."),
    IssueType("10004", "Incident", "A disruption to a service."),
)

# Who a comment can be restricted to (its visibility). The sandbox user belongs to all of them.
PROJECT_ROLES = ("Administrators", "Developers", "Users")
GROUPS = ("jira-administrators", "jira-software-users", "site-admins")

CUSTOM_FIELDS = (
    CustomField("customfield_10010", "Team", "string"),
    CustomField("customfield_10016", "Story point estimate", "number"),
    CustomField("customfield_10020", "Source system", "string"),
)

OPS = Project(
    id="10000",
    key="OPS",
    name="Operations",
    issue_types=ISSUE_TYPES,
    components=(
        Component("10000", "Backend"),
        Component("10001", "Frontend"),
        Component("10002", "Database"),
        Component("10003", "Infrastructure"),
        Component("10004", "Network"),
    ),
    versions=(Version("10000", "1.0", released=True), Version("10001", "2.0")),
)

_Item = TypeVar("_Item")


def find_by_ref(items: Iterable[_Item], ref: Any, keys: tuple[str, ...]) -> _Item | None:
    """The item a Jira reference object names: {"id": ...}, {"key": ...} or {"name": ...}.

    Names match case-insensitively, as Jira resolves them.
    """
    if not isinstance(ref, Mapping):
        return None
    for key in keys:
        wanted = ref.get(key)
        if wanted is None:
            continue
        wanted_text = str(wanted).casefold()
        for item in items:
            if str(getattr(item, _ATTRIBUTE[key])).casefold() == wanted_text:
                return item
        return None
    return None


_ATTRIBUTE = {"id": "id", "key": "key", "name": "name", "accountId": "account_id"}


@dataclass(frozen=True)
class Catalog:
    me: JiraUser
    projects: tuple[Project, ...] = (OPS,)
    priorities: tuple[Priority, ...] = PRIORITIES
    default_priority: str = "Medium"
    statuses: tuple[Status, ...] = STATUSES
    resolutions: tuple[Resolution, ...] = RESOLUTIONS
    custom_fields: tuple[CustomField, ...] = CUSTOM_FIELDS
    others: tuple[JiraUser, ...] = field(default_factory=tuple)
    project_roles: tuple[str, ...] = PROJECT_ROLES
    groups: tuple[str, ...] = GROUPS

    @property
    def users(self) -> tuple[JiraUser, ...]:
        return (self.me, *self.others)

    @property
    def issue_types(self) -> tuple[IssueType, ...]:
        seen: dict[str, IssueType] = {}
        for project in self.projects:
            for issue_type in project.issue_types:
                seen.setdefault(issue_type.id, issue_type)
        return tuple(seen.values())

    def project(self, ref: Any) -> Project | None:
        return find_by_ref(self.projects, ref, ("id", "key", "name"))

    def project_by_text(self, text: str) -> Project | None:
        folded = text.casefold()
        for project in self.projects:
            if folded in (project.id, project.key.casefold(), project.name.casefold()):
                return project
        return None

    def priority(self, ref: Any) -> Priority | None:
        return find_by_ref(self.priorities, ref, ("id", "name"))

    def resolution(self, ref: Any) -> Resolution | None:
        return find_by_ref(self.resolutions, ref, ("id", "name"))

    def user(self, ref: Any) -> JiraUser | None:
        if not isinstance(ref, Mapping):
            return None
        for user in self.users:
            if (
                ref.get("accountId") == user.account_id
                or ref.get("name") in (user.name, user.email)
                or ref.get("key") == user.key
                or ref.get("id") == user.account_id
            ):
                return user
        return None

    def custom_field(self, field_id: str) -> CustomField | None:
        return next((f for f in self.custom_fields if f.id == field_id), None)

    def transitions_from(self, status: Status) -> tuple[Transition, ...]:
        return WORKFLOW.get(status.id, ())


def sandbox_users(login: str) -> tuple[JiraUser, tuple[JiraUser, ...]]:
    """The authenticated user (from the configured login) and two colleagues to assign to."""
    name = login.split("@", 1)[0] or "dev"
    email = login if "@" in login else f"{login}@example.com"
    me = JiraUser(
        "712020:5a1d0c8e-0000-4000-8000-000000000001", name, "JIRAUSER10000", email, "Sandbox Developer"
    )
    others = (
        JiraUser(
            "712020:5a1d0c8e-0000-4000-8000-000000000002",
            "alice",
            "JIRAUSER10001",
            "alice@example.com",
            "Alice Ops",
        ),
        JiraUser(
            "712020:5a1d0c8e-0000-4000-8000-000000000003",
            "bob",
            "JIRAUSER10002",
            "bob@example.com",
            "Bob Oncall",
        ),
    )
    return me, others
