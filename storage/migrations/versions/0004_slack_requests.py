"""Slack requests already acted on, so a replay within the signature window changes nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create `slack_requests` (key, seen_at), indexed by time for pruning."""
    op.create_table(
        "slack_requests",
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_slack_requests")),
    )
    op.create_index(op.f("ix_slack_requests_seen_at"), "slack_requests", ["seen_at"])


def downgrade() -> None:
    """Drop `slack_requests`."""
    op.drop_index(op.f("ix_slack_requests_seen_at"), table_name="slack_requests")
    op.drop_table("slack_requests")
