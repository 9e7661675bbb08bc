"""What the gateway stores: tickets, and the operations (one per request_id) that act on them.

Plain values; storage maps them to rows. Every time in them comes from the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# A ticket's creation state.
PENDING = "PENDING"  # reserved; its create operation has not settled
CREATED = "CREATED"  # the platform holds it
FAILED = "FAILED"  # its create operation failed; a transient failure may be retried by a repeat
STATES = (PENDING, CREATED, FAILED)

# An operation's state. PENDING: in flight, or its outcome is not known yet (uncertain_since set).
SUCCEEDED = "SUCCEEDED"
OPERATION_STATES = (PENDING, SUCCEEDED, FAILED)

# Operation kinds: every write to a platform is one.
CREATE = "create"
UPDATE = "update"
COMMENT = "comment"
RESOLVE = "resolve"
REOPEN = "reopen"
KINDS = (CREATE, UPDATE, COMMENT, RESOLVE, REOPEN)

# A ticket's status on its platform, as last seen ("" while it is being created).
OPEN = "OPEN"
IN_PROGRESS = "IN_PROGRESS"
RESOLVED = "RESOLVED"
CLOSED = "CLOSED"
CANCELLED = "CANCELLED"
STATUSES = (OPEN, IN_PROGRESS, RESOLVED, CLOSED, CANCELLED)
OPEN_STATUSES = frozenset({OPEN, IN_PROGRESS})
DONE_STATUSES = frozenset({RESOLVED, CLOSED, CANCELLED})

# Only these failures replay as the same error: the payload or the gateway's credentials are wrong.
# Anything else might succeed later, so a repeat of the request_id tries again.
# not_applied: the platform answered but left the change out (an ACL, a workflow rule, a Closed ticket):
# a repeat would get the same.
PERMANENT_KINDS = frozenset({"payload_rejected", "auth", "not_applied"})


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketRecord:
    """One ticket as the gateway knows it."""

    id: str
    platform: str  # a registered platform's name
    request_id: str  # of the operation that created it
    create_time: datetime | None = None  # None until stored: the database sets it
    update_time: datetime | None = None
    state: str = PENDING
    job_id: str = ""
    template_name: str = ""
    external_id: str = ""
    external_key: str = ""
    url: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    marker: str = ""  # correlation marker sent to the platform, to find the ticket after a timeout
    attempts: int = 0  # HTTP attempts its creation took
    last_error: str = ""  # last error seen while creating
    created_by: str = ""
    # SLA tracking (domain/sla.py): "" priority and sla_state mean no policy applies.
    priority: str = ""
    response_due: datetime | None = None
    resolution_due: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    sla_state: str = ""  # "" | ON_TRACK | AT_RISK | BREACHED | MET
    sla_breaches: str = ""  # breach kinds already recorded, comma-separated
    platform_status: str = ""  # the platform's last reported status
    synced_at: datetime | None = None
    sync_lease_until: datetime | None = None  # claimed by one gateway's status sync until then
    sync_token: str = ""  # that claim's fencing token
    status: str = ""  # the platform's status as last seen: OPEN ... CANCELLED; "" until created
    resolution: str = ""  # ServiceNow close code, Jira resolution; "" while unresolved
    dedup_key: str = ""  # the key it was opened under ("" for none)
    # The dedup key while the ticket holds it (being created, or open): at most one ticket per
    # platform holds a key, which the database guarantees (a unique index). None otherwise.
    open_key: str | None = None
    last_comment_hash: str = ""  # sha256 of the last comment the gateway added: repeats are suppressed


@dataclass(frozen=True, kw_only=True, slots=True)
class OperationRecord:
    """One write to a platform, under the caller's request_id: the exactly-once ledger's row."""

    request_id: str  # one namespace across kinds
    kind: str  # CREATE, ...
    ticket_id: str  # the ticket it acts on (for a create, the one it reserved)
    payload_hash: str  # sha256 of the caller's payload: same request_id, other payload?
    payload: dict[str, Any] = field(default_factory=dict)  # what to send, to resend after a crash
    state: str = PENDING
    attempts: int = 0
    last_error: str = ""
    error_kind: str = ""  # why it FAILED: a clients.errors.ErrorKind value, or "" ; see PERMANENT_KINDS
    marker: str = ""  # what the platform write carries, to find it after an ambiguous failure
    result: dict[str, Any] = field(default_factory=dict)  # what it produced, replayed to repeats
    created_by: str = ""
    lease_token: str = ""  # the holder's fencing token; "" when settled
    lease_until: datetime | None = None  # a PENDING operation's holder works until then
    # When an attempt whose outcome is unknown (a timeout, a cut connection, a 5xx to a write) ended:
    # before any re-send, the marker is looked up, once the platform can no longer be applying it.
    uncertain_since: datetime | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    # The database's clock when this copy was read (not a column): time comparisons use it, never
    # the process's clock, so replicas with skewed clocks agree.
    observed_at: datetime | None = None

    @property
    def permanent(self) -> bool:
        return self.state == FAILED and self.error_kind in PERMANENT_KINDS

    @property
    def lease_expired(self) -> bool:
        """By the database's clock, as of observed_at."""
        return (
            self.lease_until is not None
            and self.observed_at is not None
            and self.lease_until <= self.observed_at
        )
