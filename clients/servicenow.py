"""ServiceNow: the Table API client (incident table by default), its settings and its PlatformSpec.

Everything the gateway knows about ServiceNow lives here: its configuration block, its error format,
how it names fields in errors, and how it derives a ticket's priority (impact x urgency).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clients.auth import OAuthPasswordGrant, StaticAuth
from clients.config_reader import ConfigError, ConfigObject, credentials_block, string
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
from clients.platform import CreatedTicket, PlatformSpec, Reply, TicketStatus
from clients.redaction import Redactor
from clients.settings import Credentials, HttpSettings, RetryPolicy, TimeoutConfig, read_http

PLATFORM = "servicenow"
_SYS_ID = re.compile(r"[0-9a-f]{32}")
_TABLE = re.compile(r"[a-z][a-z0-9_]{0,79}")
_RESOLVED_STATES = frozenset({"6", "7", "8"})  # Resolved, Closed, Canceled
# Keeps one status query's URL well under common 8 KB request-line limits (33 chars per id).
_STATUS_CHUNK = 100
# Reference fields as plain sys_ids, not {"link", "value"} objects: smaller, and flat like the rest.
_PLAIN = {"sysparm_exclude_reference_link": "true"}


@dataclass(frozen=True)
class ServiceNowSettings:
    http: HttpSettings
    credentials: Credentials  # basic or oauth
    table: str = "incident"


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

    # -- PlatformClient -------------------------------------------------------------------------

    async def create(
        self, payload: dict[str, Any], marker: str, *, deadline: float | None = None
    ) -> CreatedTicket:
        check_marker(marker)
        call = self._http.start("create", deadline)
        # The marker wins over any correlation_id in the payload: it is what dedup looks up.
        body = {**payload, "correlation_id": marker}
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

    # -- ServiceNow operations ------------------------------------------------------------------

    async def find_by_correlation(
        self, marker: str, *, deadline: float | None = None
    ) -> dict[str, Any] | None:
        check_marker(marker)
        return await self._lookup(self._http.start("find", deadline), marker)

    async def get(self, sys_id: str, *, deadline: float | None = None) -> Reply:
        return await self._record("get", "GET", sys_id, None, deadline, idempotent=True)

    async def update(self, sys_id: str, fields: dict[str, Any], *, deadline: float | None = None) -> Reply:
        # Setting fields to given values is idempotent; journal fields are not (see add_*).
        if "work_notes" in fields or "comments" in fields:
            raise ValueError("journal fields go through add_work_note / add_comment")
        return await self._record("update", "PATCH", sys_id, fields, deadline, idempotent=True)

    async def add_work_note(self, sys_id: str, text: str, *, deadline: float | None = None) -> Reply:
        # A journal entry sent twice appears twice: never resent after an ambiguous failure.
        body = {"work_notes": text}
        return await self._record("work_note", "PATCH", sys_id, body, deadline, idempotent=False)

    async def add_comment(self, sys_id: str, text: str, *, deadline: float | None = None) -> Reply:
        body = {"comments": text}
        return await self._record("comment", "PATCH", sys_id, body, deadline, idempotent=False)

    async def resolve(
        self, sys_id: str, close_code: str, close_notes: str, *, deadline: float | None = None
    ) -> Reply:
        body = {"state": "6", "close_code": close_code, "close_notes": close_notes}
        return await self._record("resolve", "PATCH", sys_id, body, deadline, idempotent=True)

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
    ) -> Reply:
        check_identifier(PLATFORM, operation, sys_id, _SYS_ID)
        call = self._http.start(operation, deadline)
        request = Request(
            operation,
            method,
            f"{self._path}/{sys_id}",
            params=_PLAIN,
            json=body,
            idempotent=idempotent,
        )
        response = await self._http.send(call, request)
        record = _result_object(response.data)
        if record is None:
            raise self._bad_response(call, f"{operation} answered without a record", applied=False)
        return Reply(record, call.retry_info())

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
            "sysparm_fields": "sys_id,state",
            "sysparm_limit": str(len(ids)),
        }
        response = await self._http.send(call, Request("statuses", "GET", self._path, params=params))
        records = _result_list(response.data)
        if records is None:
            raise self._bad_response(call, "query answered without a result list", applied=False)
        wanted = set(ids)
        statuses: list[TicketStatus] = []
        for record in records:
            sys_id, state = str(record.get("sys_id", "")), str(record.get("state", ""))
            if sys_id not in wanted:
                raise self._bad_response(call, "the sys_idIN filter was ignored", applied=False)
            statuses.append(TicketStatus(sys_id, state, _acknowledged(state), state in _RESOLVED_STATES))
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


def _acknowledged(state: str) -> bool:
    return state.isdigit() and int(state) >= 2


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
    """The `platforms.servicenow` block: base_url, TLS/proxy, auth (basic | oauth), table."""
    http = read_http(obj)
    kind, secrets = credentials_block(obj.obj("auth"), _AUTH_KINDS, env)
    table = obj.get("table", string, "incident")
    if not _TABLE.fullmatch(table):
        raise ConfigError(obj.at("table"), "must be a table name (lower_snake_case)")
    credentials = Credentials(kind=kind, **secrets)  # type: ignore[arg-type]
    return ServiceNowSettings(http=http, credentials=credentials, table=table)


def _build(
    settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
) -> ServiceNowClient:
    if not isinstance(settings, ServiceNowSettings):
        raise TypeError(f"servicenow needs ServiceNowSettings, got {type(settings).__name__}")
    return ServiceNowClient(settings, retry, timeout, on_attempt=on_attempt)


def priority_of(fields: Mapping[str, str]) -> str:
    return _PRIORITY.get((fields.get("impact", "3"), fields.get("urgency", "3")), "")


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
    # A commit landing up to 5 s after the answer (a load balancer's 504 while the insert still
    # runs), plus a second's margin. Its table queries read committed rows: no search lag.
    confirmation_delay=6.0,
    search_confirmation_delay=6.0,
)
