"""Jira issue search: Data Center's /search (startAt paging) and Cloud's /search/jql (page tokens).

Search reads an index that lags behind writes on real sites. With `search_lag_ms` set, an issue
stays out of search results for that long after its creation, while GET issue/{key} and Cloud's
reconcileIssues already see it: the read-after-write gap the gateway's dedup lookups must survive.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.faults import FaultState
from sandbox.jira.catalog import Catalog
from sandbox.jira.errors import error_response
from sandbox.jira.http import API_ROOT, api_of, api_version, json_object
from sandbox.jira.jql import JqlError, parse_jql
from sandbox.jira.jql_eval import CompiledJql, JqlCompiler
from sandbox.jira.render import FieldSelection, issue_json
from sandbox.jira.store import Issue, IssueStore

DEFAULT_MAX_RESULTS = 50
MAX_CLASSIC_RESULTS = 1_000  # Data Center's jira.search.views.default.max
MAX_ENHANCED_RESULTS = 100  # Cloud, when fields beyond id are asked for
MAX_ENHANCED_ID_RESULTS = 5_000  # Cloud, id-only pages
MAX_RECONCILE = 50
UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


class _BadRequest(Exception):
    pass


@dataclass(frozen=True)
class _Params:
    """Search parameters from either a GET query string or a POST body."""

    raw: Mapping[str, Any]
    lists: Mapping[str, list[str]]

    def text(self, name: str, default: str = "") -> str:
        value = self.raw.get(name)
        return default if value is None else str(value)

    def integer(self, name: str, default: int) -> int:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise _BadRequest(
                f"The value '{value}' is not a valid number for the parameter '{name}'."
            ) from exc
        if number < 0:
            raise _BadRequest(f"The parameter '{name}' must not be negative.")
        return number

    def names(self, name: str) -> list[str]:
        return self.lists.get(name, [])


async def _params(request: web.Request, max_bytes: int) -> _Params | web.Response:
    if request.method == "GET":
        query = request.query
        # Repeated (fields=a&fields=b) and comma-separated (fields=a,b) forms are both in use.
        split = {
            key: [v for raw in query.getall(key) for v in raw.split(",") if v] for key in set(query.keys())
        }
        return _Params(query, split)
    body = await json_object(request, max_bytes)
    if isinstance(body, web.Response):
        return body
    lists: dict[str, list[str]] = {}
    for key, value in body.items():
        if isinstance(value, list):
            lists[key] = [str(v) for v in value]
        elif isinstance(value, str):
            lists[key] = [v for v in value.split(",") if v]
    return _Params(body, lists)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _token_offset(token: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise _BadRequest("The provided next page token is invalid or expired.") from exc
    prefix, _, number = decoded.partition(":")
    if prefix != "offset" or not number.isdigit():
        raise _BadRequest("The provided next page token is invalid or expired.")
    return int(number)


class SearchRoutes:
    def __init__(
        self,
        store: IssueStore,
        catalog: Catalog,
        compiler: JqlCompiler,
        faults: FaultState,
        max_body_bytes: int,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._compiler = compiler
        self._faults = faults
        self._max_body_bytes = max_body_bytes

    def add_to(self, app: web.Application) -> None:
        for method in ("GET", "POST"):
            app.router.add_route(method, f"{API_ROOT}/search", self.classic)
            app.router.add_route(method, f"{API_ROOT}/search/jql", self.enhanced)
        app.router.add_post(f"{API_ROOT}/search/approximate-count", self.approximate_count)

    def _indexed(self, issue: Issue) -> bool:
        lag_ms = self._faults.settings.search_lag_ms
        return lag_ms <= 0 or (self._store.now_monotonic() - issue.created_at) * 1000 >= lag_ms

    def _compile(self, jql: str) -> CompiledJql:
        try:
            return self._compiler.compile(parse_jql(jql))
        except JqlError as exc:
            raise _BadRequest(str(exc)) from exc

    async def classic(self, request: web.Request) -> web.Response:
        if api_version(request) >= 3:
            return error_response(410, [REMOVED])
        params = await _params(request, self._max_body_bytes)
        if isinstance(params, web.Response):
            return params
        try:
            start = params.integer("startAt", 0)
            limit = min(params.integer("maxResults", DEFAULT_MAX_RESULTS), MAX_CLASSIC_RESULTS)
            compiled = self._compile(params.text("jql"))
        except _BadRequest as exc:
            return error_response(400, [str(exc)])
        found = compiled.order([i for i in self._store.all() if self._indexed(i) and compiled.matches(i)])
        selection = FieldSelection.parse(params.names("fields"), "*navigable")
        api = api_of(request)
        issues = [
            issue_json(api, i, self._catalog, selection, params.names("properties"))
            for i in found[start : start + limit]
        ]
        return web.json_response(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": limit,
                "total": len(found),
                "issues": issues,
            }
        )

    async def enhanced(self, request: web.Request) -> web.Response:
        params = await _params(request, self._max_body_bytes)
        if isinstance(params, web.Response):
            return params
        selection = FieldSelection.parse(params.names("fields"), "id")
        cap = MAX_ENHANCED_ID_RESULTS if selection.id_only else MAX_ENHANCED_RESULTS
        try:
            token = params.text("nextPageToken")
            start = _token_offset(token) if token else 0
            limit = min(params.integer("maxResults", DEFAULT_MAX_RESULTS), cap)
            reconcile = self._reconcile_ids(params)
            compiled = self._compile(params.text("jql"))
            if not compiled.bounded:
                raise _BadRequest(UNBOUNDED)
        except _BadRequest as exc:
            return error_response(400, [str(exc)])
        found = compiled.order(
            [i for i in self._store.all() if (self._indexed(i) or i.id in reconcile) and compiled.matches(i)]
        )
        api = api_of(request)
        page = found[start : start + limit]
        issues = [
            {"id": str(i.id)}
            if selection.id_only
            else issue_json(api, i, self._catalog, selection, params.names("properties"))
            for i in page
        ]
        body: dict[str, Any] = {"issues": issues, "isLast": start + limit >= len(found)}
        if not body["isLast"]:
            body["nextPageToken"] = _page_token(start + limit)
        return web.json_response(body)

    @staticmethod
    def _reconcile_ids(params: _Params) -> set[int]:
        raw = params.names("reconcileIssues")
        if len(raw) > MAX_RECONCILE:
            raise _BadRequest(f"The reconcileIssues list can hold at most {MAX_RECONCILE} issue ids.")
        if not all(item.strip().isdigit() for item in raw):
            raise _BadRequest("reconcileIssues must be a list of issue ids.")
        return {int(item) for item in raw}

    async def approximate_count(self, request: web.Request) -> web.Response:
        params = await _params(request, self._max_body_bytes)
        if isinstance(params, web.Response):
            return params
        try:
            compiled = self._compile(params.text("jql"))
            if not compiled.bounded:
                raise _BadRequest(UNBOUNDED)
        except _BadRequest as exc:
            return error_response(400, [str(exc)])
        count = sum(1 for i in self._store.all() if self._indexed(i) and compiled.matches(i))
        return web.json_response({"count": count})
