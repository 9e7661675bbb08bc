"""Jira's JSON for issues, comments and the catalog objects they embed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.jira import adf
from sandbox.jira.catalog import (
    Catalog,
    Component,
    CustomField,
    IssueType,
    JiraUser,
    Priority,
    Project,
    Resolution,
    Status,
    StatusCategory,
    Transition,
    Version,
)
from sandbox.jira.fields import duration_seconds
from sandbox.jira.store import Comment, Issue

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


@dataclass(frozen=True)
class Api:
    """Where links point: the site's origin and the REST version the request used."""

    origin: str
    version: int

    def url(self, path: str) -> str:
        return f"{self.origin}/rest/api/{self.version}/{path}"


def user_json(api: Api, user: JiraUser) -> dict[str, Any]:
    return {
        "self": api.url(f"user?accountId={user.account_id}"),
        "accountId": user.account_id,
        "name": user.name,
        "key": user.key,
        "emailAddress": user.email,
        "displayName": user.display_name,
        "active": True,
        "timeZone": "UTC",
        "accountType": "atlassian",
        "avatarUrls": {},
    }


def category_json(api: Api, category: StatusCategory) -> dict[str, Any]:
    return {
        "self": api.url(f"statuscategory/{category.id}"),
        "id": category.id,
        "key": category.key,
        "colorName": category.color,
        "name": category.name,
    }


def status_json(api: Api, status: Status) -> dict[str, Any]:
    return {
        "self": api.url(f"status/{status.id}"),
        "description": status.description,
        "iconUrl": f"{api.origin}/images/icons/statuses/generic.png",
        "name": status.name,
        "id": status.id,
        "statusCategory": category_json(api, status.category),
    }


def transition_json(
    api: Api, transition: Transition, resolutions: Iterable[Resolution] | None = None
) -> dict[str, Any]:
    """A transition; with `resolutions` (expand=transitions.fields) also the fields of its screen."""
    body: dict[str, Any] = {
        "id": transition.id,
        "name": transition.name,
        "to": status_json(api, transition.to),
        "hasScreen": transition.has_screen,
        "isGlobal": False,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }
    if resolutions is not None:
        body["fields"] = _resolve_screen(api, resolutions) if transition.has_screen else {}
    return body


def _resolve_screen(api: Api, resolutions: Iterable[Resolution]) -> dict[str, Any]:
    return {
        "resolution": {
            "required": True,
            "schema": {"type": "resolution", "system": "resolution"},
            "name": "Resolution",
            "key": "resolution",
            "hasDefaultValue": False,
            "operations": ["set"],
            "allowedValues": [resolution_json(api, r) for r in resolutions],
        }
    }


def issue_type_json(api: Api, issue_type: IssueType) -> dict[str, Any]:
    return {
        "self": api.url(f"issuetype/{issue_type.id}"),
        "id": issue_type.id,
        "description": issue_type.description,
        "iconUrl": f"{api.origin}/images/icons/issuetypes/{issue_type.name.lower()}.svg",
        "name": issue_type.name,
        "untranslatedName": issue_type.name,
        "subtask": issue_type.subtask,
        "hierarchyLevel": -1 if issue_type.subtask else 0,
    }


def priority_json(api: Api, priority: Priority) -> dict[str, Any]:
    return {
        "self": api.url(f"priority/{priority.id}"),
        "statusColor": priority.color,
        "description": f"{priority.name} priority",
        "iconUrl": f"{api.origin}/images/icons/priorities/{priority.name.lower()}.svg",
        "name": priority.name,
        "id": priority.id,
    }


def resolution_json(api: Api, resolution: Resolution) -> dict[str, Any]:
    return {
        "self": api.url(f"resolution/{resolution.id}"),
        "id": resolution.id,
        "description": resolution.description,
        "name": resolution.name,
    }


def component_json(api: Api, component: Component) -> dict[str, Any]:
    return {"self": api.url(f"component/{component.id}"), "id": component.id, "name": component.name}


def version_json(api: Api, project: Project, version: Version) -> dict[str, Any]:
    return {
        "self": api.url(f"version/{version.id}"),
        "id": version.id,
        "name": version.name,
        "archived": False,
        "released": version.released,
        "projectId": int(project.id),
    }


def project_json(api: Api, project: Project, catalog: Catalog, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "self": api.url(f"project/{project.id}"),
        "id": project.id,
        "key": project.key,
        "name": project.name,
        "projectTypeKey": "software",
        "simplified": False,
        "avatarUrls": {},
    }
    if full:
        body.update(
            description=f"The {project.name} project",
            lead=user_json(api, catalog.me),
            issueTypes=[issue_type_json(api, t) for t in project.issue_types],
            components=[component_json(api, c) for c in project.components],
            versions=[version_json(api, project, v) for v in project.versions],
            assigneeType="UNASSIGNED",
            roles={},
        )
    return body


def custom_field_json(custom: CustomField) -> dict[str, Any]:
    number = custom.id.removeprefix("customfield_")
    kind = "float" if custom.kind == "number" else "textfield"
    return {
        "id": custom.id,
        "key": custom.id,
        "name": custom.name,
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": [f"cf[{number}]", custom.name],
        "schema": {
            "type": custom.kind,
            "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{kind}",
            "customId": int(number),
        },
    }


# The property Jira Service Management reads to tell internal comments from public ones.
SERVICE_DESK_PROPERTY = "sd.public.comment"


def _is_public(comment: Comment) -> bool:
    marker = comment.properties.get(SERVICE_DESK_PROPERTY)
    return not (isinstance(marker, dict) and marker.get("internal") is True)


def comment_json(
    api: Api, issue: Issue, comment: Comment, *, with_properties: bool = False
) -> dict[str, Any]:
    """A comment; `with_properties` (expand=properties) adds its entity properties."""
    body: dict[str, Any] = {
        "self": api.url(f"issue/{issue.id}/comment/{comment.id}"),
        "id": comment.id,
        "author": user_json(api, comment.author),
        "body": adf.as_version(comment.body, api.version),
        "updateAuthor": user_json(api, comment.author),
        "created": comment.created,
        "updated": comment.updated,
        "jsdPublic": _is_public(comment),
    }
    if comment.visibility is not None:
        shown = {"type": comment.visibility.type, "value": comment.visibility.value}
        if api.version >= 3:  # Cloud adds the identifier (the role name, or the group's name here)
            shown["identifier"] = comment.visibility.value
        body["visibility"] = shown
    if with_properties:
        body["properties"] = [{"key": k, "value": v} for k, v in comment.properties.items()]
    return body


def comments_page(
    api: Api,
    issue: Issue,
    comments: list[Comment],
    start: int,
    total: int,
    *,
    with_properties: bool = False,
) -> dict[str, Any]:
    return {
        "self": api.url(f"issue/{issue.id}/comment"),
        "startAt": start,
        "maxResults": len(comments),
        "total": total,
        "comments": [comment_json(api, issue, c, with_properties=with_properties) for c in comments],
    }


def _timetracking(issue: Issue) -> dict[str, Any]:
    if issue.original_estimate is None:
        return {}
    seconds = duration_seconds(issue.original_estimate) or 0
    return {
        "originalEstimate": issue.original_estimate,
        "remainingEstimate": issue.original_estimate,
        "originalEstimateSeconds": seconds,
        "remainingEstimateSeconds": seconds,
    }


def _parent(api: Api, parent: Issue) -> dict[str, Any]:
    return {
        "id": str(parent.id),
        "key": parent.key,
        "self": api.url(f"issue/{parent.id}"),
        "fields": {
            "summary": parent.summary,
            "status": status_json(api, parent.status),
            "priority": priority_json(api, parent.priority),
            "issuetype": issue_type_json(api, parent.issue_type),
        },
    }


def all_fields(api: Api, issue: Issue, catalog: Catalog) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "summary": issue.summary,
        "description": adf.as_version(issue.description, api.version),
        "environment": adf.as_version(issue.environment, api.version),
        "project": project_json(api, issue.project, catalog),
        "issuetype": issue_type_json(api, issue.issue_type),
        "priority": priority_json(api, issue.priority),
        "labels": list(issue.labels),
        "status": status_json(api, issue.status),
        "statuscategorychangedate": issue.status_changed,
        "resolution": resolution_json(api, issue.resolution) if issue.resolution else None,
        "resolutiondate": issue.resolution_date,
        "created": issue.created,
        "updated": issue.updated,
        "reporter": user_json(api, issue.reporter),
        "creator": user_json(api, issue.creator),
        "assignee": user_json(api, issue.assignee) if issue.assignee else None,
        "duedate": issue.duedate,
        "components": [component_json(api, c) for c in issue.components],
        "fixVersions": [version_json(api, issue.project, v) for v in issue.fix_versions],
        "versions": [version_json(api, issue.project, v) for v in issue.versions],
        "timetracking": _timetracking(issue),
        "subtasks": [],
        "issuelinks": [],
        "attachment": [],
        "comment": comments_page(api, issue, issue.comments, 0, len(issue.comments)),
    }
    if issue.parent is not None:
        fields["parent"] = _parent(api, issue.parent)
    for custom in catalog.custom_fields:
        fields[custom.id] = issue.custom.get(custom.id)
    return fields


@dataclass(frozen=True)
class FieldSelection:
    """Which fields an issue answer carries: Jira's `fields` parameter, parsed."""

    everything: bool
    wanted: frozenset[str]
    excluded: frozenset[str]

    @classmethod
    def parse(cls, names: Iterable[str], default: str) -> FieldSelection:
        items = [n.strip() for raw in names for n in raw.split(",") if n.strip()] or [default]
        everything = any(n in ("*all", "*navigable") for n in items)
        wanted = frozenset(n for n in items if not n.startswith(("-", "*")))
        excluded = frozenset(n[1:] for n in items if n.startswith("-"))
        return cls(everything, wanted, excluded)

    @property
    def id_only(self) -> bool:
        return not self.everything and self.wanted <= {"id"}

    def keeps(self, name: str) -> bool:
        return (self.everything or name in self.wanted) and name not in self.excluded


def issue_json(
    api: Api,
    issue: Issue,
    catalog: Catalog,
    selection: FieldSelection,
    properties: Iterable[str] = (),
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "expand": ISSUE_EXPAND,
        "id": str(issue.id),
        "self": api.url(f"issue/{issue.id}"),
        "key": issue.key,
        "fields": {k: v for k, v in all_fields(api, issue, catalog).items() if selection.keeps(k)},
    }
    wanted_properties = {k: issue.properties[k] for k in properties if k in issue.properties}
    if wanted_properties:
        body["properties"] = wanted_properties
    return body
