"""The Jira sandbox: REST API v2 (Data Center flavour) and v3 (Cloud flavour) on one site.

Issues, comments, transitions, issue properties and search live here; read-only site metadata in
jira_meta, search in jira_search. Answers match Jira's status codes and error bodies, including
v3's insistence on Atlassian Document Format for rich text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox import ui
from sandbox.basicauth import basic_credentials, bearer_token, same_secret
from sandbox.config import SandboxLimits
from sandbox.control import add_control_routes
from sandbox.faultgate import commit_late, cut_connection, fault_middleware, is_control_path
from sandbox.faults import FaultState
from sandbox.jira import adf
from sandbox.jira.catalog import Catalog, sandbox_users
from sandbox.jira.errors import error_response, fault_response, issue_not_found, not_authenticated
from sandbox.jira.fields import (
    FieldCheck,
    FieldContext,
    check_create,
    check_edit,
    check_transition,
    rich_text_error,
)
from sandbox.jira.http import API_ROOT, api_of, api_version, json_object
from sandbox.jira.jql_eval import JqlCompiler
from sandbox.jira.meta import MetaRoutes
from sandbox.jira.render import (
    FieldSelection,
    comment_json,
    comments_page,
    issue_json,
    transition_json,
)
from sandbox.jira.search import SearchRoutes
from sandbox.jira.settings import JiraSandboxAuth
from sandbox.jira.store import Issue, IssueStore, StoreFull
from sandbox.wire import BodyNotJson, BodyTooLarge, is_json_content_type, read_json_body

MAX_PROPERTY_KEY = 255
MAX_PROPERTY_BYTES = 32_768  # Jira's limit on one property value
_VERSION_IN_PATH = re.compile(r"^/rest/api/(2|3|latest)/")
_ANONYMOUS_PATHS = re.compile(r"^/rest/api/(2|3|latest)/serverInfo$")  # public on real sites
BODY_METHODS = frozenset({"POST", "PUT"})


def _path_version(path: str) -> int:
    match = _VERSION_IN_PATH.match(path)
    return 3 if match and match.group(1) == "3" else 2


def _parse_properties(raw: Any) -> tuple[dict[str, Any], str | None]:
    """The `properties` list of a create body, or an error message."""
    if raw is None:
        return {}, None
    if not isinstance(raw, list):
        return {}, "properties must be a list of {key, value} objects."
    properties: dict[str, Any] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or "value" not in item:
            return {}, "properties must be a list of {key, value} objects."
        error = _property_error(item["key"], item["value"])
        if error:
            return {}, error
        properties[item["key"]] = item["value"]
    return properties, None


def _property_error(key: str, value: Any) -> str | None:
    if not key or len(key) > MAX_PROPERTY_KEY:
        return f"The property key must be 1 to {MAX_PROPERTY_KEY} characters long."
    if len(json.dumps(value).encode()) > MAX_PROPERTY_BYTES:
        return f"The property value cannot be longer than {MAX_PROPERTY_BYTES} bytes."
    return None


def _field_errors(check: FieldCheck) -> web.Response:
    return error_response(400, [], check.errors)


class JiraSandbox:
    def __init__(self, auth: JiraSandboxAuth, faults: FaultState, limits: SandboxLimits) -> None:
        me, others = sandbox_users(auth.user)
        self.catalog = Catalog(me=me, others=others)
        self.store = IssueStore(limits.max_records)
        self.faults = faults
        self._auth = auth
        self._limits = limits
        self._compiler = JqlCompiler(self.catalog, self.store.find)

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[_route_misses, fault_middleware(self.faults, fault_response), self._gatekeeper],
            client_max_size=self._limits.max_body_bytes,
        )
        add_control_routes(app, self.faults, self.store)
        # Metadata first: issue/createmeta must win over issue/{issue}.
        MetaRoutes(self.catalog).add_to(app)
        SearchRoutes(
            self.store, self.catalog, self._compiler, self.faults, self._limits.max_body_bytes
        ).add_to(app)
        app.router.add_get("/browse/{issue}", self.issue_page)
        issue = f"{API_ROOT}/issue/{{issue}}"
        app.router.add_post(f"{API_ROOT}/issue", self.create_issue)
        app.router.add_get(issue, self.get_issue)
        app.router.add_put(issue, self.edit_issue)
        app.router.add_delete(issue, self.delete_issue)
        app.router.add_get(f"{issue}/comment", self.list_comments)
        app.router.add_post(f"{issue}/comment", self.add_comment)
        app.router.add_get(f"{issue}/comment/{{comment}}", self.get_comment)
        app.router.add_get(f"{issue}/transitions", self.list_transitions)
        app.router.add_post(f"{issue}/transitions", self.do_transition)
        app.router.add_get(f"{issue}/properties", self.list_properties)
        app.router.add_get(f"{issue}/properties/{{key}}", self.get_property)
        app.router.add_put(f"{issue}/properties/{{key}}", self.put_property)
        app.router.add_delete(f"{issue}/properties/{{key}}", self.delete_property)
        return app

    def _is_user(self, authorization: str) -> bool:
        token = bearer_token(authorization)
        if token is not None:
            return same_secret(token, self._auth.token)
        credentials = basic_credentials(authorization)
        if credentials is None:
            return False
        # Evaluate both so timing does not reveal which part was wrong.
        user_ok = same_secret(credentials[0], self._auth.user)
        token_ok = same_secret(credentials[1], self._auth.token)
        return user_ok and token_ok

    @web.middleware
    async def _gatekeeper(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_control_path(request.path) or not request.path.startswith("/rest/"):
            return await handler(request)
        authorization = request.headers.get("Authorization")
        anonymous_ok = _ANONYMOUS_PATHS.match(request.path) is not None
        # Bad credentials fail even where anonymous access would pass, as on real sites.
        if (authorization is None and not anonymous_ok) or (
            authorization is not None and not self._is_user(authorization)
        ):
            return not_authenticated(_path_version(request.path))
        if request.method in BODY_METHODS and request.can_read_body:
            if not is_json_content_type(request.headers.get("Content-Type", "")):
                return error_response(415, ["Unsupported Media Type: send Content-Type: application/json"])
        return await handler(request)

    def _context(self, request: web.Request) -> FieldContext:
        return FieldContext(self.catalog, api_version(request), self.store.find)

    def _issue(self, request: web.Request) -> Issue | None:
        return self.store.find(request.match_info["issue"])

    def _without_dropped(self, body: dict[str, Any]) -> dict[str, Any]:
        """A screen without some fields (a drill's dropped_fields) silently ignores them."""
        dropped = self.faults.settings.dropped_fields
        fields = body.get("fields")
        if not dropped or not isinstance(fields, dict):
            return body
        return {**body, "fields": {k: v for k, v in fields.items() if k not in dropped}}

    def _comment_room(self, issue: Issue, adding: int) -> web.Response | None:
        limit = self._limits.max_journal_entries
        if len(issue.comments) + adding > limit:
            return error_response(400, [f"The issue has reached the limit of {limit} comments."])
        return None

    async def issue_page(self, request: web.Request) -> web.Response:
        """The UI link /browse/KEY, as a plain page (basic auth, so a browser can log in)."""
        authorization = request.headers.get("Authorization")
        if authorization is None or not self._is_user(authorization):
            return ui.login_required("Jira sandbox")
        issue = self._issue(request)
        if issue is None:
            return ui.not_found("Issue")
        rows = [
            ("Status", f"{issue.status.name} ({issue.status.category.name})"),
            ("Resolution", issue.resolution.name if issue.resolution else "Unresolved"),
            ("Type", issue.issue_type.name),
            ("Priority", issue.priority.name),
            ("Labels", " ".join(issue.labels)),
            ("Assignee", issue.assignee.display_name if issue.assignee else "Unassigned"),
            ("Created", issue.created),
            ("Updated", issue.updated),
            ("Description", adf.as_version(issue.description, 2) or ""),
        ]
        notes = [f"{c.created} {c.author.display_name}\n{adf.as_version(c.body, 2)}" for c in issue.comments]
        return ui.page(issue.key, issue.summary, rows, notes)

    async def create_issue(self, request: web.Request) -> web.StreamResponse:
        body = await json_object(request, self._limits.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        if not isinstance(body.get("fields"), dict):
            return error_response(400, ["Issue must be created with a 'fields' object."])
        body = self._without_dropped(body)
        project, check = check_create(body, self._context(request))
        properties, property_error = _parse_properties(body.get("properties"))
        if property_error:
            check.errors["properties"] = property_error
        if project is None or check.errors:
            return _field_errors(check)
        default_priority = self.catalog.priority({"name": self.catalog.default_priority})
        assert default_priority is not None  # the catalog always holds its default

        def create() -> Issue:
            issue = self.store.create(project, check.values, default_priority, self.catalog.me, properties)
            for comment in check.comments:
                self.store.add_comment(issue, comment, self.catalog.me)
            return issue

        late = commit_late(self.faults, create)
        if late is not None:
            return late
        try:
            issue = create()
        except StoreFull:
            return error_response(507, [f"The sandbox holds at most {self._limits.max_records} issues."])
        if self.faults.roll_drop_after_commit():
            return cut_connection(request)
        api = api_of(request)
        return web.json_response(
            {"id": str(issue.id), "key": issue.key, "self": api.url(f"issue/{issue.id}")}, status=201
        )

    async def get_issue(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        query = request.query
        selection = FieldSelection.parse(query.getall("fields", []), "*all")
        properties = [p for raw in query.getall("properties", []) for p in raw.split(",") if p]
        return web.json_response(issue_json(api_of(request), issue, self.catalog, selection, properties))

    async def edit_issue(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        body = await json_object(request, self._limits.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        check = check_edit(self._without_dropped(body), issue, self._context(request))
        if check.errors:
            return _field_errors(check)
        if (full := self._comment_room(issue, len(check.comments))) is not None:
            return full
        self.store.edit(issue, check.values)
        for comment in check.comments:
            self.store.add_comment(issue, comment, self.catalog.me)
        if request.query.get("returnIssue", "").lower() == "true":
            selection = FieldSelection.parse([], "*all")
            return web.json_response(issue_json(api_of(request), issue, self.catalog, selection))
        return web.Response(status=204)

    async def delete_issue(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        self.store.delete(issue)
        return web.Response(status=204)

    async def list_comments(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        try:
            start = max(0, int(request.query.get("startAt", "0")))
            count = max(0, int(request.query.get("maxResults", "5000")))
        except ValueError:
            return error_response(400, ["startAt and maxResults must be integers."])
        ordered = (
            list(reversed(issue.comments)) if request.query.get("orderBy") == "-created" else issue.comments
        )
        page = ordered[start : start + count]
        return web.json_response(comments_page(api_of(request), issue, page, start, len(issue.comments)))

    async def add_comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        body = await json_object(request, self._limits.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        text = body.get("body")
        error = "Comment body can not be empty!" if not text else rich_text_error(text, api_version(request))
        if error:
            return error_response(400, [], {"comment": error})
        if (full := self._comment_room(issue, 1)) is not None:
            return full
        comment = self.store.add_comment(issue, text, self.catalog.me)
        return web.json_response(comment_json(api_of(request), issue, comment), status=201)

    async def get_comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        wanted = request.match_info["comment"]
        comment = next((c for c in issue.comments if c.id == wanted), None)
        if comment is None:
            return error_response(404, [f"Can not find a comment for the id: {wanted}."])
        return web.json_response(comment_json(api_of(request), issue, comment))

    async def list_transitions(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        api = api_of(request)
        wanted = request.query.get("transitionId")
        transitions = [
            transition_json(api, t)
            for t in self.catalog.transitions_from(issue.status)
            if wanted is None or t.id == wanted
        ]
        return web.json_response({"expand": "transitions", "transitions": transitions})

    async def do_transition(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        body = await json_object(request, self._limits.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        wanted = body.get("transition")
        wanted_id = wanted.get("id") if isinstance(wanted, dict) else None
        if wanted_id is None:
            return error_response(400, ["Missing 'transition' identifier"])
        transition = next(
            (t for t in self.catalog.transitions_from(issue.status) if t.id == str(wanted_id)), None
        )
        if transition is None:
            return error_response(400, [f"Transition id '{wanted_id}' is not valid for this issue."])
        resolution, check = check_transition(
            body, issue, transition.to.category.key == "done", self._context(request)
        )
        if check.errors:
            return _field_errors(check)
        if (full := self._comment_room(issue, len(check.comments))) is not None:
            return full
        self.store.transition(issue, transition, resolution)
        for comment in check.comments:
            self.store.add_comment(issue, comment, self.catalog.me)
        return web.Response(status=204)

    async def list_properties(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        api = api_of(request)
        keys = [{"self": api.url(f"issue/{issue.id}/properties/{k}"), "key": k} for k in issue.properties]
        return web.json_response({"keys": keys})

    async def get_property(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        key = request.match_info["key"]
        if key not in issue.properties:
            return error_response(404, [f"The property with key '{key}' does not exist."])
        return web.json_response({"key": key, "value": issue.properties[key]})

    async def put_property(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        key = request.match_info["key"]
        try:
            value = await read_json_body(request, self._limits.max_body_bytes)
        except BodyTooLarge:
            return error_response(
                413, [f"The request body is larger than {self._limits.max_body_bytes} bytes."]
            )
        except BodyNotJson:
            return error_response(400, ["The property value must be valid JSON."])
        if error := _property_error(key, value):
            return error_response(400, [error])
        created = key not in issue.properties
        if created and len(issue.properties) >= self._limits.max_issue_properties:
            return error_response(
                400, [f"An issue can hold at most {self._limits.max_issue_properties} properties."]
            )
        issue.properties[key] = value
        return web.Response(status=201 if created else 200)

    async def delete_property(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        if issue.properties.pop(request.match_info["key"], None) is None:
            return error_response(
                404, [f"The property with key '{request.match_info['key']}' does not exist."]
            )
        return web.Response(status=204)


@web.middleware
async def _route_misses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Jira's JSON for unknown paths and methods instead of aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return error_response(405, [f"Method {request.method} is not allowed for {request.path}."])
    except web.HTTPNotFound:
        return web.json_response({"message": f"null for uri: {request.url}", "status-code": 404}, status=404)
