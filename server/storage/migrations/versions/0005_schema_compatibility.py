"""schema compatibility: which gateway versions may run on this schema

One row: compatible_since, the oldest schema revision whose gateway still runs correctly on this
schema. An expand migration (a new table, a nullable or defaulted column: old code does not notice)
leaves it; a contract migration (dropping or renaming what older code reads or writes) raises it to
the first revision whose code no longer needs what it removes. A gateway finding a schema newer than
it knows reads this row: if it knows compatible_since, it runs (replicas of two versions during a
rolling upgrade), else it refuses to start.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    table = op.create_table(
        "schema_compat",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("compatible_since", sa.String(32), nullable=False),
    )
    # Gateways before this revision do not read the row: they refuse any newer schema anyway.
    op.bulk_insert(table, [{"id": 1, "compatible_since": "0005"}])


def downgrade() -> None:
    op.drop_table("schema_compat")
