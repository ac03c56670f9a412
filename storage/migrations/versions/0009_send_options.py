"""Sends keep OneSignal's delivery options (local time, intelligent delivery, throttle, time
to live, priority, buttons, additional data) beside their content.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `sends.options` (JSON; `{}` for every send stored before)."""
    with op.batch_alter_table("sends") as table:
        table.add_column(sa.Column("options", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    """Drop `sends.options`."""
    with op.batch_alter_table("sends") as table:
        table.drop_column("options")
