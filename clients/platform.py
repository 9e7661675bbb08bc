"""The contract between the ticket pipeline and any ITSM platform client.

The pipeline maps canonical fields to a platform payload (a JSON object shaped as the platform's
create body wants it) and hands it to a PlatformClient together with a correlation marker. The client
sends it under the retry policy, stamps the marker (ServiceNow correlation_id, a Jira label) and, after
an ambiguous failure, looks the marker up before sending again. Adding a platform means one module
that implements this protocol, registered in clients/registry.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RetryInfo:
    """What it took to get an answer."""

    attempts: int  # HTTP attempts made (1 = no retry)
    waited_seconds: float  # total time slept between attempts
    last_status: int | None  # HTTP status of the last attempt; None after a connection error


@dataclass(frozen=True)
class CreatedTicket:
    external_id: str  # ServiceNow sys_id / Jira issue id
    external_key: str  # INC0010001 / OPS-12
    url: str  # link to the ticket in the platform's UI
    adopted: bool  # True when found through the marker after an ambiguous failure, not created now
    retry: RetryInfo
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Reply:
    """The answer to a follow-up call (get, update, comment, transition, ...)."""

    data: dict[str, Any]  # the platform's record, or {} when it answers 204
    retry: RetryInfo


@dataclass(frozen=True)
class TicketStatus:
    """A ticket's life-cycle position, for SLA tracking."""

    external_id: str
    status: str  # platform's own word: ServiceNow state number, Jira status name
    acknowledged: bool  # work has started (ServiceNow state >= 2; Jira category != "new")
    resolved: bool  # ServiceNow state 6/7/8; Jira status category "done"


class PlatformClient(Protocol):
    platform: str  # "servicenow" / "jira": the config key

    async def create(
        self, payload: dict[str, Any], marker: str, *, deadline: float | None = None
    ) -> CreatedTicket:
        """Create exactly one ticket carrying `marker`.

        deadline: absolute time.monotonic() after which no attempt or wait may run (the caller's
        gRPC deadline); the effective budget is min(deadline, now + timeout.total).
        Raises clients.errors.PlatformError.
        """
        ...

    async def find_by_marker(
        self, marker: str, *, deadline: float | None = None
    ) -> CreatedTicket | None:
        """The ticket stamped with `marker`, or None. Covers eventual consistency where needed."""
        ...

    async def get_statuses(
        self, external_ids: list[str], *, deadline: float | None = None
    ) -> list[TicketStatus]:
        """Current status of several tickets in as few requests as the platform allows."""
        ...

    async def close(self) -> None: ...
