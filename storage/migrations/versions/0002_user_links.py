"""User links: each Slack user's own OneSignal external id (`/push me`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create `user_links`, keyed by (team, user)."""
    op.create_table(
        "user_links",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["workspaces.team_id"], name=op.f("fk_user_links_team_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_user_links")),
    )


def downgrade() -> None:
    """Drop `user_links`."""
    op.drop_table("user_links")
