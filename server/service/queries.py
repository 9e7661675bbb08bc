"""Ticket reads: one ticket by id, and filtered, paged lists."""

from __future__ import annotations

from dataclasses import dataclass

from server.domain import errors
from server.domain.records import TicketRecord
from server.domain.validation import Violation
from server.service.ports import InvalidPageToken, TicketFilter, TicketPage, TicketStore
from server.service.requests import check_ticket_id, summary, text_violations

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class ListQuery:
    page_size: int = 0
    page_token: str = ""
    platform: str = ""
    state: str = ""
    job_id: str = ""
    request_id: str = ""
    external_key: str = ""
    sla_state: str = ""
    dedup_key: str = ""
    status: str = ""
    open_only: bool = False


class TicketQueries:
    def __init__(self, store: TicketStore) -> None:
        self._store = store

    async def get(self, ticket_id: str) -> TicketRecord:
        check_ticket_id(ticket_id)
        record = await self._store.get(ticket_id)
        if record is None:
            raise errors.NotFound(f"ticket {ticket_id} not found")
        return record

    async def list(self, query: ListQuery) -> TicketPage:
        if query.page_size < 0:
            raise errors.InvalidArgument(
                "page_size must not be negative",
                [Violation("page_size", "must be 0 (default) or positive", "MIN")],
            )
        found = [
            v
            for name in ("job_id", "request_id", "external_key", "dedup_key")
            for v in text_violations(name, getattr(query, name))
        ]
        if found:
            raise errors.InvalidArgument(summary(found), found)
        page_size = min(query.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        filters = TicketFilter(
            platform=query.platform,
            state=query.state,
            job_id=query.job_id,
            request_id=query.request_id,
            external_key=query.external_key,
            sla_state=query.sla_state,
            dedup_key=query.dedup_key,
            status=query.status,
            open_only=query.open_only,
        )
        try:
            return await self._store.page(filters, page_size, query.page_token)
        except InvalidPageToken as exc:
            raise errors.InvalidArgument(
                str(exc), [Violation("page_token", str(exc), "INVALID")]
            ) from None
