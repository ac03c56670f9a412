"""Digests: an owed Slack message names the digest that told its news along with others'.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `slack_outbox.digest` (the key of the digest row; null while told by none)."""
    with op.batch_alter_table("slack_outbox") as table:
        table.add_column(sa.Column("digest", sa.String(200), nullable=True))


def downgrade() -> None:
    """Drop `slack_outbox.digest`."""
    with op.batch_alter_table("slack_outbox") as table:
        table.drop_column("digest")
