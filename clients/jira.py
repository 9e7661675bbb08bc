"""Jira: the REST client (v2 Data Center / Server, v3 Cloud with Atlassian Document Format), its
settings and its PlatformSpec.

Everything the gateway knows about Jira lives here: its configuration block, its error format, how it
names fields in errors (fields.summary -> summary) and where a ticket's priority comes from.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from clients.adf import is_adf, text_to_adf
from clients.auth import StaticAuth
from clients.config_reader import ConfigError, ConfigObject, credentials_block, integer, string
from clients.errors import (
    ErrorDetail,
    ErrorKind,
    PlatformError,
    kind_for_status,
    plain_text,
    status_phrase,
    text_of,
)
from clients.http import AttemptHook, Call, HttpTransport, Request
from clients.marker import check_identifier, check_marker
from clients.platform import CreatedTicket, PlatformSpec, Reply, TicketStatus
from clients.redaction import Redactor
from clients.settings import Credentials, HttpSettings, RetryPolicy, TimeoutConfig, read_http

PLATFORM = "jira"
log = logging.getLogger("clients.jira")

_ISSUE = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[0-9]{1,18}|[0-9]{1,18}")
# reconcileIssues takes at most 50 ids, so status queries go 50 at a time on both versions.
_STATUS_CHUNK = 50
# System rich-text fields; on v3 they take ADF only.
_SYSTEM_RICH_TEXT = ("description", "environment")
_TEXTAREA_SCHEMA = "com.atlassian.jira.plugin.system.customfieldtypes:textarea"


@dataclass(frozen=True)
class JiraSettings:
    http: HttpSettings
    credentials: Credentials  # basic (email + API token) or bearer (PAT)
    api_version: Literal[2, 3] = 2
    default_project: str = "OPS"


def parse_jira_error(status: int, data: Any, text: str) -> ErrorDetail:
    """{"errorMessages": [...], "errors": {"field": "message"}}; Cloud's 401 may be plain text."""
    kind = kind_for_status(status)
    if isinstance(data, dict) and ("errorMessages" in data or "errors" in data):
        messages = [text_of(m) for m in data.get("errorMessages") or [] if text_of(m)]
        errors = data.get("errors") or {}
        fields = {str(k): text_of(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
        message = "; ".join(messages) or ("invalid fields" if fields else status_phrase(status))
        return ErrorDetail(message, kind, fields, from_platform=True)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return ErrorDetail(data["message"], kind, from_platform=True)
    return ErrorDetail(plain_text(text) or status_phrase(status), kind)


class JiraClient:
    platform = PLATFORM

    def __init__(
        self,
        settings: JiraSettings,
        retry: RetryPolicy | None = None,
        timeout: TimeoutConfig | None = None,
        *,
        on_attempt: AttemptHook | None = None,
        rich_text_fields: Collection[str] = (),
    ) -> None:
        if settings.credentials.kind not in ("basic", "bearer"):
            raise ValueError("Jira credentials must be basic (email + API token) or bearer (PAT)")
        redactor = Redactor()
        self._version = settings.api_version
        self._api = f"/rest/api/{settings.api_version}"
        self._default_project = settings.default_project
        self._rich_text = frozenset(rich_text_fields) | frozenset(_SYSTEM_RICH_TEXT)
        self._textareas: frozenset[str] | None = None  # discovered custom textarea field ids
        self._http = HttpTransport(
            PLATFORM,
            settings.http,
            retry or RetryPolicy(),
            timeout or TimeoutConfig(),
            auth=StaticAuth(settings.credentials, redactor),
            parse_error=parse_jira_error,
            redactor=redactor,
            on_attempt=on_attempt,
        )

    async def close(self) -> None:
        await self._http.close()

    # -- PlatformClient -------------------------------------------------------------------------

    async def create(
        self, payload: dict[str, Any], marker: str, *, deadline: float | None = None
    ) -> CreatedTicket:
        check_marker(marker)
        call = self._http.start("create", deadline)
        body = await self._create_body(call, payload, marker)
        request = Request("create", "POST", f"{self._api}/issue", json=body, idempotent=False)
        response = await self._http.send(call, request)
        data = response.data if isinstance(response.data, dict) else {}
        if not isinstance(data.get("id"), str) or not isinstance(data.get("key"), str):
            raise self._bad_response(call, "create answered without an issue id and key", True)
        kept = await self._kept_marker(call, data["id"], marker)
        return self._ticket(data, call, adopted=False, marker_kept=kept)

    async def find_by_marker(self, marker: str, *, deadline: float | None = None) -> CreatedTicket | None:
        check_marker(marker)
        call = self._http.start("find", deadline)
        issue = await self._search_label(call, marker)
        return None if issue is None else self._ticket(issue, call, adopted=True)

    async def get_statuses(
        self, external_ids: list[str], *, deadline: float | None = None
    ) -> list[TicketStatus]:
        ids = [check_identifier(PLATFORM, "statuses", i, _ISSUE) for i in external_ids]
        call = self._http.start("statuses", deadline)
        statuses: list[TicketStatus] = []
        for start in range(0, len(ids), _STATUS_CHUNK):
            statuses.extend(await self._status_chunk(call, ids[start : start + _STATUS_CHUNK]))
        return statuses

    # -- Jira operations ------------------------------------------------------------------------

    async def find_by_label(self, label: str, *, deadline: float | None = None) -> dict[str, Any] | None:
        """The oldest issue carrying `label` (as far as the search index knows yet)."""
        check_marker(label)
        return await self._search_label(self._http.start("find", deadline), label)

    async def get(self, key: str, *, deadline: float | None = None) -> Reply:
        check_identifier(PLATFORM, "get", key, _ISSUE)
        call = self._http.start("get", deadline)
        response = await self._http.send(call, Request("get", "GET", f"{self._api}/issue/{key}"))
        if not isinstance(response.data, dict):
            raise self._bad_response(call, "get answered without an issue", False)
        return Reply(response.data, call.retry_info())

    async def update(self, key: str, fields: dict[str, Any], *, deadline: float | None = None) -> Reply:
        check_identifier(PLATFORM, "update", key, _ISSUE)
        call = self._http.start("update", deadline)
        body = {"fields": await self._adf_fields(call, copy.deepcopy(fields))}
        request = Request("update", "PUT", f"{self._api}/issue/{key}", json=body)
        await self._http.send(call, request)
        return Reply({}, call.retry_info())

    async def add_comment(self, key: str, text: str, *, deadline: float | None = None) -> Reply:
        check_identifier(PLATFORM, "comment", key, _ISSUE)
        call = self._http.start("comment", deadline)
        body = {"body": text_to_adf(text) if self._version == 3 else text}
        # A comment sent twice appears twice: never resent after an ambiguous failure.
        request = Request("comment", "POST", f"{self._api}/issue/{key}/comment", json=body, idempotent=False)
        response = await self._http.send(call, request)
        return Reply(response.data if isinstance(response.data, dict) else {}, call.retry_info())

    async def transition(
        self,
        key: str,
        target_status: str,
        *,
        fields: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Reply:
        """Move the issue to the status named `target_status` (or through the transition of
        that name), resolving the workflow's transition id first."""
        check_identifier(PLATFORM, "transition", key, _ISSUE)
        call = self._http.start("transition", deadline)
        path = f"{self._api}/issue/{key}/transitions"
        listed = await self._http.send(call, Request("transitions", "GET", path))
        transitions = _transitions(listed.data)
        chosen = _pick_transition(transitions, target_status)
        if chosen is None:
            names = sorted({_to_name(t) or str(t.get("name", "")) for t in transitions} - {""})
            raise PlatformError(
                platform=PLATFORM,
                operation="transition",
                kind=ErrorKind.PAYLOAD_REJECTED,
                status=None,
                attempts=call.attempts,
                message=f"no transition of {key} leads to {target_status!r}",
                field_errors={"transition": "available: " + (", ".join(names) or "none")},
            )
        body: dict[str, Any] = {"transition": {"id": str(chosen["id"])}}
        if fields:
            body["fields"] = fields
        request = Request("transition", "POST", path, json=body, idempotent=False)
        # Never resent here after an ambiguous failure: the caller checks where the issue stands.
        await self._http.send(call, request)
        return Reply({"transition_id": str(chosen["id"]), "status": target_status}, call.retry_info())

    # -- internals ------------------------------------------------------------------------------

    async def _create_body(self, call: Call, payload: dict[str, Any], marker: str) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("fields"), dict):
            raise PlatformError(
                platform=PLATFORM,
                operation="create",
                kind=ErrorKind.PAYLOAD_REJECTED,
                message='a Jira create payload is {"fields": {...}}',
            )
        body = copy.deepcopy(payload)
        fields: dict[str, Any] = body["fields"]
        fields.setdefault("project", {"key": self._default_project})
        labels = fields.get("labels") or []
        if not isinstance(labels, list):
            raise PlatformError(
                platform=PLATFORM,
                operation="create",
                kind=ErrorKind.PAYLOAD_REJECTED,
                message="labels must be a list",
                field_errors={"labels": "must be a list"},
            )
        fields["labels"] = labels if marker in labels else [*labels, marker]
        body["fields"] = await self._adf_fields(call, fields)
        return body

    async def _adf_fields(self, call: Call, fields: dict[str, Any]) -> dict[str, Any]:
        """On v3, plain strings in rich-text fields become ADF; v2 takes wiki-markup strings."""
        if self._version != 3:
            return fields
        rich = self._rich_text
        if any(k.startswith("customfield_") and isinstance(v, str) for k, v in fields.items()):
            rich = rich | await self._custom_textareas(call)
        for name, value in fields.items():
            if name in rich and isinstance(value, str) and not is_adf(value):
                fields[name] = text_to_adf(value)
        return fields

    async def _custom_textareas(self, call: Call) -> frozenset[str]:
        """Ids of multi-line text custom fields, read once from GET /field.

        Only asked when a payload carries a plain string in a custom field, since a string is
        also right for single-line text fields and ADF there would be rejected.
        """
        if self._textareas is not None:
            return self._textareas
        try:
            response = await self._http.send(call, Request("fields", "GET", f"{self._api}/field"))
        except PlatformError as err:
            if err.kind in (ErrorKind.UNAVAILABLE, ErrorKind.DEADLINE):
                return frozenset()  # try again next time; the create itself decides the outcome
            log.warning("cannot list Jira fields (%s); custom textareas stay plain", err.kind)
            self._textareas = frozenset()
            return self._textareas
        found = {
            str(f.get("id"))
            for f in (response.data if isinstance(response.data, list) else [])
            if isinstance(f, dict)
            and isinstance(f.get("schema"), dict)
            and f["schema"].get("custom") == _TEXTAREA_SCHEMA
        }
        self._textareas = frozenset(found)
        return self._textareas

    async def _kept_marker(self, call: Call, issue_id: str, marker: str) -> bool | None:
        """Whether the new issue carries the marker label. Jira's create answer holds no fields, so
        it is read back (a plain GET: consistent, unlike search). None when the read fails: the
        issue exists either way, and the next create asks again."""
        request = Request("verify", "GET", f"{self._api}/issue/{issue_id}", params={"fields": "labels"})
        try:
            response = await self._http.send(call, request)
        except PlatformError:
            return None
        fields = response.data.get("fields") if isinstance(response.data, dict) else None
        if not isinstance(fields, dict):
            return None
        labels = fields.get("labels") or []
        return isinstance(labels, list) and marker in labels

    async def _search_label(self, call: Call, marker: str) -> dict[str, Any] | None:
        params = {
            "jql": f'labels = "{marker}" ORDER BY created ASC',
            "maxResults": "1",
            "fields": "labels,summary,status",
        }
        path = f"{self._api}/search/jql" if self._version == 3 else f"{self._api}/search"
        response = await self._http.send(call, Request("find", "GET", path, params=params))
        issues = _issues(response.data)
        if issues is None:
            raise self._bad_response(call, "search answered without an issue list", False)
        if not issues:
            return None
        issue = issues[0]
        labels = (issue.get("fields") or {}).get("labels") or []
        if marker not in labels:
            raise self._bad_response(
                call,
                "search returned an issue without the marker label; the filter was ignored",
                False,
            )
        return issue

    async def _status_chunk(self, call: Call, ids: list[str]) -> list[TicketStatus]:
        jql = f"id in ({', '.join(ids)})"
        if self._version == 3:
            body: dict[str, Any] = {"jql": jql, "fields": ["status"], "maxResults": len(ids)}
            # Search is eventually consistent; reconcileIssues makes it read-after-write for
            # the ids named, which is exactly what a status poll right after a change needs.
            numeric = [int(i) for i in ids if i.isdigit()]
            if numeric:
                body["reconcileIssues"] = numeric
            request = Request("statuses", "POST", f"{self._api}/search/jql", json=body)
        else:
            params = {"jql": jql, "fields": "status", "maxResults": str(len(ids))}
            request = Request("statuses", "GET", f"{self._api}/search", params=params)
        response = await self._http.send(call, request)
        issues = _issues(response.data)
        if issues is None:
            raise self._bad_response(call, "search answered without an issue list", False)
        wanted = set(ids)
        statuses = []
        for issue in issues:
            issue_id, key = str(issue.get("id", "")), str(issue.get("key", ""))
            if issue_id not in wanted and key not in wanted:
                raise self._bad_response(call, "the id filter was ignored", False)
            statuses.append(_status(issue_id if issue_id in wanted else key, issue))
        return statuses

    async def _has_status(self, call: Call, key: str, target: str, chosen: dict[str, Any]) -> bool | None:
        params = {"fields": "status"}
        response = await self._http.send(
            call, Request("get", "GET", f"{self._api}/issue/{key}", params=params)
        )
        data = response.data if isinstance(response.data, dict) else {}
        status = ((data.get("fields") or {}).get("status") or {}).get("name", "")
        wanted = {target.casefold(), _to_name(chosen).casefold()} - {""}
        return True if str(status).casefold() in wanted else None

    def _ticket(
        self, issue: dict[str, Any], call: Call, *, adopted: bool, marker_kept: bool | None = None
    ) -> CreatedTicket:
        key = str(issue["key"])
        return CreatedTicket(
            external_id=str(issue["id"]),
            external_key=key,
            url=f"{self._http.base_url}/browse/{key}",
            adopted=adopted,
            retry=call.retry_info(),
            raw=issue,
            marker_kept=marker_kept,
        )

    def _bad_response(self, call: Call, message: str, applied: bool) -> PlatformError:
        return PlatformError(
            platform=PLATFORM,
            operation=call.operation,
            kind=ErrorKind.BAD_RESPONSE,
            status=call.last_status,
            message=message,
            attempts=call.attempts,
            ambiguous=applied,
        )


def _issues(data: Any) -> list[dict[str, Any]] | None:
    issues = data.get("issues") if isinstance(data, dict) else None
    if not isinstance(issues, list):
        return None
    return [i for i in issues if isinstance(i, dict) and "id" in i and "key" in i]


def _status(external_id: str, issue: dict[str, Any]) -> TicketStatus:
    status = (issue.get("fields") or {}).get("status") or {}
    name = str(status.get("name", ""))
    category = str((status.get("statusCategory") or {}).get("key", "")).casefold()
    if not category:
        # Without a category, fall back on the names Jira's default workflows use.
        lowered = name.casefold()
        category = (
            "done"
            if lowered in ("done", "closed", "resolved")
            else ("new" if lowered in ("open", "to do", "new", "backlog") else "indeterminate")
        )
    return TicketStatus(external_id, name, category != "new", category == "done")


def _transitions(data: Any) -> list[dict[str, Any]]:
    items = data.get("transitions") if isinstance(data, dict) else None
    return [t for t in items or [] if isinstance(t, dict) and "id" in t]


def _to_name(transition: dict[str, Any]) -> str:
    to = transition.get("to")
    return str(to.get("name", "")) if isinstance(to, dict) else ""


def _pick_transition(transitions: list[dict[str, Any]], target: str) -> dict[str, Any] | None:
    wanted = target.casefold()
    # The destination status is what callers mean; a transition's own name is the fallback
    # (workflows name them "Start Progress", "Resolve Issue", ...).
    for t in transitions:
        if _to_name(t).casefold() == wanted:
            return t
    for t in transitions:
        if str(t.get("name", "")).casefold() == wanted:
            return t
    return None


# -- the platform's spec ------------------------------------------------------------------------

_AUTH_KINDS = {"basic": ("username_env", "password_env"), "bearer": ("token_env",)}


def read_settings(obj: ConfigObject, env: Mapping[str, str]) -> JiraSettings:
    """The `platforms.jira` block: base_url, TLS/proxy, auth (basic | bearer), api_version,
    default_project."""
    http = read_http(obj)
    version = obj.get("api_version", integer, 2)
    if version not in (2, 3):
        raise ConfigError(obj.at("api_version"), "must be 2 (Data Center) or 3 (Cloud)")
    kind, secrets = credentials_block(obj.obj("auth"), _AUTH_KINDS, env)
    credentials = Credentials(kind=kind, **secrets)  # type: ignore[arg-type]
    project = obj.get("default_project", string, "OPS")
    return JiraSettings(http=http, credentials=credentials, api_version=version, default_project=project)  # type: ignore[arg-type]


def _build(
    settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
) -> JiraClient:
    if not isinstance(settings, JiraSettings):
        raise TypeError(f"jira needs JiraSettings, got {type(settings).__name__}")
    return JiraClient(settings, retry, timeout, on_attempt=on_attempt)


def priority_of(fields: Mapping[str, str]) -> str:
    return fields.get("priority", "")


def error_field(path: tuple[str, ...]) -> str:
    """Jira names a field by its id: fields.project.key -> project."""
    return path[1] if path[0] == "fields" and len(path) > 1 else path[0]


SPEC = PlatformSpec(
    name=PLATFORM,
    title="Jira",
    read_settings=read_settings,
    build_client=_build,
    error_field=error_field,
    priority_of=priority_of,
    # A commit landing up to 5 s late, plus a second's margin; an issue becomes searchable (JQL, by
    # label) up to 10 s after its commit on Jira Cloud.
    confirmation_delay=6.0,
    search_confirmation_delay=16.0,
)
