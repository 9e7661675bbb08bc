"""ServiceNow: the Table API client (incident table by default), its settings and its PlatformSpec.

Everything the gateway knows about ServiceNow lives here: its configuration block, its error format,
how it names fields in errors, and how it derives a ticket's priority (impact x urgency).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clients.auth import OAuthPasswordGrant, StaticAuth
from clients.config_reader import ConfigError, ConfigObject, credentials_block, string, string_list
from clients.errors import (
    ErrorDetail,
    ErrorKind,
    PlatformError,
    kind_for_status,
    plain_text,
    status_phrase,
    text_of,
)
from clients.http import AttemptHook, AuthProvider, Call, HttpTransport, Request
from clients.marker import check_identifier, check_marker
from clients.platform import Changed, Comment, CreatedTicket, PlatformSpec, Reply, TicketStatus
from clients.redaction import Redactor
from clients.settings import Credentials, HttpSettings, RetryPolicy, TimeoutConfig, read_http

PLATFORM = "servicenow"
_SYS_ID = re.compile(r"[0-9a-f]{32}")
_TABLE = re.compile(r"[a-z][a-z0-9_]{0,79}")
_DONE = frozenset({"RESOLVED", "CLOSED", "CANCELLED"})
# Keeps one status query's URL well under common 8 KB request-line limits (33 chars per id).
_STATUS_CHUNK = 100
# Reference fields as plain sys_ids, not {"link", "value"} objects: smaller, and flat like the rest.
_PLAIN = {"sysparm_exclude_reference_link": "true"}
# Every field as {"value", "display_value"}: an update sent by name (a group's name) is found applied
# in display_value, one sent by value (a choice's number) in value.
_BOTH = {"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"}


_DEFAULT_STATES = {
    "1": "OPEN", "2": "IN_PROGRESS", "3": "IN_PROGRESS", "6": "RESOLVED", "7": "CLOSED", "8": "CANCELLED",
}  # fmt: skip


@dataclass(frozen=True)
class ServiceNowLifecycle:
    """How this instance's incidents move: state numbers and close codes differ between releases
    and instances (some keep an older state model), so they are configuration."""

    # state number -> the gateway's status
    statuses: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_STATES))
    resolved_state: str = "6"
    reopen_state: str = "2"
    default_close_code: str = "Solution provided"
    close_codes: tuple[str, ...] = ()  # allowed close codes; () accepts any
    # Where a dedup key is written for people to see why tickets were grouped ("" for nowhere):
    # not correlation_id, which holds the gateway's marker.
    dedup_field: str = "correlation_display"


@dataclass(frozen=True)
class ServiceNowSettings:
    http: HttpSettings
    credentials: Credentials  # basic or oauth
    table: str = "incident"
    lifecycle: ServiceNowLifecycle = field(default_factory=ServiceNowLifecycle)


_MANDATORY = re.compile(r"following fields are mandatory:\s*(?P<fields>.+)", re.IGNORECASE)


def parse_servicenow_error(status: int, data: Any, text: str) -> ErrorDetail:
    """{"error": {"message", "detail"}, "status": "failure"}; the OAuth endpoint uses
    {"error": "<code>", "error_description": "..."}."""
    kind = kind_for_status(status)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        message = text_of(err.get("message"))
        detail = text_of(err.get("detail"))
        full = f"{message}: {detail}" if message and detail and detail != message else message
        full = full or detail
        fields: dict[str, str] = {}
        mandatory = _MANDATORY.search(detail) or _MANDATORY.search(message)
        if status == 403 and mandatory:
            # A data policy, not an ACL: the ticket lacks fields, the credentials are fine.
            kind = ErrorKind.PAYLOAD_REJECTED
            # The instance names fields by label ("Resolution code"), so split on commas only.
            for name in mandatory.group("fields").strip().rstrip(".").split(","):
                if name.strip():
                    fields[name.strip()] = "mandatory"
        return ErrorDetail(full or status_phrase(status), kind, fields, from_platform=True)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message = text_of(data.get("error_description")) or data["error"]
        return ErrorDetail(message, kind, from_platform=True)
    return ErrorDetail(plain_text(text) or status_phrase(status), kind)


class ServiceNowClient:
    platform = PLATFORM

    def __init__(
        self,
        settings: ServiceNowSettings,
        retry: RetryPolicy | None = None,
        timeout: TimeoutConfig | None = None,
        *,
        on_attempt: AttemptHook | None = None,
    ) -> None:
        if not _TABLE.fullmatch(settings.table):
            raise ValueError(f"invalid ServiceNow table name {settings.table!r}")
        redactor = Redactor()
        self._table = settings.table
        self._lifecycle = settings.lifecycle
        self._path = f"/api/now/table/{settings.table}"
        self._http = HttpTransport(
            PLATFORM,
            settings.http,
            retry or RetryPolicy(),
            timeout or TimeoutConfig(),
            auth=_auth(settings, redactor),
            parse_error=parse_servicenow_error,
            redactor=redactor,
            on_attempt=on_attempt,
        )

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
        # The marker wins over any correlation_id in the payload: it is what a look-up finds.
        body = {**payload, "correlation_id": marker}
        if dedup_key and self._lifecycle.dedup_field:
            body[self._lifecycle.dedup_field] = dedup_key
        request = Request("create", "POST", self._path, params=_PLAIN, json=body, idempotent=False)
        response = await self._http.send(call, request)
        record = _result_object(response.data)
        if record is None or not _SYS_ID.fullmatch(str(record.get("sys_id", ""))):
            raise self._bad_response(call, "create answered without a record sys_id", applied=True)
        # An ACL or business rule that blanks correlation_id shows here: the record comes back
        # without it, and could never be found by it.
        kept = record.get("correlation_id") == marker
        return self._ticket(record, call, adopted=False, marker_kept=kept)

    async def find_by_marker(self, marker: str, *, deadline: float | None = None) -> CreatedTicket | None:
        check_marker(marker)
        call = self._http.start("find", deadline)
        record = await self._lookup(call, marker)
        return None if record is None else self._ticket(record, call, adopted=True)

    async def get_statuses(
        self, external_ids: list[str], *, deadline: float | None = None
    ) -> list[TicketStatus]:
        ids = [check_identifier(PLATFORM, "statuses", i, _SYS_ID) for i in external_ids]
        call = self._http.start("statuses", deadline)
        statuses: list[TicketStatus] = []
        for start in range(0, len(ids), _STATUS_CHUNK):
            statuses.extend(await self._status_chunk(call, ids[start : start + _STATUS_CHUNK]))
        return statuses

    async def status(self, external_id: str, *, deadline: float | None = None) -> TicketStatus:
        reply = await self._record("status", "GET", external_id, None, deadline, idempotent=True)
        return self._status(external_id, reply.data)

    async def update(
        self, external_id: str, payload: dict[str, Any], *, deadline: float | None = None
    ) -> Changed:
        # Setting fields to given values is idempotent; journal fields are not (see add_comment).
        if "work_notes" in payload or "comments" in payload:
            raise ValueError("journal fields go through add_comment")
        body = {name: "" if value is None else value for name, value in payload.items()}
        reply = await self._record(
            "update", "PATCH", external_id, body, deadline, idempotent=True, params=_BOTH
        )
        # The instance answers with the record as it stands: a field an ACL denies (or one it does
        # not know) comes back unchanged, silently. Compare what was sent with both forms it shows.
        missing = tuple(name for name, value in body.items() if not _holds(reply.data.get(name), value))
        return Changed(missing, reply.retry)

    async def add_comment(
        self, external_id: str, text: str, marker: str, *, internal: bool, deadline: float | None = None
    ) -> Comment:
        check_marker(marker)
        element = "work_notes" if internal else "comments"
        # A journal entry sent twice appears twice: never resent here after an ambiguous failure.
        # The marker ends the entry, short, so the entry can be found in the journal.
        body = {element: f"{text}\n\n[{marker}]"}
        reply = await self._record("comment", "PATCH", external_id, body, deadline, idempotent=False)
        call = self._http.start("find_comment", deadline)
        entry = await self._journal_entry(call, external_id, marker)
        if entry is None:  # written (the PATCH answered) but not in the journal: a business rule?
            raise self._bad_response(call, "the journal entry is missing after the write", applied=True)
        return Comment(entry, reply.retry)

    async def find_comment(
        self, external_id: str, marker: str, *, deadline: float | None = None
    ) -> str | None:
        check_marker(marker)
        check_identifier(PLATFORM, "find_comment", external_id, _SYS_ID)
        return await self._journal_entry(self._http.start("find_comment", deadline), external_id, marker)

    async def resolve(
        self, external_id: str, resolution: str, notes: str, *, deadline: float | None = None
    ) -> TicketStatus:
        lifecycle = self._lifecycle
        code = resolution or lifecycle.default_close_code
        if lifecycle.close_codes and code not in lifecycle.close_codes:
            raise PlatformError(
                platform=PLATFORM, operation="resolve", kind=ErrorKind.PAYLOAD_REJECTED,
                message=f"close code {code!r} is not one of the configured close codes",
                field_errors={"close_code": "one of: " + ", ".join(lifecycle.close_codes)},
            )
        body = {"state": lifecycle.resolved_state, "close_code": code, "close_notes": notes or "Resolved."}
        return await self._move("resolve", external_id, body, lifecycle.resolved_state, deadline)

    async def reopen(self, external_id: str, *, deadline: float | None = None) -> TicketStatus:
        body = {"state": self._lifecycle.reopen_state}
        return await self._move("reopen", external_id, body, self._lifecycle.reopen_state, deadline)

    # -- ServiceNow operations ------------------------------------------------------------------

    async def find_by_correlation(
        self, marker: str, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        check_marker(marker)
        return await self._lookup(self._http.start("find", deadline), marker)

    async def get(self, sys_id: str, *, deadline: float | None = None) -> Reply:
        return await self._record("get", "GET", sys_id, None, deadline, idempotent=True)

    # -- internals ------------------------------------------------------------------------------

    async def _record(
        self,
        operation: str,
        method: str,
        sys_id: str,
        body: dict[str, Any] | None,
        deadline: float | None,
        *,
        idempotent: bool,
        params: Mapping[str, str] = _PLAIN,
    ) -> Reply:
        check_identifier(PLATFORM, operation, sys_id, _SYS_ID)
        call = self._http.start(operation, deadline)
        request = Request(
            operation,
            method,
            f"{self._path}/{sys_id}",
            params=params,
            json=body,
            idempotent=idempotent,
        )
        response = await self._http.send(call, request)
        record = _result_object(response.data)
        if record is None:
            raise self._bad_response(call, f"{operation} answered without a record", applied=False)
        return Reply(record, call.retry_info())

    async def _move(
        self, operation: str, sys_id: str, body: dict[str, Any], state: str, deadline: float | None
    ) -> TicketStatus:
        """A state change the instance must confirm: its answer carries the state it kept (a business
        rule or an ACL may refuse the move silently)."""
        reply = await self._record(operation, "PATCH", sys_id, body, deadline, idempotent=True)
        found = self._status(sys_id, reply.data)
        if found.status != state:
            raise PlatformError(
                platform=PLATFORM, operation=operation, kind=ErrorKind.NOT_APPLIED,
                message=f"the incident stayed in state {found.status!r} (a business rule or ACL refused "
                f"state {state!r})",
                attempts=reply.retry.attempts,
            )
        return found

    async def _journal_entry(self, call: Call, sys_id: str, marker: str) -> str | None:
        """The journal entry of the incident that ends with the marker (the journal is a table the
        instance reads back consistently, unlike a search index)."""
        params = {
            **_PLAIN,
            "sysparm_query": f"element_id={sys_id}^valueLIKE[{marker}]^ORDERBYsys_created_on",
            "sysparm_fields": "sys_id,element_id,value",
            "sysparm_limit": "1",
        }
        request = Request("find_comment", "GET", "/api/now/table/sys_journal_field", params=params)
        records = _result_list((await self._http.send(call, request)).data)
        if records is None:
            raise self._bad_response(call, "journal query answered without a result list", applied=False)
        if not records:
            return None
        entry = records[0]
        if entry.get("element_id") != sys_id or marker not in str(entry.get("value", "")):
            raise self._bad_response(call, "the journal query's filter was ignored", applied=False)
        return str(entry.get("sys_id", ""))

    def _status(self, sys_id: str, record: Mapping[str, Any]) -> TicketStatus:
        state = _plain_value(record.get("state"))
        category = self._lifecycle.statuses.get(state, "IN_PROGRESS")
        return TicketStatus(
            sys_id,
            state,
            acknowledged=category != "OPEN",
            resolved=category in _DONE,
            category=category,
            # The close code stays on a reopened incident: it is the resolution only while done.
            resolution=_plain_value(record.get("close_code")) if category in _DONE else "",
        )

    async def _lookup(self, call: Call, marker: str) -> dict[str, Any] | None:
        params = {
            **_PLAIN,
            # Oldest first: if a race ever made two, every lookup adopts the same one.
            "sysparm_query": f"correlation_id={marker}^ORDERBYsys_created_on",
            "sysparm_limit": "1",
        }
        response = await self._http.send(call, Request("find", "GET", self._path, params=params))
        records = _result_list(response.data)
        if records is None:
            raise self._bad_response(call, "query answered without a result list", applied=False)
        if not records:
            return None
        record = records[0]
        if record.get("correlation_id") != marker:
            # ServiceNow drops a filter on a field it does not know (or may not read) and
            # returns everything: adopting that record would attach the call to a stranger's
            # ticket, and treating it as "absent" would be a guess.
            raise self._bad_response(
                call,
                "the correlation_id filter was ignored (a record with another correlation_id "
                "came back); check that the field exists and is readable",
                applied=False,
            )
        return record

    async def _status_chunk(self, call: Call, ids: list[str]) -> list[TicketStatus]:
        params = {
            **_PLAIN,
            "sysparm_query": "sys_idIN" + ",".join(ids),
            "sysparm_fields": "sys_id,state,close_code",
            "sysparm_limit": str(len(ids)),
        }
        response = await self._http.send(call, Request("statuses", "GET", self._path, params=params))
        records = _result_list(response.data)
        if records is None:
            raise self._bad_response(call, "query answered without a result list", applied=False)
        wanted = set(ids)
        statuses: list[TicketStatus] = []
        for record in records:
            sys_id = str(record.get("sys_id", ""))
            if sys_id not in wanted:
                raise self._bad_response(call, "the sys_idIN filter was ignored", applied=False)
            statuses.append(self._status(sys_id, record))
        return statuses

    def _ticket(
        self, record: dict[str, Any], call: Call, *, adopted: bool, marker_kept: bool | None = None
    ) -> CreatedTicket:
        sys_id = str(record["sys_id"])
        base = str(self._http.base_url)
        return CreatedTicket(
            external_id=sys_id,
            external_key=str(record.get("number", "")),
            url=f"{base}/nav_to.do?uri={self._table}.do?sys_id={sys_id}",
            adopted=adopted,
            retry=call.retry_info(),
            raw=record,
            marker_kept=marker_kept,
        )

    def _bad_response(self, call: Call, message: str, *, applied: bool) -> PlatformError:
        return PlatformError(
            platform=PLATFORM,
            operation=call.operation,
            kind=ErrorKind.BAD_RESPONSE,
            status=call.last_status,
            message=message,
            attempts=call.attempts,
            ambiguous=applied,
        )


def _auth(settings: ServiceNowSettings, redactor: Redactor) -> AuthProvider:
    if settings.credentials.kind == "oauth":
        return OAuthPasswordGrant(settings.credentials, redactor)
    return StaticAuth(settings.credentials, redactor)


def _plain_value(value: Any) -> str:
    """A field as the instance answers it: a string, or {"value", "display_value"} in display modes."""
    if isinstance(value, dict):
        return str(value.get("value", ""))
    return "" if value is None else str(value)


def _holds(answered: Any, sent: Any) -> bool:
    """Whether the record's field (either form, with sysparm_display_value=all) is what was sent."""
    wanted = "" if sent is None else str(sent)
    if isinstance(answered, dict):
        return wanted in (str(answered.get("value", "")), str(answered.get("display_value", "")))
    return answered is not None and str(answered) == wanted


def _result_object(data: Any) -> dict[str, Any] | None:
    result = data.get("result") if isinstance(data, dict) else None
    return result if isinstance(result, dict) else None


def _result_list(data: Any) -> list[dict[str, Any]] | None:
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        return None
    return [r for r in result if isinstance(r, dict)]


# -- the platform's spec ------------------------------------------------------------------------

_AUTH_KINDS = {
    "basic": ("username_env", "password_env"),
    "oauth": ("username_env", "password_env", "client_id_env", "client_secret_env"),
}

# ServiceNow computes priority from impact x urgency; the gateway mirrors it to pick an SLA policy.
_PRIORITY = {
    ("1", "1"): "1", ("1", "2"): "2", ("1", "3"): "3",
    ("2", "1"): "2", ("2", "2"): "3", ("2", "3"): "4",
    ("3", "1"): "3", ("3", "2"): "4", ("3", "3"): "5",
}  # fmt: skip


def read_settings(obj: ConfigObject, env: Mapping[str, str]) -> ServiceNowSettings:
    """The `platforms.servicenow` block: base_url, TLS/proxy, auth (basic | oauth), table, lifecycle."""
    http = read_http(obj)
    kind, secrets = credentials_block(obj.obj("auth"), _AUTH_KINDS, env)
    table = obj.get("table", string, "incident")
    if not _TABLE.fullmatch(table):
        raise ConfigError(obj.at("table"), "must be a table name (lower_snake_case)")
    credentials = Credentials(kind=kind, **secrets)  # type: ignore[arg-type]
    lifecycle = _read_lifecycle(obj.obj("lifecycle"))
    return ServiceNowSettings(http=http, credentials=credentials, table=table, lifecycle=lifecycle)


_GATEWAY_STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED", "CANCELLED")


def _read_lifecycle(obj: ConfigObject) -> ServiceNowLifecycle:
    d = ServiceNowLifecycle()
    statuses = obj.get("statuses", _statuses, dict(d.statuses))
    lifecycle = ServiceNowLifecycle(
        statuses=statuses,
        resolved_state=obj.get("resolved_state", string, d.resolved_state),
        reopen_state=obj.get("reopen_state", string, d.reopen_state),
        default_close_code=obj.get("default_close_code", string, d.default_close_code),
        close_codes=obj.get("close_codes", string_list, d.close_codes),
        dedup_field=obj.get("dedup_field", string, d.dedup_field),
    )
    obj.done()
    for key in ("resolved_state", "reopen_state"):
        if getattr(lifecycle, key) not in statuses:
            raise ConfigError(obj.at(key), "must be one of the states in lifecycle.statuses")
    if statuses[lifecycle.resolved_state] != "RESOLVED":
        raise ConfigError(obj.at("resolved_state"), "must be a state whose status is RESOLVED")
    if lifecycle.close_codes and lifecycle.default_close_code not in lifecycle.close_codes:
        raise ConfigError(obj.at("default_close_code"), "must be one of close_codes")
    if lifecycle.dedup_field in ("correlation_id", "sys_id"):
        raise ConfigError(obj.at("dedup_field"), "must not be correlation_id (the marker) or sys_id")
    return lifecycle


def _statuses(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(path, "must map state numbers to OPEN, IN_PROGRESS, RESOLVED, CLOSED or CANCELLED")
    for state, status in value.items():
        if status not in _GATEWAY_STATUSES:
            raise ConfigError(f"{path}.{state}", f"must be one of {', '.join(_GATEWAY_STATUSES)}")
    return dict(value)


def _build(
    settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
) -> ServiceNowClient:
    if not isinstance(settings, ServiceNowSettings):
        raise TypeError(f"servicenow needs ServiceNowSettings, got {type(settings).__name__}")
    return ServiceNowClient(settings, retry, timeout, on_attempt=on_attempt)


def priority_of(fields: Mapping[str, str]) -> str:
    return _PRIORITY.get((fields.get("impact", "3"), fields.get("urgency", "3")), "")


def priority_rank(priority: str) -> int | None:
    """"1" (Critical) is the most urgent."""
    return int(priority) if priority.isdigit() else None


def error_field(path: tuple[str, ...]) -> str:
    """ServiceNow names a field by its column, the first (only) element of its payload path."""
    return path[0]


SPEC = PlatformSpec(
    name=PLATFORM,
    title="ServiceNow",
    read_settings=read_settings,
    build_client=_build,
    error_field=error_field,
    priority_of=priority_of,
    priority_rank=priority_rank,
    priority_fields=("impact", "urgency"),
    # A commit landing up to 5 s after the answer (a load balancer's 504 while the insert still
    # runs), plus a second's margin. Its table queries read committed rows: no search lag.
    confirmation_delay=6.0,
    search_confirmation_delay=6.0,
    journal_paths=(("work_notes",), ("comments",)),
)
