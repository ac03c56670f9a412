"""Notification ids in their own indexed table, one row per batch of each send.

`/push status` and `/push cancel` looked a later batch's OneSignal id up in the JSON of every
send of the workspace; this table makes it one indexed read. Existing sends' batches fill it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 5_000


def upgrade() -> None:
    """Create `send_notifications` and fill it from every send's batches and first id."""
    table = op.create_table(
        "send_notifications",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("notification_id", sa.String(64), nullable=False),
        sa.Column("send_id", sa.Uuid(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["workspaces.team_id"],
            name="fk_send_notifications_team_id_workspaces",
        ),
        sa.ForeignKeyConstraint(
            ["send_id"],
            ["sends.id"],
            name="fk_send_notifications_send_id_sends",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "notification_id", name="pk_send_notifications"),
    )
    op.create_index("ix_send_notifications_send_id", "send_notifications", ["send_id"])
    _fill(op.get_bind(), table)


def _fill(connection: sa.Connection, table: sa.Table) -> None:
    """Copy the ids of existing sends, a chunk at a time (a year of sends is a million rows)."""
    sends = sa.table(
        "sends",
        sa.column("id", sa.Uuid()),
        sa.column("team_id", sa.String()),
        sa.column("notification_id", sa.String()),
        sa.column("batches", sa.JSON()),
    )
    query = (
        sa.select(sends.c.id, sends.c.team_id, sends.c.notification_id, sends.c.batches)
        .where(sends.c.notification_id.is_not(None))
        .order_by(sends.c.id)
    )
    after: uuid.UUID | None = None
    while True:
        page = query if after is None else query.where(sends.c.id > after)
        found = connection.execute(page.limit(_CHUNK)).all()
        if not found:
            return
        rows = {key: row for send in found for key, row in _rows(send).items()}
        if rows:
            connection.execute(_insert(connection, table), list(rows.values()))
        after = found[-1].id


def _insert(connection: sa.Connection, table: sa.Table) -> Any:
    """An insert that keeps the first send of an id two sends claim (OneSignal never makes
    one twice; a hand-edited row must not stop the upgrade)."""
    if connection.dialect.name == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def _rows(send: Any) -> dict[tuple[str, str], dict[str, Any]]:
    batches = send.batches if not isinstance(send.batches, str) else json.loads(send.batches)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for position, batch in enumerate(batches or []):
        notification_id = batch.get("notification_id") if isinstance(batch, dict) else None
        if notification_id:
            index = batch.get("index")
            number = index if isinstance(index, int) else position
            found.setdefault(
                (send.team_id, str(notification_id)), _row(send, notification_id, number)
            )
    if send.notification_id:
        found.setdefault((send.team_id, send.notification_id), _row(send, send.notification_id, 0))
    return found


def _row(send: Any, notification_id: str, batch: int) -> dict[str, Any]:
    return {
        "team_id": send.team_id,
        "notification_id": str(notification_id),
        "send_id": send.id,
        "batch": batch,
    }


def downgrade() -> None:
    """Drop `send_notifications` (the ids stay in `sends.batches`)."""
    op.drop_index("ix_send_notifications_send_id", table_name="send_notifications")
    op.drop_table("send_notifications")
