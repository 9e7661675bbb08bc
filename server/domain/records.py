"""The ticket record: what the gateway stores about one ticket. A plain value; storage maps it to rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

PENDING = "PENDING"
CREATED = "CREATED"
FAILED = "FAILED"
STATES = (PENDING, CREATED, FAILED)
TRANSIENT = "transient"  # error_kind of a failure a repeat of the request_id may retry
PERMANENT = "permanent"
# The service records why a ticket failed; a repeat of its request_id may retry these kinds...
TRANSIENT_KINDS = frozenset({TRANSIENT, "unavailable", "deadline", "ambiguous", "cancelled"})
# ...and replays these as the same error: the payload or the gateway's configuration is wrong.
PERMANENT_KINDS = frozenset({PERMANENT, "payload_rejected", "auth", "not_found", "conflict", "bad_response"})


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketRecord:
    """One ticket as the gateway knows it."""

    id: str
    platform: str  # a registered platform's name
    request_id: str
    create_time: datetime
    update_time: datetime
    state: str = PENDING
    job_id: str = ""
    template_name: str = ""
    external_id: str = ""
    external_key: str = ""
    url: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    payload_hash: str = ""  # sha256 hex of the caller's payload: same request_id, other payload?
    marker: str = ""  # correlation marker sent to the platform, to find the ticket after a timeout
    attempts: int = 0
    last_error: str = ""
    error_kind: str = ""  # "" | TRANSIENT | PERMANENT
    created_by: str = ""
    lease_until: datetime | None = None  # a PENDING ticket's lease; None once settled
    # SLA tracking (domain/sla.py): "" priority and sla_state mean no policy applies.
    priority: str = ""
    response_due: datetime | None = None
    resolution_due: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    sla_state: str = ""  # "" | ON_TRACK | AT_RISK | BREACHED | MET
    sla_breaches: str = ""  # breach kinds already counted, comma-separated
    platform_status: str = ""  # the platform's last reported status
    synced_at: datetime | None = None
    sync_lease_until: datetime | None = None  # claimed by one gateway's SLA sync until then

    @classmethod
    def new(
        cls,
        *,
        platform: str,
        request_id: str,
        now: datetime,
        lease_until: datetime,
        job_id: str = "",
        template_name: str = "",
        fields: Mapping[str, str] | None = None,
        payload_hash: str = "",
        marker: str = "",
        created_by: str = "",
    ) -> TicketRecord:
        """A PENDING record with a fresh id, ready for reserve()."""
        return cls(
            id=str(uuid.uuid4()),
            platform=platform,
            request_id=request_id,
            create_time=now,
            update_time=now,
            job_id=job_id,
            template_name=template_name,
            fields=dict(fields or {}),
            payload_hash=payload_hash,
            marker=marker,
            created_by=created_by,
            lease_until=lease_until,
        )
