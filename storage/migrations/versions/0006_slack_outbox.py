"""The Slack outbox: every message PushOps owes Slack, kept until Slack took it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create `slack_outbox`, indexed for the drainer (state, due time) and by send."""
    op.create_table(
        "slack_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("send_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("next_attempt_at"),
        sa.Column("leased_by", sa.String(128), nullable=True),
        _timestamp("lease_until", nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_outbox")),
        sa.UniqueConstraint("team_id", "key", name=op.f("uq_slack_outbox_team_id_key")),
    )
    op.create_index(
        op.f("ix_slack_outbox_state_next_attempt_at"), "slack_outbox", ["state", "next_attempt_at"]
    )
    op.create_index(op.f("ix_slack_outbox_send_id"), "slack_outbox", ["send_id"])


def downgrade() -> None:
    """Drop `slack_outbox` (messages still owed are lost)."""
    op.drop_index(op.f("ix_slack_outbox_send_id"), table_name="slack_outbox")
    op.drop_index(op.f("ix_slack_outbox_state_next_attempt_at"), table_name="slack_outbox")
    op.drop_table("slack_outbox")
