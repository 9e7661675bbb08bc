"""The ServiceNow sandbox: the Table API for the incident table and its journal
(sys_journal_field, read-only), plus /oauth_token.do.

Faithful to the instance where clients can tell: paths (/api/now/table, /v1, /v2), status codes,
headers (Location, X-Total-Count, Link), every value a string, reference fields as
{"link", "value"}, and the error bodies. Unknown sysparm_* parameters are ignored, as the
instance ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from sandbox import ui
from sandbox.config import SandboxLimits
from sandbox.control import add_control_routes
from sandbox.faultgate import commit_late, cut_connection, fault_middleware, is_control_path
from sandbox.faults import FaultState
from sandbox.servicenow import journal, schema
from sandbox.servicenow.auth import ServiceNowAuth
from sandbox.servicenow.errors import (
    error_response,
    fault_response,
    no_record,
    not_authenticated,
)
from sandbox.servicenow.query import select
from sandbox.servicenow.render import (
    RenderOptions,
    display_mode,
    field_list,
    render_incident,
)
from sandbox.servicenow.settings import ServiceNowSandboxAuth
from sandbox.servicenow.store import (
    ClosedIncidentError,
    DataPolicyError,
    Incident,
    IncidentStore,
    JournalEntry,
    JournalFull,
    SnUser,
    StoreFull,
)
from sandbox.wire import (
    BodyNotJson,
    BodyTooLarge,
    accepts_json,
    flag,
    int_param,
    is_json_content_type,
    read_json_body,
)

TABLE = "incident"
API_PREFIXES = ("/api/now/table", "/api/now/v1/table", "/api/now/v2/table")
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 10_000
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
USER_KEY = web.RequestKey("servicenow_user", SnUser)


def _render_options(request: web.Request) -> RenderOptions:
    query = request.query
    return RenderOptions(
        base_url=str(request.url.origin()),
        display=display_mode(query.get("sysparm_display_value")),
        exclude_reference_link=flag(query.get("sysparm_exclude_reference_link")),
        fields=field_list(query.get("sysparm_fields")),
    )


def _input_values(request: web.Request, body: Mapping[str, Any]) -> dict[str, Any]:
    if not flag(request.query.get("sysparm_input_display_value")):
        return dict(body)
    return {
        name: schema.choice_value(name, value) if isinstance(value, str) else value
        for name, value in body.items()
    }


def _page_links(request: web.Request, offset: int, limit: int, total: int) -> str | None:
    """The Link header, or None when everything fits on the page asked for."""
    if offset == 0 and total <= limit:
        return None

    def url(page_offset: int) -> str:
        params = dict(request.query)
        params.update(sysparm_limit=str(limit), sysparm_offset=str(page_offset))
        return f"{request.url.origin()}{request.path}?{urlencode(params)}"

    last = max(0, (total - 1) // limit * limit)
    links = [f'<{url(0)}>;rel="first"']
    if offset > 0:
        links.append(f'<{url(max(0, offset - limit))}>;rel="prev"')
    if offset + limit < total:
        links.append(f'<{url(offset + limit)}>;rel="next"')
    links.append(f'<{url(last)}>;rel="last"')
    return ",".join(links)


class ServiceNowSandbox:
    def __init__(self, auth: ServiceNowSandboxAuth, faults: FaultState, limits: SandboxLimits) -> None:
        self.store = IncidentStore(limits.max_records, limits.max_journal_entries)
        self.faults = faults
        self._auth = ServiceNowAuth(auth, limits.max_oauth_tokens)
        self._limits = limits

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                _route_misses,
                fault_middleware(self.faults, fault_response),
                self._gatekeeper,
            ],
            client_max_size=self._limits.max_body_bytes,
        )
        add_control_routes(app, self.faults, self.store)
        app.router.add_post("/oauth_token.do", self.oauth_token)
        app.router.add_get("/nav_to.do", self.record_page)
        app.router.add_get(f"/{TABLE}.do", self.record_page)
        for prefix in API_PREFIXES:
            app.router.add_get(prefix + "/{table}", self.list_records)
            app.router.add_post(prefix + "/{table}", self.create_record)
            item = prefix + "/{table}/{sys_id}"
            app.router.add_get(item, self.get_record)
            app.router.add_patch(item, self.update_record)
            app.router.add_put(item, self.update_record)
            app.router.add_delete(item, self.delete_record)
        return app

    @web.middleware
    async def _gatekeeper(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Credentials first, then the JSON media types the REST API insists on."""
        if is_control_path(request.path) or not request.path.startswith("/api/"):
            return await handler(request)
        user = self._auth.authenticate(request.headers.get("Authorization"))
        if user is None:
            return not_authenticated()
        request[USER_KEY] = user
        accept = request.headers.get("Accept")
        # Instances default a missing Accept to JSON; the team's API contract (ITSM_APIS.md) makes
        # it a 400 here so a client that forgets the header is caught before it meets an instance
        # configured otherwise. Every off-the-shelf HTTP client sends at least */*, which passes.
        if accept is None:
            return error_response(400, "Missing Accept header", "Send Accept: application/json")
        if not accepts_json(accept):
            return error_response(
                406, "Not Acceptable", f"Response format not supported for Accept: {accept}"
            )
        if request.method in BODY_METHODS:
            content_type = request.headers.get("Content-Type")
            if content_type is None:
                return error_response(
                    400, "Missing Content-Type header", "Send Content-Type: application/json"
                )
            if not is_json_content_type(content_type):
                return error_response(
                    415, "Unsupported Media Type", f"Content-Type {content_type} is not supported"
                )
        return await handler(request)

    async def oauth_token(self, request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except (UnicodeDecodeError, ValueError):
            return web.json_response(
                {"error": "invalid_request", "error_description": "malformed form body"}, status=400
            )
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        answer = self._auth.grant(fields, request.headers.get("Authorization"))
        return web.json_response(answer.body, status=answer.status)

    async def record_page(self, request: web.Request) -> web.Response:
        """The UI link: /nav_to.do?uri=incident.do?sys_id=<id> (or /incident.do?sys_id=<id>)."""
        user = self._auth.authenticate(request.headers.get("Authorization"))
        if user is None:
            return ui.login_required("Service-now")
        target = URL(request.query.get("uri", "")) if request.path == "/nav_to.do" else request.url
        incident = self.store.get(target.query.get("sys_id", ""))
        if incident is None:
            return ui.not_found("Incident")
        shown = RenderOptions(base_url=str(request.url.origin()), display="true", exclude_reference_link=True)
        values = render_incident(incident, shown)
        rows = [
            (name, str(values[name]))
            for name in sorted(values)
            if values[name] and name not in ("work_notes", "comments")
        ]
        notes = [f"{e.created_on} {e.created_by} ({e.element})\n{e.value}" for e in incident.journal]
        return ui.page(incident.values["number"], incident.values["short_description"], rows, notes)

    async def _body(self, request: web.Request) -> Mapping[str, Any] | web.Response:
        try:
            body = await read_json_body(request, self._limits.max_body_bytes)
        except BodyTooLarge:
            return error_response(
                413, "Request entity too large", f"Limit is {self._limits.max_body_bytes} bytes"
            )
        except BodyNotJson:
            return error_response(400, "Exception while reading request", "The payload is not valid JSON.")
        if not isinstance(body, dict):
            return error_response(
                400, "Exception while reading request", "The payload must be a JSON object."
            )
        # An ACL or business rule blanking fields (a drill's dropped_fields) acts on every write.
        dropped = self.faults.settings.dropped_fields
        return _input_values(request, {k: v for k, v in body.items() if k not in dropped})

    async def list_records(self, request: web.Request) -> web.Response:
        if (table_error := _check_table(request, readable=True)) is not None:
            return table_error
        query = request.query
        limit = int_param(query.get("sysparm_limit"), DEFAULT_LIMIT)
        offset = int_param(query.get("sysparm_offset"), 0)
        if limit is None or limit < 1:
            return error_response(400, "Invalid sysparm_limit", "Must be a positive integer")
        if offset is None or offset < 0:
            return error_response(400, "Invalid sysparm_offset", "Must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
        options = _render_options(request)
        if _table(request) == journal.TABLE:
            entries = select(self.store.journal(), JournalEntry.columns, query, journal.is_column)
            total = len(entries)
            result = [journal.render_entry(e, options) for e in entries[offset : offset + limit]]
        else:
            incidents = select(
                self.store.all(), _incident_columns, query, schema.is_known_field, schema.INTEGER_FIELDS
            )
            total = len(incidents)
            result = [render_incident(i, options) for i in incidents[offset : offset + limit]]
        headers = {"X-Total-Count": str(total)}
        links = _page_links(request, offset, limit, total)
        if links is not None and not flag(query.get("sysparm_suppress_pagination_header")):
            headers["Link"] = links
        return web.json_response({"result": result}, headers=headers)

    async def get_record(self, request: web.Request) -> web.Response:
        if (table_error := _check_table(request, readable=True)) is not None:
            return table_error
        if _table(request) == journal.TABLE:
            entry = self.store.journal_entry(request.match_info["sys_id"])
            if entry is None:
                return no_record()
            return web.json_response({"result": journal.render_entry(entry, _render_options(request))})
        incident = self.store.get(request.match_info["sys_id"])
        if incident is None:
            return no_record()
        return web.json_response({"result": render_incident(incident, _render_options(request))})

    async def create_record(self, request: web.Request) -> web.StreamResponse:
        if (table_error := _check_table(request)) is not None:
            return table_error
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        user = _user(request)
        late = commit_late(self.faults, lambda: self.store.create(body, user))
        if late is not None:
            return late
        try:
            incident = self.store.create(body, user)
        except StoreFull:
            return error_response(
                507, "Insufficient Storage", f"The sandbox holds at most {self._limits.max_records} records"
            )
        except DataPolicyError as exc:
            return _data_policy_response(exc)
        if self.faults.roll_drop_after_commit():
            return cut_connection(request)
        location = f"{request.url.origin()}/api/now/table/{TABLE}/{incident.sys_id}"
        return web.json_response(
            {"result": render_incident(incident, _render_options(request))},
            status=201,
            headers={"Location": location},
        )

    async def update_record(self, request: web.Request) -> web.StreamResponse:
        if (table_error := _check_table(request)) is not None:
            return table_error
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        sys_id, user = request.match_info["sys_id"], _user(request)
        if self.store.get(sys_id) is None:
            return no_record()
        # Journal-only writes too: a note applied late or behind a cut connection and then re-sent
        # is a duplicate every reader of the incident sees.
        late = commit_late(self.faults, lambda: self.store.update(sys_id, body, user))
        if late is not None:
            return late
        try:
            incident = self.store.update(sys_id, body, user)
        except DataPolicyError as exc:
            return _data_policy_response(exc)
        except ClosedIncidentError:
            return _closed_response()
        except JournalFull:
            return error_response(
                507,
                "Insufficient Storage",
                f"At most {self._limits.max_journal_entries} journal entries per record",
            )
        if incident is None:
            return no_record()
        if self.faults.roll_drop_after_commit():
            return cut_connection(request)
        return web.json_response({"result": render_incident(incident, _render_options(request))})

    async def delete_record(self, request: web.Request) -> web.Response:
        if (table_error := _check_table(request)) is not None:
            return table_error
        if not self.store.delete(request.match_info["sys_id"]):
            return no_record()
        return web.Response(status=204)


def _user(request: web.Request) -> SnUser:
    user: SnUser = request[USER_KEY]
    return user


def _table(request: web.Request) -> str:
    return request.match_info["table"]


def _check_table(request: web.Request, *, readable: bool = False) -> web.Response | None:
    """The answer for a table this request cannot use, or None: incident takes everything, the
    journal reads only (`readable`), every other table is unknown to the sandbox."""
    table = _table(request)
    if table == journal.TABLE:
        return None if readable else journal.write_refused(request.method)
    if table != TABLE:
        return error_response(400, f"Invalid table {table}", None)
    return None


def _incident_columns(incident: Incident) -> dict[str, str]:
    return incident.values


def _data_policy_response(exc: DataPolicyError) -> web.Response:
    fields = ", ".join(exc.missing_labels)
    return error_response(
        403,
        "Operation Failed",
        f"Data Policy Exception: The following fields are mandatory: {fields}",
    )


def _closed_response() -> web.Response:
    # Closed is final on the instance: an ACL keeps the record from being written back to an open
    # state (a follow-up goes to a new incident).
    return error_response(
        403,
        "Operation Failed",
        "ACL Exception Update Failed due to security constraints: a Closed incident cannot be reopened",
    )


@web.middleware
async def _route_misses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The instance answers unknown paths and methods in its own JSON, not aiohttp's text."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return error_response(405, "Method not Supported", f"{request.method} method not supported for API")
    except web.HTTPNotFound:
        return error_response(400, "Requested URI does not represent any resource", None)
