"""The fakedesk client: what clients/<platform>.py would be for a real third platform."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clients.auth import StaticAuth
from clients.config_reader import ConfigObject, credentials_block
from clients.errors import ErrorDetail, kind_for_status
from clients.http import AttemptHook, HttpTransport, Request
from clients.platform import CreatedTicket, PlatformSpec, TicketStatus
from clients.redaction import Redactor
from clients.settings import Credentials, HttpSettings, RetryPolicy, TimeoutConfig, read_http

NAME = "fakedesk"


@dataclass(frozen=True)
class FakeDeskSettings:
    http: HttpSettings
    credentials: Credentials


def parse_error(status: int, data: Any, text: str) -> ErrorDetail:
    message = data.get("message", "") if isinstance(data, dict) else text
    fields = data.get("fields", {}) if isinstance(data, dict) else {}
    return ErrorDetail(message or f"HTTP {status}", kind_for_status(status), fields, from_platform=True)


class FakeDeskClient:
    platform = NAME

    def __init__(
        self, settings: FakeDeskSettings, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None
    ) -> None:
        redactor = Redactor()
        self._http = HttpTransport(
            NAME, settings.http, retry, timeout, auth=StaticAuth(settings.credentials, redactor),
            parse_error=parse_error, redactor=redactor, on_attempt=on_attempt,
        )

    async def create(
        self, payload: dict[str, Any], marker: str, *, deadline: float | None = None, dedup_key: str = ""
    ) -> CreatedTicket:
        call = self._http.start("create", deadline)
        body = {**payload, "marker": marker}
        response = await self._http.send(call, Request("create", "POST", "/tickets", json=body, idempotent=False))
        ticket = response.data
        return self._ticket(ticket, call, adopted=False, kept=ticket.get("marker") == marker)

    async def find_by_marker(self, marker: str, *, deadline: float | None = None) -> CreatedTicket | None:
        call = self._http.start("find", deadline)
        response = await self._http.send(call, Request("find", "GET", "/tickets", params={"marker": marker}))
        found = response.data.get("tickets", []) if isinstance(response.data, dict) else []
        return self._ticket(found[0], call, adopted=True, kept=True) if found else None

    async def get_statuses(self, external_ids: list[str], *, deadline: float | None = None) -> list[TicketStatus]:
        return []

    async def close(self) -> None:
        await self._http.close()

    def _ticket(self, ticket: dict[str, Any], call: Any, *, adopted: bool, kept: bool) -> CreatedTicket:
        number = str(ticket["id"])
        return CreatedTicket(
            external_id=number,
            external_key=f"FD-{number}",
            url=f"{self._http.base_url}/tickets/{number}",
            adopted=adopted,
            retry=call.retry_info(),
            raw=ticket,
            marker_kept=kept,
        )


def read_settings(obj: ConfigObject, env: Mapping[str, str]) -> FakeDeskSettings:
    http = read_http(obj)
    kind, secrets = credentials_block(obj.obj("auth"), {"basic": ("username_env", "password_env")}, env)
    return FakeDeskSettings(http, Credentials(kind=kind, **secrets))  # type: ignore[arg-type]


def build(settings: Any, retry: RetryPolicy, timeout: TimeoutConfig, on_attempt: AttemptHook | None) -> FakeDeskClient:
    return FakeDeskClient(settings, retry, timeout, on_attempt)


SPEC = PlatformSpec(
    name=NAME,
    title="FakeDesk",
    read_settings=read_settings,
    build_client=build,
    error_field=lambda path: path[-1],
    priority_of=lambda fields: fields.get("severity", ""),
    confirmation_delay=0.2,
    search_confirmation_delay=0.2,
)
