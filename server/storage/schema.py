"""The database schema (SQLAlchemy Core tables) and the column types both databases share.

Mirrors server/storage/migrations: tests compare the two. A schema change is a new migration plus an
edit here and in the record it maps (column names are the record's attribute names).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
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


class SafeString(TypeDecorator[str]):
    """Text that any database stores: NUL and the other C0 controls but tab, newline and carriage
    return become U+FFFD. Callers' strings are refused with such characters long before they get
    here (INVALID_ARGUMENT); this is for what a platform echoes back (an error text, a key), which
    PostgreSQL would otherwise refuse outright."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value if value is None else safe_text(value)


class SafeText(SafeString):
    impl = Text
    cache_ok = True


_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def safe_text(value: str) -> str:
    return _UNSAFE.sub("\ufffd", value) if _UNSAFE.search(value) else value


class JsonValue(TypeDecorator[Any]):
    """A JSON value as text: the same bytes on both databases. json escapes every control
    character, so whatever the value holds is stored safely."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


def _key(name: str, *, nullable: bool = False, **options: Any) -> Column[Any]:
    return Column(name, SafeString(KEY_MAX_CHARS), nullable=nullable, **options)


# Mirrors server/storage/migrations: tests compare the two. A schema change is a new migration plus
# an edit here and in the record it maps (column names are the record's attribute names).
metadata = MetaData()
tickets = Table(
    "tickets",
    metadata,
    Column("id", String(36), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    _key("request_id"),
    _key("job_id"),
    _key("template_name"),
    _key("external_id"),
    _key("external_key"),
    Column("url", SafeText(), nullable=False),
    Column("fields", JsonValue(), nullable=False),
    _key("marker"),
    Column("attempts", Integer(), nullable=False),
    Column("last_error", SafeText(), nullable=False),
    _key("created_by"),
    Column("create_time", UtcDateTime(), nullable=False),
    Column("update_time", UtcDateTime(), nullable=False),
    Column("priority", SafeString(32), nullable=False, server_default=""),
    Column("response_due", UtcDateTime(), nullable=True),
    Column("resolution_due", UtcDateTime(), nullable=True),
    Column("acknowledged_at", UtcDateTime(), nullable=True),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("sla_state", String(16), nullable=False, server_default=""),
    Column("sla_breaches", String(32), nullable=False, server_default=""),
    Column("platform_status", SafeString(64), nullable=False, server_default=""),
    Column("synced_at", UtcDateTime(), nullable=True),
    Column("sync_lease_until", UtcDateTime(), nullable=True),
    Column("sync_token", String(36), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default=""),
    Column("resolution", SafeString(KEY_MAX_CHARS), nullable=False, server_default=""),
    Column("dedup_key", SafeString(KEY_MAX_CHARS), nullable=False, server_default=""),
    Column("open_key", SafeString(KEY_MAX_CHARS), nullable=True),
    Column("last_comment_hash", String(64), nullable=False, server_default=""),
    PrimaryKeyConstraint("id", name="pk_tickets"),
    CheckConstraint("state IN ('PENDING', 'CREATED', 'FAILED')", name="ck_tickets_state"),
)
Index("ix_tickets_platform", tickets.c.platform)
Index("ix_tickets_state", tickets.c.state)
Index("ix_tickets_job_id_create_time_id", tickets.c.job_id, tickets.c.create_time.desc(), tickets.c.id.desc())
Index("ix_tickets_external_key", tickets.c.external_key)
Index("ix_tickets_create_time_id", tickets.c.create_time.desc(), tickets.c.id.desc())
Index("ix_tickets_sla_state", tickets.c.sla_state)
Index(
    "ix_tickets_sla_open", tickets.c.platform, tickets.c.state, tickets.c.resolved_at, tickets.c.synced_at
)
# At most one ticket per platform holds a dedup key: the database decides, never a search. NULLs
# (tickets without a key, or no longer holding theirs) never conflict.
Index("uq_tickets_open_key", tickets.c.platform, tickets.c.open_key, unique=True)
# The latest ticket opened under a key (the one a recurrence may reopen).
Index("ix_tickets_dedup_key", tickets.c.platform, tickets.c.dedup_key, tickets.c.create_time.desc())

# The exactly-once ledger: one row per request_id, whatever the operation's kind.
operations = Table(
    "operations",
    metadata,
    _key("request_id"),
    Column("kind", String(16), nullable=False),
    Column("ticket_id", String(36), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("payload", JsonValue(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_error", SafeText(), nullable=False),
    Column("error_kind", String(32), nullable=False),
    _key("marker"),
    Column("result", JsonValue(), nullable=False),
    _key("created_by"),
    Column("lease_token", String(36), nullable=False),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("uncertain_since", UtcDateTime(), nullable=True),
    Column("create_time", UtcDateTime(), nullable=False),
    Column("update_time", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("request_id", name="pk_operations"),
    CheckConstraint("state IN ('PENDING', 'SUCCEEDED', 'FAILED')", name="ck_operations_state"),
    # The reconciler finds abandoned work by its lease: a PENDING operation always has one.
    CheckConstraint("state <> 'PENDING' OR lease_until IS NOT NULL", name="ck_operations_pending_lease"),
)
Index("ix_operations_state_lease_until", operations.c.state, operations.c.lease_until)
Index("ix_operations_ticket_id", operations.c.ticket_id)

# What a gateway learnt about a platform that every replica (and check-config) must know.
platform_checks = Table(
    "platform_checks",
    metadata,
    Column("platform", String(64), nullable=False),
    Column("marker_kept", Boolean(), nullable=False),  # the last create carried the marker back
    Column("detail", SafeText(), nullable=False),
    Column("checked_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("platform", name="pk_platform_checks"),
)


# One row: the oldest schema revision whose gateway still runs on this schema (migration 0005 says
# how expand and contract migrations keep it).
schema_compat = Table(
    "schema_compat",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("compatible_since", String(32), nullable=False),
)


def _max_chars(table: Table) -> dict[str, int]:
    limits = {}
    for column in table.c:
        kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
        if isinstance(kind, String) and kind.length is not None:
            limits[column.name] = kind.length
    return limits


MAX_CHARS = _max_chars(tickets)
OPERATION_MAX_CHARS = _max_chars(operations)


def utc(value: datetime) -> datetime:
    """value in UTC; a naive datetime is a programming error (its zone is unknowable)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


