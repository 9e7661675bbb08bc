"""The Jira sandbox: REST API v2 (Data Center flavour) and v3 (Cloud flavour) on one site.

Issues, comments (with visibility and entity properties), transitions, issue and comment
properties live here; read-only site metadata in jira_meta, search in jira_search. Every write
(create, edit, comment, transition) is subject to the late-commit and drop-after-commit faults.
Answers match Jira's status codes and error bodies, including v3's insistence on Atlassian
Document Format for rich text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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
from sandbox.jira.store import Comment, Issue, IssueStore, StoreFull, Visibility
from sandbox.wire import BodyNotJson, BodyTooLarge, is_json_content_type, read_json_body

MAX_PROPERTY_KEY = 255
MAX_PROPERTY_BYTES = 32_768  # Jira's limit on one property value
_VERSION_IN_PATH = re.compile(r"^/rest/api/(2|3|latest)/")
_ANONYMOUS_PATHS = re.compile(r"^/rest/api/(2|3|latest)/serverInfo$")  # public on real sites
BODY_METHODS = frozenset({"POST", "PUT"})


def _is_read(request: web.Request) -> bool:
    """GETs, and the searches Jira takes as POSTs (a JQL query does not fit a URL): not writes."""
    return request.method in ("GET", "HEAD") or "/search" in request.path


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


def _parse_visibility(raw: Any, catalog: Catalog) -> tuple[Visibility | None, str | None]:
    """A comment's `visibility`, or the commentLevel error Jira answers with."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict) or raw.get("type") not in ("role", "group") or not isinstance(
        raw.get("value"), str
    ):
        return None, "Visibility must be an object with type 'role' or 'group' and a value."
    kind, value = raw["type"], raw["value"]
    if kind == "role" and value not in catalog.project_roles:
        return None, f"You are currently not a member of the project role: {value}."
    if kind == "group" and value not in catalog.groups:
        return None, f"You are currently not a member of the group: {value}."
    return Visibility(kind, value), None


def _expands(request: web.Request, what: str) -> bool:
    return what in {part.strip() for raw in request.query.getall("expand", []) for part in raw.split(",")}


def _comment_not_found(comment_id: str) -> web.Response:
    return error_response(404, [f"Can not find a comment for the id: {comment_id}."])


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
        faults = fault_middleware(self.faults, fault_response, _is_read)
        app = web.Application(
            middlewares=[_route_misses, faults, self._gatekeeper],
            client_max_size=self._limits.max_body_bytes,
        )
        add_control_routes(app, self.faults, self.store)
        comment_property = f"{API_ROOT}/comment/{{comment}}/properties"
        app.router.add_get(comment_property, self.list_comment_properties)
        app.router.add_get(f"{comment_property}/{{key}}", self.get_comment_property)
        app.router.add_put(f"{comment_property}/{{key}}", self.put_comment_property)
        app.router.add_delete(f"{comment_property}/{{key}}", self.delete_comment_property)
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
        """A screen without some fields (a drill's dropped_fields) silently ignores them, whether
        they are set (`fields`) or operated on (`update`)."""
        dropped = self.faults.settings.dropped_fields
        if not dropped:
            return body
        kept = dict(body)
        for section in ("fields", "update"):
            values = body.get(section)
            if isinstance(values, dict):
                kept[section] = {k: v for k, v in values.items() if k not in dropped}
        return kept

    def _comment_without_dropped(self, body: dict[str, Any]) -> dict[str, Any]:
        """On a comment, dropped_fields names its attributes (properties, visibility): lost the
        way an app or automation rule stripping them would lose them."""
        dropped = self.faults.settings.dropped_fields
        return {k: v for k, v in body.items() if k == "body" or k not in dropped}

    def _deliver(self, request: web.Request, apply: Callable[[], web.StreamResponse]) -> web.StreamResponse:
        """Applies a validated write under the write faults: answered 504 and applied late, or
        applied and the connection cut, or applied and answered."""
        late = commit_late(self.faults, apply)
        if late is not None:
            return late
        response = apply()
        if response.status < 300 and self.faults.roll_drop_after_commit():
            return cut_connection(request)
        return response

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

        api = api_of(request)

        def create() -> web.Response:
            me = self.catalog.me
            try:
                issue = self.store.create(project, check.values, default_priority, me, properties)
            except StoreFull:
                return error_response(507, [f"The sandbox holds at most {self._limits.max_records} issues."])
            for comment in check.comments:
                self.store.add_comment(issue, comment, self.catalog.me)
            return web.json_response(
                {"id": str(issue.id), "key": issue.key, "self": api.url(f"issue/{issue.id}")}, status=201
            )

        return self._deliver(request, create)

    async def get_issue(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        query = request.query
        selection = FieldSelection.parse(query.getall("fields", []), "*all")
        properties = [p for raw in query.getall("properties", []) for p in raw.split(",") if p]
        return web.json_response(issue_json(api_of(request), issue, self.catalog, selection, properties))

    async def edit_issue(self, request: web.Request) -> web.StreamResponse:
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
        api = api_of(request)
        return_issue = request.query.get("returnIssue", "").lower() == "true"

        def edit() -> web.Response:
            self.store.edit(issue, check.values)
            for comment in check.comments:
                self.store.add_comment(issue, comment, self.catalog.me)
            if return_issue:
                selection = FieldSelection.parse([], "*all")
                return web.json_response(issue_json(api, issue, self.catalog, selection))
            return web.Response(status=204)

        return self._deliver(request, edit)

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
        answer = comments_page(
            api_of(request),
            issue,
            page,
            start,
            len(issue.comments),
            with_properties=_expands(request, "properties"),
        )
        return web.json_response(answer)

    async def add_comment(self, request: web.Request) -> web.StreamResponse:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        body = await json_object(request, self._limits.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        body = self._comment_without_dropped(body)
        text = body.get("body")
        error = "Comment body can not be empty!" if not text else rich_text_error(text, api_version(request))
        if error:
            return error_response(400, [], {"comment": error})
        properties, property_error = _parse_properties(body.get("properties"))
        if property_error:
            return error_response(400, [], {"properties": property_error})
        if len(properties) > self._limits.max_issue_properties:
            return error_response(
                400, [f"A comment can hold at most {self._limits.max_issue_properties} properties."]
            )
        visibility, visibility_error = _parse_visibility(body.get("visibility"), self.catalog)
        if visibility_error:
            return error_response(400, [], {"commentLevel": visibility_error})
        if (full := self._comment_room(issue, 1)) is not None:
            return full
        api, with_properties = api_of(request), _expands(request, "properties")

        def add() -> web.Response:
            # Checked again when a late write lands: other comments may have filled the issue since.
            if (full := self._comment_room(issue, 1)) is not None:
                return full
            comment = self.store.add_comment(issue, text, self.catalog.me, visibility, properties)
            return web.json_response(
                comment_json(api, issue, comment, with_properties=with_properties), status=201
            )

        return self._deliver(request, add)

    async def get_comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        wanted = request.match_info["comment"]
        comment = next((c for c in issue.comments if c.id == wanted), None)
        if comment is None:
            return _comment_not_found(wanted)
        shown = comment_json(api_of(request), issue, comment, with_properties=_expands(request, "properties"))
        return web.json_response(shown)

    def _comment(self, request: web.Request) -> Comment | web.Response:
        wanted = request.match_info["comment"]
        found = self.store.find_comment(wanted)
        return _comment_not_found(wanted) if found is None else found[1]

    async def list_comment_properties(self, request: web.Request) -> web.Response:
        comment = self._comment(request)
        if isinstance(comment, web.Response):
            return comment
        api = api_of(request)
        keys = [
            {"self": api.url(f"comment/{comment.id}/properties/{k}"), "key": k} for k in comment.properties
        ]
        return web.json_response({"keys": keys})

    async def get_comment_property(self, request: web.Request) -> web.Response:
        comment = self._comment(request)
        if isinstance(comment, web.Response):
            return comment
        key = request.match_info["key"]
        if key not in comment.properties:
            return error_response(404, [f"The property with key '{key}' does not exist."])
        return web.json_response({"key": key, "value": comment.properties[key]})

    async def put_comment_property(self, request: web.Request) -> web.Response:
        comment = self._comment(request)
        if isinstance(comment, web.Response):
            return comment
        return await self._put_property(request, comment.properties, "A comment")

    async def delete_comment_property(self, request: web.Request) -> web.Response:
        comment = self._comment(request)
        if isinstance(comment, web.Response):
            return comment
        key = request.match_info["key"]
        if comment.properties.pop(key, None) is None:
            return error_response(404, [f"The property with key '{key}' does not exist."])
        return web.Response(status=204)

    async def list_transitions(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return issue_not_found()
        api = api_of(request)
        wanted = request.query.get("transitionId")
        # expand=transitions.fields shows each transition's screen: what a POST must carry.
        resolutions = self.catalog.resolutions if _expands(request, "transitions.fields") else None
        transitions = [
            transition_json(api, t, resolutions)
            for t in self.catalog.transitions_from(issue.status)
            if wanted is None or t.id == wanted
        ]
        return web.json_response({"expand": "transitions", "transitions": transitions})

    async def do_transition(self, request: web.Request) -> web.StreamResponse:
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
            self._without_dropped(body), issue, transition.has_screen, self._context(request)
        )
        if check.errors:
            return _field_errors(check)
        if (full := self._comment_room(issue, len(check.comments))) is not None:
            return full

        def move() -> web.Response:
            # A late write finds the issue wherever it went meanwhile; from there the workflow may
            # no longer offer this transition, and Jira would refuse it.
            if transition not in self.catalog.transitions_from(issue.status):
                return error_response(400, [f"Transition id '{transition.id}' is not valid for this issue."])
            self.store.transition(issue, transition, resolution)
            for comment in check.comments:
                self.store.add_comment(issue, comment, self.catalog.me)
            return web.Response(status=204)

        return self._deliver(request, move)

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
        return await self._put_property(request, issue.properties, "An issue")

    async def _put_property(
        self, request: web.Request, properties: dict[str, Any], owner: str
    ) -> web.Response:
        """PUT .../properties/{key} on an issue or a comment: 201 created, 200 updated."""
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
        created = key not in properties
        if created and len(properties) >= self._limits.max_issue_properties:
            return error_response(
                400, [f"{owner} can hold at most {self._limits.max_issue_properties} properties."]
            )
        properties[key] = value
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
