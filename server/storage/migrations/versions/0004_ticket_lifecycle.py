"""ticket lifecycle and dedup keys

A ticket keeps the platform's status as last seen, its resolution, the dedup key it was opened
under, and that key while it holds it (open_key): a unique index over open keys is what keeps one
open ticket per key. tickets.request_id stops being unique: request_ids live in the operations
ledger, and a repeat of a failed dedup create may open its ticket afresh.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 255


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("uq_tickets_request_id", type_="unique")
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("resolution", sa.String(_KEY), nullable=False, server_default=""))
        batch.add_column(sa.Column("dedup_key", sa.String(_KEY), nullable=False, server_default=""))
        batch.add_column(sa.Column("open_key", sa.String(_KEY), nullable=True))
        batch.add_column(sa.Column("last_comment_hash", sa.String(64), nullable=False, server_default=""))
    # What the SLA sync already learnt: a ticket it saw resolved is resolved. The status sync fills
    # in the rest at its next round.
    op.execute("UPDATE tickets SET status = 'RESOLVED' WHERE state = 'CREATED' AND resolved_at IS NOT NULL")
    op.create_index("uq_tickets_open_key", "tickets", ["platform", "open_key"], unique=True)
    op.create_index(
        "ix_tickets_dedup_key", "tickets", ["platform", "dedup_key", sa.text("create_time DESC")]
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_dedup_key", table_name="tickets")
    op.drop_index("uq_tickets_open_key", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for column in ("last_comment_hash", "open_key", "dedup_key", "resolution", "status"):
            batch.drop_column(column)
        batch.create_unique_constraint("uq_tickets_request_id", ["request_id"])
