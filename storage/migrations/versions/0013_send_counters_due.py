"""When a sent send's final counters are owed: a column written with its result, not a row.

A send that went out owes a read of its final counters an hour later. Writing that as a row of
the Slack outbox in the transaction of its end cost the burst of deliveries a row and its
indexes per send; the moment in the row being written anyway costs a column, and the few sends
whose moment has come are found by a partial index and made outbox rows later.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

_OWED = "counters_due_at IS NOT NULL"


def upgrade() -> None:
    """Add `sends.counters_due_at` and its partial index (a plain column: no table rebuild)."""
    op.add_column("sends", sa.Column("counters_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_sends_counters_due_at",
        "sends",
        ["counters_due_at"],
        sqlite_where=sa.text(_OWED),
        postgresql_where=sa.text(_OWED),
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_sends_counters_due_at", table_name="sends")
    op.drop_column("sends", "counters_due_at")
