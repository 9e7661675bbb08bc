"""sla tracking

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        # Priority the SLA policy was chosen by ("1".."5" ServiceNow, "Highest".. Jira); "" = none.
        batch.add_column(sa.Column("priority", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("response_due", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolution_due", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        # "" (no policy), ON_TRACK, AT_RISK, BREACHED, MET.
        batch.add_column(sa.Column("sla_state", sa.String(16), nullable=False, server_default=""))
        # Breach kinds already counted ("response", "resolution", both comma-separated): each once.
        batch.add_column(sa.Column("sla_breaches", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("platform_status", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True))
        # Claimed by one gateway's SLA sync until then: replicas never poll a ticket twice a round.
        batch.add_column(sa.Column("sync_lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tickets_sla_state", "tickets", ["sla_state"])
    # The sync's scan: open tickets of one platform, least recently synced first.
    op.create_index("ix_tickets_sla_open", "tickets", ["platform", "state", "resolved_at", "synced_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_sla_open", table_name="tickets")
    op.drop_index("ix_tickets_sla_state", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for column in (
            "sync_lease_until",
            "synced_at",
            "platform_status",
            "sla_breaches",
            "sla_state",
            "resolved_at",
            "acknowledged_at",
            "resolution_due",
            "response_due",
            "priority",
        ):
            batch.drop_column(column)
