"""Send submission key: the compose form a send came from, one send per form and workspace.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `sends.submission`, unique per workspace (existing sends keep NULL: no conflict)."""
    with op.batch_alter_table("sends") as batch_op:
        batch_op.add_column(sa.Column("submission", sa.String(64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_sends_team_id_submission"), ["team_id", "submission"]
        )


def downgrade() -> None:
    """Drop `sends.submission` and its constraint."""
    with op.batch_alter_table("sends") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_sends_team_id_submission"), type_="unique")
        batch_op.drop_column("submission")
