"""Audit MACs: each event's MAC under a key outside the database, and the key's id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add `audit_events.mac` and `mac_key_id`.

    A migration does not know the key, so events already stored keep NULL: their SHA-256
    chain still holds them, and the first keyed event after them anchors it (PushOps appends
    one at start; see docs/audit.md).
    """
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("mac_key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop the MAC columns (the chain is then only hash-linked again)."""
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_column("mac_key_id")
        batch_op.drop_column("mac")
