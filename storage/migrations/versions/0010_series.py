"""Recurring sends: a series stored once, and each occurrence a send that names it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create `series`; add `sends.series_id` and `sends.occurrence_at`, unique together."""
    op.create_table(
        "series",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("short_id", sa.String(6), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("app_ref", sa.Uuid(), nullable=True),
        sa.Column("app_name", sa.String(64), nullable=False),
        sa.Column("requester_id", sa.String(32), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("options", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        _timestamp("until", nullable=True),
        sa.Column("times", sa.Integer(), nullable=True),
        sa.Column("occurrences", sa.Integer(), server_default="0", nullable=False),
        _timestamp("next_at", nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("approval", sa.String(16), nullable=False),
        sa.Column("approvals_required", sa.Integer(), server_default="0", nullable=False),
        sa.Column("approvals_received", sa.Integer(), server_default="0", nullable=False),
        sa.Column("slack_messages", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["app_ref"],
            ["onesignal_apps.id"],
            name=op.f("fk_series_app_ref_onesignal_apps"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["workspaces.team_id"], name=op.f("fk_series_team_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("team_id", "short_id", name=op.f("uq_series_team_id_short_id")),
    )
    op.create_index(op.f("ix_series_state_next_at"), "series", ["state", "next_at"])
    # Plain ADD COLUMN and an index, never a batch rebuild of `sends`: on SQLite that drops
    # the table, and the ON DELETE CASCADE of approvals and send_notifications would empty them.
    op.add_column("sends", sa.Column("series_id", sa.Uuid(), nullable=True))
    op.add_column("sends", _timestamp("occurrence_at", nullable=True))
    op.create_index(
        "uq_sends_series_id_occurrence_at", "sends", ["series_id", "occurrence_at"], unique=True
    )


def downgrade() -> None:
    """Drop the occurrences' columns and `series` (the occurrences stay as plain sends)."""
    op.drop_index("uq_sends_series_id_occurrence_at", table_name="sends")
    op.drop_column("sends", "occurrence_at")
    op.drop_column("sends", "series_id")
    op.drop_index(op.f("ix_series_state_next_at"), table_name="series")
    op.drop_table("series")
