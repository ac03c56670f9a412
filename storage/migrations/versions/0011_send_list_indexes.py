"""Indexes for `/push list` that keep it flat with a workspace's history.

Its upcoming sends are read by workspace and state; its recent ones from the end of an index
on when each ended (the order `storage.queries.list_sends` shows them in), instead of
sorting every finished send of the workspace.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `ix_sends_team_id_state_due_at` and `ix_sends_team_id_ended`."""
    op.create_index("ix_sends_team_id_state_due_at", "sends", ["team_id", "state", "due_at"])
    op.create_index(
        "ix_sends_team_id_ended",
        "sends",
        ["team_id", sa.text("coalesce(finished_at, due_at, created_at)")],
    )


def downgrade() -> None:
    """Drop both indexes."""
    op.drop_index("ix_sends_team_id_ended", table_name="sends")
    op.drop_index("ix_sends_team_id_state_due_at", table_name="sends")
