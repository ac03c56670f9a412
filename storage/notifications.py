"""The OneSignal notifications each send made, one row per batch, looked up by id.

A send's batches are JSON in `sends.batches`, which no index reaches; `send_notifications`
holds each batch's notification id beside its send, so `/push status` and `/push cancel` find
a send by any of its ids in one indexed read, however many sends a workspace keeps.
Written where batches are recorded (`storage.deliveries`), in the same transaction. Same
conventions as `storage.queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SendNotification

__all__ = ["SendBatches", "find_notification", "notification_rows", "record_notifications"]

_TABLE: Final = cast(sa.Table, SendNotification.__table__)


@dataclass(frozen=True)
class SendBatches:
    """What a write recorded of one send: its first notification id and its batch records."""

    team_id: str
    send_id: uuid.UUID
    batches: Sequence[Mapping[str, Any]] = ()
    first: str | None = None


def notification_rows(recorded: SendBatches) -> list[dict[str, Any]]:
    """The `send_notifications` rows of `recorded`: one per batch that has an id."""
    rows: dict[str, dict[str, Any]] = {}
    for position, batch in enumerate(recorded.batches):
        notification_id = batch.get("notification_id")
        if not notification_id:
            continue
        index = batch.get("index")
        number = index if isinstance(index, int) else position
        rows.setdefault(str(notification_id), _row(recorded, str(notification_id), number))
    if recorded.first and recorded.first not in rows:
        rows[recorded.first] = _row(recorded, recorded.first, 0)
    return list(rows.values())


def _row(recorded: SendBatches, notification_id: str, batch: int) -> dict[str, Any]:
    return {
        "team_id": recorded.team_id,
        "notification_id": notification_id,
        "send_id": recorded.send_id,
        "batch": batch,
    }


async def record_notifications(*, session: AsyncSession, recorded: Iterable[SendBatches]) -> None:
    """Add the notification ids of `recorded` sends; an id already recorded is left as it is
    (a later round of the same send records its earlier batches again)."""
    rows = [row for item in recorded for row in notification_rows(item)]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert(_TABLE) if dialect == "postgresql" else sqlite_insert(_TABLE)
    statement = insert.on_conflict_do_nothing(index_elements=["team_id", "notification_id"])
    await session.execute(statement, rows)


async def find_notification(
    *, session: AsyncSession, team_id: str, notification_id: str
) -> uuid.UUID | None:
    """The send of the workspace that made notification `notification_id`, if any."""
    query = sa.select(SendNotification.send_id).where(
        SendNotification.team_id == team_id,
        SendNotification.notification_id == notification_id,
    )
    return cast(uuid.UUID | None, await session.scalar(query))
