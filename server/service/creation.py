"""The create operation kind: send the payload with the ticket's marker; look the marker up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clients.errors import PlatformError
from clients.platform import CreatedTicket, PlatformSpec
from server.domain import errors
from server.domain.payload import build_payload
from server.domain.records import CREATE, CREATED, FAILED, PENDING
from server.domain.rules import FieldRule
from server.service.engine import Applied, Work
from server.service.marker_watch import MarkerWatch
from server.service.platform_errors import caller_error


class CreateKind:
    kind = CREATE
    searches = True  # a ticket is found by its marker through the platform's search

    def __init__(
        self,
        field_mapping: Mapping[str, Mapping[str, FieldRule]],
        specs: Mapping[str, PlatformSpec],
        markers: MarkerWatch,
    ) -> None:
        self._rules = field_mapping
        self._specs = specs
        self._markers = markers

    async def send(self, work: Work) -> Applied:
        ticket = work.ticket
        try:
            payload = build_payload(self._rules[ticket.platform], ticket.fields)
        except (KeyError, ValueError) as exc:  # the field mapping changed under a stored ticket
            raise errors.FailedPrecondition(
                f"ticket {ticket.id}'s stored fields no longer fit the configured field mapping: {exc}"
            ) from None
        created = await work.client.create(payload, ticket.marker, deadline=work.deadline)
        await self._markers.observe(ticket.platform, created.marker_kept, ticket.id, created.external_key)
        return self._applied(work, created)

    async def look_up(self, work: Work) -> Applied | None:
        found = await work.client.find_by_marker(work.ticket.marker, deadline=work.deadline)
        return None if found is None else self._applied(work, found)

    def _applied(self, work: Work, created: CreatedTicket) -> Applied:
        changes: dict[str, Any] = {
            "state": CREATED,
            "external_id": created.external_id,
            "external_key": created.external_key,
            "url": created.url,
            "last_error": "",
            "attempts": work.total_attempts + created.retry.attempts,
        }
        return Applied(changes, created.retry.attempts)

    def failed(self, work: Work, error: str) -> Mapping[str, Any]:
        return {"state": FAILED, "last_error": error[:2000], "attempts": work.total_attempts}

    def retried(self) -> Mapping[str, Any]:
        return {"state": PENDING}

    def to_error(self, work: Work, error: PlatformError) -> errors.GatewayError:
        platform = work.ticket.platform
        return caller_error(error, self._rules.get(platform, {}), self._specs[platform], work.ticket.id)
