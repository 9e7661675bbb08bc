"""The database schema (SQLAlchemy Core tables) and the column types both databases share.

Mirrors server/storage/migrations: tests compare the two. A schema change is a new migration plus an
edit here and in the record it maps (column names are the record's attribute names).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

KEY_MAX_CHARS = 255  # request_id, job_id, template_name, external ids, marker, created_by


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out. SQLite keeps naive text, so values are converted to UTC first."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonFields(TypeDecorator[dict[str, str]]):
    """A ticket's canonical fields as JSON text: the same bytes on both databases."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Mapping[str, str] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(dict(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, str] | None:
        return None if value is None else json.loads(value)


# Mirrors server/migrations: tests compare the two. A schema change is a new migration plus an edit
# here and in TicketRecord (column names are the record's attribute names).
metadata = MetaData()
tickets = Table(
    "tickets",
    metadata,
    Column("id", String(36), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("request_id", String(KEY_MAX_CHARS), nullable=False),
    Column("job_id", String(KEY_MAX_CHARS), nullable=False),
    Column("template_name", String(KEY_MAX_CHARS), nullable=False),
    Column("external_id", String(KEY_MAX_CHARS), nullable=False),
    Column("external_key", String(KEY_MAX_CHARS), nullable=False),
    Column("url", Text(), nullable=False),
    Column("fields", JsonFields(), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("marker", String(KEY_MAX_CHARS), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_error", Text(), nullable=False),
    Column("error_kind", String(32), nullable=False),
    Column("created_by", String(KEY_MAX_CHARS), nullable=False),
    Column("create_time", UtcDateTime(), nullable=False),
    Column("update_time", UtcDateTime(), nullable=False),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("priority", String(32), nullable=False, server_default=""),
    Column("response_due", UtcDateTime(), nullable=True),
    Column("resolution_due", UtcDateTime(), nullable=True),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("sla_state", String(16), nullable=False, server_default=""),
    Column("sla_breaches", String(32), nullable=False, server_default=""),
    Column("platform_status", String(64), nullable=False, server_default=""),
    Column("synced_at", UtcDateTime(), nullable=True),
    Column("sync_lease_until", UtcDateTime(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_tickets"),
    UniqueConstraint("request_id", name="uq_tickets_request_id"),
    CheckConstraint("state IN ('PENDING', 'CREATED', 'FAILED')", name="ck_tickets_state"),
    CheckConstraint("state <> 'PENDING' OR lease_until IS NOT NULL", name="ck_tickets_pending_lease"),
)
Index("ix_tickets_platform", tickets.c.platform)
Index("ix_tickets_state_lease_until", tickets.c.state, tickets.c.lease_until)
Index("ix_tickets_job_id_create_time_id", tickets.c.job_id, tickets.c.create_time.desc(), tickets.c.id.desc())
Index("ix_tickets_external_key", tickets.c.external_key)
Index("ix_tickets_create_time_id", tickets.c.create_time.desc(), tickets.c.id.desc())
Index("ix_tickets_sla_state", tickets.c.sla_state)
Index(
    "ix_tickets_sla_open", tickets.c.platform, tickets.c.state, tickets.c.resolved_at, tickets.c.synced_at
)

MAX_CHARS = {
    c.name: c.type.length for c in tickets.c if isinstance(c.type, String) and c.type.length is not None
}


def utc(value: datetime) -> datetime:
    """value in UTC; a naive datetime is a programming error (its zone is unknowable)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


