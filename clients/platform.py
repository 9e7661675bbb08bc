"""The contract between the gateway's service layer and any ITSM platform (the platform SPI).

The service maps canonical fields to a platform payload (a JSON object shaped as the platform's create
body wants it) and hands it to a PlatformClient together with a correlation marker. The client sends
it under the retry policy and stamps the marker (ServiceNow correlation_id, a Jira label), so the
ticket can be found after an ambiguous failure.

A platform is one module that exports a PlatformSpec (how its configuration block is read, how its
client is built, how it names fields in its errors, how it derives a ticket's priority), registered by
name in clients/registry.py. This module and clients.errors / clients.settings are the only parts of
clients/ the service layer may import: they hold no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from clients.settings import Credentials, HttpSettings, RetryPolicy, TimeoutConfig

if TYPE_CHECKING:
    from clients.config_reader import ConfigObject


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
    # Whether the platform kept the marker (the create's answer carried it back); None: not known.
    # A platform that drops it cannot be kept exactly-once (clients can only warn: the service acts).
    marker_kept: bool | None = None


@dataclass(frozen=True)
class Reply:
    """The answer to a follow-up call (get, update, comment, transition, ...)."""

    data: dict[str, Any]  # the platform's record, or {} when it answers 204
    retry: RetryInfo


@dataclass(frozen=True)
class TicketStatus:
    """A ticket's life-cycle position, as the platform says it and as the gateway's statuses."""

    external_id: str
    status: str  # platform's own word: ServiceNow state number, Jira status name
    acknowledged: bool  # work has started (ServiceNow state >= 2; Jira category != "new")
    resolved: bool  # ServiceNow state 6/7/8; Jira status category "done"
    # The gateway's status (OPEN, IN_PROGRESS, RESOLVED, CLOSED, CANCELLED), mapped by the platform
    # module from its configured lifecycle; and the resolution (close code, Jira resolution name).
    category: str = ""
    resolution: str = ""


@dataclass(frozen=True)
class Changed:
    """What an update left out: the payload paths the platform answered without applying (an ACL,
    a screen without the field). Empty: everything applied."""

    not_applied: tuple[str, ...]
    retry: RetryInfo


@dataclass(frozen=True)
class Comment:
    comment_id: str  # ServiceNow journal entry sys_id, Jira comment id
    retry: RetryInfo


class PlatformClient(Protocol):
    platform: str  # "servicenow" / "jira": the config key

    async def create(
        self, payload: dict[str, Any], marker: str, *, deadline: float | None = None
    ) -> CreatedTicket:
        """Create one ticket carrying `marker`, retrying only failures that were certainly not
        applied. One that may have been (a timeout, a cut connection, a 5xx) is not sent again: it
        raises PlatformError(ambiguous=True), and the caller looks the marker up before any re-send.

        deadline: absolute time.monotonic() after which no attempt or wait may run (the caller's
        gRPC deadline); the effective budget is min(deadline, now + timeout.total).
        Raises clients.errors.PlatformError.
        """
        ...

    async def find_by_marker(
        self, marker: str, *, deadline: float | None = None
    ) -> CreatedTicket | None:
        """The ticket stamped with `marker`, or None. One query: the caller waits out the platform's
        commit and search lag (its confirmation delay) before it asks."""
        ...

    async def get_statuses(
        self, external_ids: list[str], *, deadline: float | None = None
    ) -> list[TicketStatus]:
        """Current status of several tickets in as few requests as the platform allows."""
        ...

    async def status(self, external_id: str, *, deadline: float | None = None) -> TicketStatus:
        """One ticket's current status, read from the record (never from a lagging search)."""
        ...

    async def update(
        self, external_id: str, payload: dict[str, Any], *, deadline: float | None = None
    ) -> Changed:
        """Set fields (payload shaped as for create; None clears a field). Idempotent. Says what the
        platform did not apply, from its answer or by reading the record back."""
        ...

    async def add_comment(
        self, external_id: str, text: str, marker: str, *, internal: bool, deadline: float | None = None
    ) -> Comment:
        """Add one comment carrying `marker` where people do not see it, or as little as the
        platform allows. Never sent twice here: an ambiguous failure raises, and the caller finds it
        with find_comment before any re-send."""
        ...

    async def find_comment(
        self, external_id: str, marker: str, *, deadline: float | None = None
    ) -> str | None:
        """The id of the comment carrying `marker` on the ticket, or None."""
        ...

    async def resolve(
        self, external_id: str, resolution: str, notes: str, *, deadline: float | None = None
    ) -> TicketStatus:
        """Move the ticket to its resolved state with `resolution` (close code, Jira resolution;
        "" for the configured default) and `notes`. Raises PlatformError NOT_APPLIED (kind
        PAYLOAD_REJECTED with the transitions that exist) when the workflow does not allow it."""
        ...

    async def reopen(self, external_id: str, *, deadline: float | None = None) -> TicketStatus:
        """Move a resolved ticket back to work. Raises when the workflow does not allow it."""
        ...

    async def close(self) -> None: ...


class PlatformSettings(Protocol):
    """What every platform's settings carry: how to reach it, and the secrets to mask."""

    http: HttpSettings
    credentials: Credentials


# An outbound attempt observer (clients.http.AttemptHook), typed loosely here to keep this module free
# of the HTTP machinery.
AttemptObserver = Callable[[Any], None]


@dataclass(frozen=True)
class PlatformSpec:
    """Everything the gateway knows about one platform, in one place."""

    name: str  # configuration key, and the proto enum value's suffix: PLATFORM_<NAME>
    title: str  # for people: "ServiceNow"
    # Reads the platform's configuration block (base_url, auth, its own keys) with secrets from env.
    read_settings: Callable[[ConfigObject, Mapping[str, str]], PlatformSettings]
    build_client: Callable[[Any, RetryPolicy, TimeoutConfig, AttemptObserver | None], PlatformClient]
    # The name the platform gives a field in its error answers, from the field's payload path:
    # ServiceNow says "short_description", Jira's fields.summary is "summary".
    error_field: Callable[[tuple[str, ...]], str]
    # The priority an SLA policy is chosen by, from the canonical fields.
    priority_of: Callable[[Mapping[str, str]], str]
    # How urgent a priority is (lower is more urgent; None: unknown), for raising a ticket's priority
    # when a more urgent repeat attaches to it; and the canonical fields that set it.
    priority_rank: Callable[[str], int | None] = lambda priority: None
    priority_fields: tuple[str, ...] = ()
    # Seconds after an ambiguous attempt ended within which the platform may still apply it (a commit
    # landing late), and, for look-ups through its search index, the longer time until the result is
    # searchable too. A marker look-up made earlier could miss a ticket that is about to appear.
    confirmation_delay: float = 6.0
    search_confirmation_delay: float = 6.0
    # Payload paths that append to the ticket's journal instead of setting a value (ServiceNow's
    # work_notes and comments): set at creation only, since sending one again appends it again;
    # later entries go through add_comment, exactly once. UpdateTicket refuses them.
    journal_paths: tuple[tuple[str, ...], ...] = ()
