"""operation ledger

Every write to a platform becomes an operation with its own request_id, kind, payload fingerprint,
state, attempts, last error and lease. Existing tickets carry their creation over as a create
operation; the idempotency columns move off the tickets table. SLA sync claims get a fencing token.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("request_id", sa.String(_KEY), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=False),
        sa.Column("marker", sa.String(_KEY), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(_KEY), nullable=False),
        sa.Column("lease_token", sa.String(36), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_operations"),
        sa.CheckConstraint("state IN ('PENDING', 'SUCCEEDED', 'FAILED')", name="ck_operations_state"),
        sa.CheckConstraint(
            "state <> 'PENDING' OR lease_until IS NOT NULL", name="ck_operations_pending_lease"
        ),
    )
    op.create_index("ix_operations_state_lease_until", "operations", ["state", "lease_until"])
    op.create_index("ix_operations_ticket_id", "operations", ["ticket_id"])
    # Each ticket's creation becomes its create operation. A PENDING one may have been sent: it is
    # marked uncertain, so whoever settles it looks its marker up before sending anything.
    op.execute(
        """
        INSERT INTO operations (request_id, kind, ticket_id, payload_hash, payload, state, attempts,
            last_error, error_kind, marker, result, created_by, lease_token, lease_until,
            uncertain_since, create_time, update_time)
        SELECT request_id, 'create', id, payload_hash, '{}',
            CASE state WHEN 'CREATED' THEN 'SUCCEEDED' ELSE state END,
            attempts, last_error,
            CASE WHEN state = 'FAILED' THEN error_kind ELSE '' END,
            marker, '{}', created_by, '', lease_until,
            CASE WHEN state = 'PENDING' THEN update_time END,
            create_time, update_time
        FROM tickets
        """
    )
    op.drop_index("ix_tickets_state_lease_until", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("ck_tickets_pending_lease", type_="check")
        batch.drop_column("payload_hash")
        batch.drop_column("error_kind")
        batch.drop_column("lease_until")
        batch.add_column(sa.Column("sync_token", sa.String(36), nullable=False, server_default=""))
    op.create_index("ix_tickets_state", "tickets", ["state"])
    op.create_table(
        "platform_checks",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("marker_kept", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", name="pk_platform_checks"),
    )


def downgrade() -> None:
    op.drop_table("platform_checks")
    op.drop_index("ix_tickets_state", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("sync_token")
        batch.add_column(sa.Column("payload_hash", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("error_kind", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE tickets SET
            payload_hash = (SELECT o.payload_hash FROM operations o WHERE o.request_id = tickets.request_id),
            error_kind = COALESCE(
                (SELECT o.error_kind FROM operations o WHERE o.request_id = tickets.request_id), ''),
            lease_until = (SELECT o.lease_until FROM operations o WHERE o.request_id = tickets.request_id)
        """
    )
    with op.batch_alter_table("tickets") as batch:
        batch.create_check_constraint(
            "ck_tickets_pending_lease", "state <> 'PENDING' OR lease_until IS NOT NULL"
        )
    op.create_index("ix_tickets_state_lease_until", "tickets", ["state", "lease_until"])
    op.drop_table("operations")
