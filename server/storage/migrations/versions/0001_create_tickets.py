"""create tickets

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copy of the schema as of this revision: migrations never import the application's models.
_KEY = 255


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(_KEY), nullable=False),
        sa.Column("job_id", sa.String(_KEY), nullable=False),
        sa.Column("template_name", sa.String(_KEY), nullable=False),
        sa.Column("external_id", sa.String(_KEY), nullable=False),
        sa.Column("external_key", sa.String(_KEY), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("marker", sa.String(_KEY), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(_KEY), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("request_id", name="uq_tickets_request_id"),
        sa.CheckConstraint("state IN ('PENDING', 'CREATED', 'FAILED')", name="ck_tickets_state"),
        # The reconciler finds abandoned work by its lease: a PENDING row always has one.
        sa.CheckConstraint(
            "state <> 'PENDING' OR lease_until IS NOT NULL", name="ck_tickets_pending_lease"
        ),
    )
    op.create_index("ix_tickets_platform", "tickets", ["platform"])
    # Serves the state filter and the reconciler's scan for expired PENDING leases.
    op.create_index("ix_tickets_state_lease_until", "tickets", ["state", "lease_until"])
    # A job's tickets come back newest first: one ordered range scan, however many tickets exist.
    op.create_index(
        "ix_tickets_job_id_create_time_id",
        "tickets",
        ["job_id", sa.text("create_time DESC"), sa.text("id DESC")],
    )
    op.create_index("ix_tickets_external_key", "tickets", ["external_key"])
    op.create_index(
        "ix_tickets_create_time_id", "tickets", [sa.text("create_time DESC"), sa.text("id DESC")]
    )


def downgrade() -> None:
    op.drop_table("tickets")
