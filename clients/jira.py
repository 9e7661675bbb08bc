"""Jira: the REST client (v2 Data Center / Server, v3 Cloud with Atlassian Document Format), its
settings and its PlatformSpec.

Everything the gateway knows about Jira lives here: its configuration block, its error format, how it
names fields in errors (fields.summary -> summary) and where a ticket's priority comes from.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clients.adf import is_adf, text_to_adf
from clients.auth import StaticAuth
from clients.config_reader import ConfigError, ConfigObject, credentials_block, integer, string, string_list
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
from clients.jira_workflow import JiraWorkflow
from clients.marker import check_identifier, check_marker
from clients.platform import Changed, Comment, CreatedTicket, PlatformSpec, Reply, TicketStatus
from clients.redaction import Redactor
from clients.settings import Credentials, HttpSettings, RetryPolicy, TimeoutConfig, read_http

PLATFORM = "jira"
log = logging.getLogger("clients.jira")

_ISSUE = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[0-9]{1,18}|[0-9]{1,18}")
# The comment property that carries the gateway's marker, and how far back a look-up reads.
COMMENT_PROPERTY = "itsm-gateway"
_COMMENT_PAGE = 100
_COMMENT_SCAN = 1000
# reconcileIssues takes at most 50 ids, so status queries go 50 at a time on both versions.
_STATUS_CHUNK = 50
# System rich-text fields; on v3 they take ADF only.
_SYSTEM_RICH_TEXT = ("description", "environment")
_TEXTAREA_SCHEMA = "com.atlassian.jira.plugin.system.customfieldtypes:textarea"


@dataclass(frozen=True)
class JiraLifecycle:
    """How this site's workflows move issues. Transition names differ per workflow and language, so
    each move tries the configured names in order and takes the first the issue offers."""

    resolve_transitions: tuple[str, ...] = ("Done", "Resolve Issue", "Resolve", "Close Issue", "Close")
    reopen_transitions: tuple[str, ...] = ("Reopen", "Reopen Issue", "To Do", "Open")
    # Where a workflow offers no resolve transition from the issue's status (To Do -> Done is not
    # always allowed), the issue goes through one of these first (one step, never a walk).
    resolve_via: tuple[str, ...] = ("In Progress", "Start Progress")
    default_resolution: str = "Done"
    # status category -> the gateway's status
    statuses: Mapping[str, str] = field(
        default_factory=lambda: {"new": "OPEN", "indeterminate": "IN_PROGRESS", "done": "RESOLVED"}
    )
    # Who may read an internal comment ({"type": "role" | "group", "value": ...}); None: public.
    internal_visibility: Mapping[str, str] | None = None
    dedup_label_prefix: str = "itsm-dedup-"  # the dedup key as a label people can see and search


@dataclass(frozen=True)
class JiraSettings:
    http: HttpSettings
    credentials: Credentials  # basic (email + API token) or bearer (PAT)
    api_version: Literal[2, 3] = 2
    default_project: str = "OPS"
    lifecycle: JiraLifecycle = field(default_factory=JiraLifecycle)


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
        self._lifecycle = settings.lifecycle
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
        self._workflow = JiraWorkflow(self._http, self._api, self._version)

    async def close(self) -> None:
        await self._http.close()

    def open_connections(self) -> int:
        """Connections open to the platform (in use and idle): the itsm_platform_connections gauge."""
        return self._http.open_connections()

    # -- PlatformClient -------------------------------------------------------------------------

    async def create(
        self, payload: dict[str, Any], marker: str, *, deadline: float | None = None, dedup_key: str = ""
    ) -> CreatedTicket:
        check_marker(marker)
        call = self._http.start("create", deadline)
        body = await self._create_body(call, payload, marker)
        if dedup_key:
            body["fields"]["labels"].append(dedup_label(self._lifecycle.dedup_label_prefix, dedup_key))
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

    async def status(self, external_id: str, *, deadline: float | None = None) -> TicketStatus:
        check_identifier(PLATFORM, "status", external_id, _ISSUE)
        call = self._http.start("status", deadline)
        return await self._read_status(call, external_id)

    async def update(
        self, external_id: str, payload: dict[str, Any], *, deadline: float | None = None
    ) -> Changed:
        check_identifier(PLATFORM, "update", external_id, _ISSUE)
        call = self._http.start("update", deadline)
        # Compared after the ADF conversion: that is what was sent, and what Jira stores.
        fields = await self._adf_fields(call, copy.deepcopy(dict(payload.get("fields") or {})))
        body = {"fields": fields}
        path = f"{self._api}/issue/{external_id}"
        # Setting fields to values is idempotent: the retry loop may send it again.
        await self._http.send(call, Request("update", "PUT", path, json=body))
        # Jira answers 204 with nothing: what it applied is read back (a screen without a field
        # ignores it on some sites) and compared with what was sent.
        params = {"fields": ",".join(fields)}
        read = await self._http.send(call, Request("verify", "GET", path, params=params))
        stored = (read.data.get("fields") if isinstance(read.data, dict) else None) or {}
        missing = tuple(
            f"fields.{name}" for name, value in fields.items() if not _same(stored.get(name), value)
        )
        return Changed(missing, call.retry_info())

    async def add_comment(
        self, external_id: str, text: str, marker: str, *, internal: bool, deadline: float | None = None
    ) -> Comment:
        check_marker(marker)
        check_identifier(PLATFORM, "comment", external_id, _ISSUE)
        call = self._http.start("comment", deadline)
        body: dict[str, Any] = {
            "body": text_to_adf(text) if self._version == 3 else text,
            # The marker travels as an entity property: invisible to people, readable by the API.
            "properties": [{"key": COMMENT_PROPERTY, "value": {"marker": marker}}],
        }
        if internal and self._lifecycle.internal_visibility:
            body["visibility"] = dict(self._lifecycle.internal_visibility)
        path = f"{self._api}/issue/{external_id}/comment"
        # A comment sent twice appears twice: never resent here after an ambiguous failure.
        response = await self._http.send(call, Request("comment", "POST", path, json=body, idempotent=False))
        comment_id = response.data.get("id") if isinstance(response.data, dict) else None
        if not comment_id:
            raise self._bad_response(call, "comment answered without an id", True)
        return Comment(str(comment_id), call.retry_info())

    async def find_comment(
        self, external_id: str, marker: str, *, deadline: float | None = None
    ) -> str | None:
        check_marker(marker)
        check_identifier(PLATFORM, "find_comment", external_id, _ISSUE)
        call = self._http.start("find_comment", deadline)
        path = f"{self._api}/issue/{external_id}/comment"
        # Newest first: the comment looked for is recent. Comments read back consistently.
        for start in range(0, _COMMENT_SCAN, _COMMENT_PAGE):
            params = {"orderBy": "-created", "expand": "properties", "startAt": str(start),
                      "maxResults": str(_COMMENT_PAGE)}
            page = await self._http.send(call, Request("find_comment", "GET", path, params=params))
            comments = page.data.get("comments") if isinstance(page.data, dict) else None
            if not isinstance(comments, list):
                raise self._bad_response(call, "comments answered without a comment list", False)
            for comment in comments:
                if _carries(comment, marker):
                    return str(comment.get("id"))
            if len(comments) < _COMMENT_PAGE:
                return None
        return None

    async def resolve(
        self, external_id: str, resolution: str, notes: str, *, deadline: float | None = None
    ) -> TicketStatus:
        lifecycle = self._lifecycle
        chosen_resolution = resolution or lifecycle.default_resolution
        return await self._move(
            "resolve", external_id, deadline, lifecycle.resolve_transitions, lifecycle.resolve_via,
            chosen_resolution, notes,
        )

    async def reopen(self, external_id: str, *, deadline: float | None = None) -> TicketStatus:
        return await self._move("reopen", external_id, deadline, self._lifecycle.reopen_transitions)

    async def _move(
        self,
        operation: str,
        key: str,
        deadline: float | None,
        names: tuple[str, ...],
        via: tuple[str, ...] = (),
        resolution: str = "",
        notes: str = "",
    ) -> TicketStatus:
        check_identifier(PLATFORM, operation, key, _ISSUE)
        call = self._http.start(operation, deadline)
        await self._workflow.move(call, operation, key, names, via, resolution, notes)
        return await self._read_status(call, key)

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
        taken = await self._workflow.to_status(call, key, target_status, fields)
        return Reply({"transition_id": taken, "status": target_status}, call.retry_info())

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
            body: dict[str, Any] = {"jql": jql, "fields": ["status", "resolution"], "maxResults": len(ids)}
            # Search is eventually consistent; reconcileIssues makes it read-after-write for
            # the ids named, which is exactly what a status poll right after a change needs.
            numeric = [int(i) for i in ids if i.isdigit()]
            if numeric:
                body["reconcileIssues"] = numeric
            request = Request("statuses", "POST", f"{self._api}/search/jql", json=body)
        else:
            params = {"jql": jql, "fields": "status,resolution", "maxResults": str(len(ids))}
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
            statuses.append(self._status(issue_id if issue_id in wanted else key, issue))
        return statuses

    async def _read_status(self, call: Call, key: str) -> TicketStatus:
        params = {"fields": "status,resolution"}
        request = Request("status", "GET", f"{self._api}/issue/{key}", params=params)
        response = await self._http.send(call, request)
        if not isinstance(response.data, dict):
            raise self._bad_response(call, "the issue came back without fields", False)
        return self._status(key, response.data)

    def _status(self, external_id: str, issue: dict[str, Any]) -> TicketStatus:
        found = _status(external_id, issue)
        category = _category(issue)
        resolution = (issue.get("fields") or {}).get("resolution")
        name = str(resolution.get("name", "")) if isinstance(resolution, dict) else ""
        gateway = self._lifecycle.statuses.get(category, "IN_PROGRESS")
        return TicketStatus(
            found.external_id, found.status, found.acknowledged, found.resolved, gateway, name
        )

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


def _category(issue: dict[str, Any]) -> str:
    """The status category: new, indeterminate or done (the portable way to tell open from done)."""
    status = (issue.get("fields") or {}).get("status") or {}
    category = str((status.get("statusCategory") or {}).get("key", "")).casefold()
    if category:
        return category
    # Without a category, fall back on the names Jira's default workflows use.
    lowered = str(status.get("name", "")).casefold()
    if lowered in ("done", "closed", "resolved"):
        return "done"
    return "new" if lowered in ("open", "to do", "new", "backlog") else "indeterminate"


def _status(external_id: str, issue: dict[str, Any]) -> TicketStatus:
    name = str(((issue.get("fields") or {}).get("status") or {}).get("name", ""))
    category = _category(issue)
    return TicketStatus(external_id, name, category != "new", category == "done")


def _carries(comment: Any, marker: str) -> bool:
    if not isinstance(comment, dict):
        return False
    for prop in comment.get("properties") or []:
        if isinstance(prop, dict) and prop.get("key") == COMMENT_PROPERTY:
            value = prop.get("value")
            return isinstance(value, dict) and value.get("marker") == marker
    return False


def _same(stored: Any, sent: Any) -> bool:
    """Whether a field read back holds what an update sent, in the shapes Jira answers with."""
    if sent is None or sent == [] or sent == "":
        return stored in (None, [], "")
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return False
        if sent.get("type") == "doc":  # ADF
            return stored == sent
        return all(str(stored.get(k, "")) == str(v) for k, v in sent.items())
    if isinstance(sent, list):
        if not isinstance(stored, list):
            return False
        return sorted(map(_item_text, stored)) == sorted(map(_item_text, sent))
    return stored == sent or str(stored) == str(sent)


def _item_text(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("name") or item.get("key") or item.get("id") or item.get("value") or "")
    return str(item)


def dedup_label(prefix: str, key: str) -> str:
    """A dedup key as a Jira label: no spaces, at most 255 characters (a long key's tail becomes a
    hash, so two long keys stay apart)."""
    label = prefix + re.sub(r"\s+", "_", key.strip())
    if len(label) <= 255:
        return label
    return label[:230] + "-" + hashlib.sha256(label.encode()).hexdigest()[:24]


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
    lifecycle = _read_lifecycle(obj.obj("lifecycle"))
    return JiraSettings(
        http=http, credentials=credentials, api_version=version, default_project=project,  # type: ignore[arg-type]
        lifecycle=lifecycle,
    )


def _read_lifecycle(obj: ConfigObject) -> JiraLifecycle:
    d = JiraLifecycle()
    lifecycle = JiraLifecycle(
        resolve_transitions=obj.get("resolve_transitions", _names, d.resolve_transitions),
        reopen_transitions=obj.get("reopen_transitions", _names, d.reopen_transitions),
        resolve_via=obj.get("resolve_via", string_list, d.resolve_via),
        default_resolution=obj.get("default_resolution", string, d.default_resolution),
        statuses=obj.get("statuses", _category_statuses, dict(d.statuses)),
        internal_visibility=obj.get("internal_visibility", _visibility, None),
        dedup_label_prefix=obj.get("dedup_label_prefix", _label_prefix, d.dedup_label_prefix),
    )
    obj.done()
    return lifecycle


def _names(value: Any, path: str) -> tuple[str, ...]:
    names = string_list(value, path)
    if not names:
        raise ConfigError(path, "must name at least one transition")
    return names


def _category_statuses(value: Any, path: str) -> dict[str, str]:
    allowed = ("OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED", "CANCELLED")
    if not isinstance(value, dict) or set(value) != {"new", "indeterminate", "done"}:
        raise ConfigError(path, "must map each status category (new, indeterminate, done) to a status")
    for category, status in value.items():
        if status not in allowed:
            raise ConfigError(f"{path}.{category}", f"must be one of {', '.join(allowed)}")
    return dict(value)


def _visibility(value: Any, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    kinds = ("role", "group")
    if not isinstance(value, dict) or set(value) != {"type", "value"} or value["type"] not in kinds:
        raise ConfigError(path, 'must be {"type": "role" or "group", "value": <name>}, or null for public')
    return {"type": str(value["type"]), "value": string(value["value"], f"{path}.value")}


def _label_prefix(value: Any, path: str) -> str:
    prefix = string(value, path)
    if re.search(r"\s", prefix) or len(prefix) > 64:
        raise ConfigError(path, "must be at most 64 characters without spaces (it starts a label)")
    return prefix


def _build(
    settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
) -> JiraClient:
    if not isinstance(settings, JiraSettings):
        raise TypeError(f"jira needs JiraSettings, got {type(settings).__name__}")
    return JiraClient(settings, retry, timeout, on_attempt=on_attempt)


def priority_of(fields: Mapping[str, str]) -> str:
    return fields.get("priority", "")


_PRIORITY_RANKS = {"Highest": 1, "High": 2, "Medium": 3, "Low": 4, "Lowest": 5}


def priority_rank(priority: str) -> int | None:
    """Jira's default priority scheme, most urgent first; a custom scheme's names are unranked."""
    return _PRIORITY_RANKS.get(priority)


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
    priority_rank=priority_rank,
    priority_fields=("priority",),
    # A commit landing up to 5 s late, plus a second's margin; an issue becomes searchable (JQL, by
    # label) up to 10 s after its commit on Jira Cloud.
    confirmation_delay=6.0,
    search_confirmation_delay=16.0,
)
