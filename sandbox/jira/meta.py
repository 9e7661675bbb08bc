"""Jira's read-only site endpoints that client libraries call before and around issue work:
serverInfo, myself, field, project, issuetype, priority, status, resolution and createmeta."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.jira.catalog import STATUS_CATEGORIES, Catalog, IssueType, Project, find_by_ref
from sandbox.jira.errors import error_response
from sandbox.jira.http import API_ROOT, api_of, api_version
from sandbox.jira.render import (
    Api,
    category_json,
    component_json,
    custom_field_json,
    issue_type_json,
    priority_json,
    project_json,
    resolution_json,
    status_json,
    user_json,
    version_json,
)


@dataclass(frozen=True)
class _SystemField:
    id: str
    name: str
    type: str
    clauses: tuple[str, ...]
    items: str | None = None
    required: bool = False  # on create
    settable: bool = True


SYSTEM_FIELDS = (
    _SystemField("summary", "Summary", "string", ("summary",), required=True),
    _SystemField("issuetype", "Issue Type", "issuetype", ("issuetype", "type"), required=True),
    _SystemField("project", "Project", "project", ("project",), required=True),
    _SystemField("description", "Description", "string", ("description",)),
    _SystemField("environment", "Environment", "string", ("environment",)),
    _SystemField("priority", "Priority", "priority", ("priority",)),
    _SystemField("labels", "Labels", "array", ("labels",), items="string"),
    _SystemField("assignee", "Assignee", "user", ("assignee",)),
    _SystemField("reporter", "Reporter", "user", ("reporter",)),
    _SystemField("duedate", "Due date", "date", ("due", "duedate")),
    _SystemField("components", "Components", "array", ("component",), items="component"),
    _SystemField("fixVersions", "Fix versions", "array", ("fixVersion",), items="version"),
    _SystemField("versions", "Affects versions", "array", ("affectedVersion",), items="version"),
    _SystemField("parent", "Parent", "issuelink", ("parent",)),
    _SystemField("timetracking", "Time tracking", "timetracking", ("timetracking",)),
    _SystemField("status", "Status", "status", ("status",), settable=False),
    _SystemField("resolution", "Resolution", "resolution", ("resolution",), settable=False),
    _SystemField("resolutiondate", "Resolved", "datetime", ("resolutiondate", "resolved"), settable=False),
    _SystemField("created", "Created", "datetime", ("created", "createdDate"), settable=False),
    _SystemField("updated", "Updated", "datetime", ("updated", "updatedDate"), settable=False),
    _SystemField("creator", "Creator", "user", ("creator",), settable=False),
    _SystemField("comment", "Comment", "comments-page", ("comment",), settable=False),
    _SystemField("issuekey", "Key", "string", ("id", "issue", "issuekey", "key"), settable=False),
    _SystemField("statusCategory", "Status Category", "statusCategory", ("statusCategory",), settable=False),
)


def _schema(field: _SystemField) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": field.type, "system": field.id}
    if field.items:
        schema["items"] = field.items
    return schema


def _field_list(catalog: Catalog) -> list[dict[str, Any]]:
    fields = [
        {
            "id": f.id,
            "key": f.id,
            "name": f.name,
            "custom": False,
            "orderable": f.settable,
            "navigable": True,
            "searchable": True,
            "clauseNames": list(f.clauses),
            "schema": _schema(f),
        }
        for f in SYSTEM_FIELDS
    ]
    fields.extend(custom_field_json(c) for c in catalog.custom_fields)
    return fields


def _allowed_values(api: Api, field_id: str, project: Project, catalog: Catalog) -> list[Any] | None:
    values: dict[str, list[Any]] = {
        "priority": [priority_json(api, p) for p in catalog.priorities],
        "components": [component_json(api, c) for c in project.components],
        "fixVersions": [version_json(api, project, v) for v in project.versions],
        "versions": [version_json(api, project, v) for v in project.versions],
        "issuetype": [issue_type_json(api, t) for t in project.issue_types],
        "project": [project_json(api, project, catalog)],
    }
    return values.get(field_id)


def _field_meta(api: Api, project: Project, catalog: Catalog) -> list[dict[str, Any]]:
    metas: list[dict[str, Any]] = []
    for f in SYSTEM_FIELDS:
        if not f.settable:
            continue
        meta: dict[str, Any] = {
            "fieldId": f.id,
            "key": f.id,
            "name": f.name,
            "required": f.required,
            "schema": _schema(f),
            "hasDefaultValue": f.id == "priority",
            "operations": ["add", "set", "remove"] if f.items else ["set"],
        }
        allowed = _allowed_values(api, f.id, project, catalog)
        if allowed is not None:
            meta["allowedValues"] = allowed
        metas.append(meta)
    for custom in catalog.custom_fields:
        described = custom_field_json(custom)
        metas.append(
            {
                "fieldId": custom.id,
                "key": custom.id,
                "name": custom.name,
                "required": False,
                "schema": described["schema"],
                "hasDefaultValue": False,
                "operations": ["set"],
            }
        )
    return metas


def _page(values: list[Any]) -> dict[str, Any]:
    return {"maxResults": len(values), "startAt": 0, "total": len(values), "isLast": True, "values": values}


class MetaRoutes:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def add_to(self, app: web.Application) -> None:
        routes = (
            ("serverInfo", self.server_info),
            ("myself", self.myself),
            ("field", self.fields),
            ("project", self.projects),
            ("project/search", self.project_search),
            ("project/{project}", self.project),
            ("project/{project}/components", self.components),
            ("project/{project}/versions", self.versions),
            ("project/{project}/statuses", self.project_statuses),
            ("issuetype", self.issue_types),
            ("issuetype/{id}", self.issue_type),
            ("priority", self.priorities),
            ("priority/{id}", self.priority),
            ("status", self.statuses),
            ("statuscategory", self.status_categories),
            ("resolution", self.resolutions),
            ("resolution/{id}", self.resolution),
            ("issue/createmeta", self.createmeta),
            ("issue/createmeta/{project}/issuetypes", self.createmeta_issue_types),
            ("issue/createmeta/{project}/issuetypes/{id}", self.createmeta_fields),
        )
        for path, handler in routes:
            app.router.add_get(f"{API_ROOT}/{path}", handler)

    def _project(self, request: web.Request) -> Project | web.Response:
        text = request.match_info["project"]
        project = self.catalog.project_by_text(text)
        if project is None:
            return error_response(404, [f"No project could be found with key '{text}'."])
        return project

    async def server_info(self, request: web.Request) -> web.Response:
        cloud = api_version(request) >= 3
        numbers = [1001, 0, 0] if cloud else [9, 12, 15]
        return web.json_response(
            {
                "baseUrl": str(request.url.origin()),
                "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.15",
                "versionNumbers": numbers,
                # The v3 API exists only on Cloud, so the version asked for picks the flavour.
                "deploymentType": "Cloud" if cloud else "Server",
                "buildNumber": 100290 if cloud else 9120015,
                "buildDate": "2025-01-01T00:00:00.000+0000",
                "serverTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "scmInfo": "sandbox",
                "serverTitle": "Jira Sandbox",
            }
        )

    async def myself(self, request: web.Request) -> web.Response:
        body = user_json(api_of(request), self.catalog.me)
        body.update(locale="en_US", groups={"size": 1, "items": []})
        return web.json_response(body)

    async def fields(self, _: web.Request) -> web.Response:
        return web.json_response(_field_list(self.catalog))

    async def projects(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response([project_json(api, p, self.catalog) for p in self.catalog.projects])

    async def project_search(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response(_page([project_json(api, p, self.catalog) for p in self.catalog.projects]))

    async def project(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if isinstance(project, web.Response):
            return project
        return web.json_response(project_json(api_of(request), project, self.catalog, full=True))

    async def components(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if isinstance(project, web.Response):
            return project
        api = api_of(request)
        return web.json_response([component_json(api, c) for c in project.components])

    async def versions(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if isinstance(project, web.Response):
            return project
        api = api_of(request)
        return web.json_response([version_json(api, project, v) for v in project.versions])

    async def project_statuses(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if isinstance(project, web.Response):
            return project
        api = api_of(request)
        statuses = [status_json(api, s) for s in self.catalog.statuses]
        return web.json_response(
            [
                {
                    "self": api.url(f"issuetype/{t.id}"),
                    "id": t.id,
                    "name": t.name,
                    "subtask": t.subtask,
                    "statuses": statuses,
                }
                for t in project.issue_types
            ]
        )

    async def issue_types(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response([issue_type_json(api, t) for t in self.catalog.issue_types])

    async def issue_type(self, request: web.Request) -> web.Response:
        found = find_by_ref(self.catalog.issue_types, {"id": request.match_info["id"]}, ("id",))
        if found is None:
            return error_response(
                404, [f"The issue type with id '{request.match_info['id']}' does not exist."]
            )
        return web.json_response(issue_type_json(api_of(request), found))

    async def priorities(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response([priority_json(api, p) for p in self.catalog.priorities])

    async def priority(self, request: web.Request) -> web.Response:
        found = self.catalog.priority({"id": request.match_info["id"]})
        if found is None:
            return error_response(404, [f"The priority with id '{request.match_info['id']}' does not exist."])
        return web.json_response(priority_json(api_of(request), found))

    async def statuses(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response([status_json(api, s) for s in self.catalog.statuses])

    async def status_categories(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response([category_json(api, c) for c in STATUS_CATEGORIES])

    async def resolutions(self, request: web.Request) -> web.Response:
        api = api_of(request)
        return web.json_response([resolution_json(api, r) for r in self.catalog.resolutions])

    async def resolution(self, request: web.Request) -> web.Response:
        found = self.catalog.resolution({"id": request.match_info["id"]})
        if found is None:
            return error_response(
                404, [f"The resolution with id '{request.match_info['id']}' does not exist."]
            )
        return web.json_response(resolution_json(api_of(request), found))

    def _wanted_types(self, request: web.Request, project: Project) -> list[IssueType]:
        ids = {i for raw in request.query.getall("issuetypeIds", []) for i in raw.split(",") if i}
        names = {
            n.casefold() for raw in request.query.getall("issuetypeNames", []) for n in raw.split(",") if n
        }
        return [
            t
            for t in project.issue_types
            if (not ids and not names) or t.id in ids or t.name.casefold() in names
        ]

    async def createmeta(self, request: web.Request) -> web.Response:
        """The pre-9.0 createmeta that jira-python and older clients still call."""
        api = api_of(request)
        wanted = {
            value.casefold()
            for key in ("projectKeys", "projectIds")
            for raw in request.query.getall(key, [])
            for value in raw.split(",")
            if value
        }
        with_fields = "projects.issuetypes.fields" in request.query.get("expand", "")
        projects = []
        for project in self.catalog.projects:
            if wanted and project.key.casefold() not in wanted and project.id not in wanted:
                continue
            types = []
            for issue_type in self._wanted_types(request, project):
                described = issue_type_json(api, issue_type)
                if with_fields:
                    described["fields"] = {m["fieldId"]: m for m in _field_meta(api, project, self.catalog)}
                types.append(described)
            described_project = project_json(api, project, self.catalog)
            described_project["issuetypes"] = types
            projects.append(described_project)
        return web.json_response({"expand": "projects", "projects": projects})

    async def createmeta_issue_types(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if isinstance(project, web.Response):
            return project
        api = api_of(request)
        return web.json_response(_page([issue_type_json(api, t) for t in project.issue_types]))

    async def createmeta_fields(self, request: web.Request) -> web.Response:
        project = self._project(request)
        if isinstance(project, web.Response):
            return project
        if find_by_ref(project.issue_types, {"id": request.match_info["id"]}, ("id",)) is None:
            return error_response(404, [f"Issue type with id '{request.match_info['id']}' does not exist."])
        return web.json_response(_page(_field_meta(api_of(request), project, self.catalog)))
