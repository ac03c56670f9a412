"""Series submission key: one series per compose form, whichever replica the form reaches.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `series.submission`, unique within a workspace (a plain column: no table rebuild)."""
    op.add_column("series", sa.Column("submission", sa.String(64), nullable=True))
    op.create_index(
        "uq_series_team_id_submission", "series", ["team_id", "submission"], unique=True
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("uq_series_team_id_submission", table_name="series")
    op.drop_column("series", "submission")
