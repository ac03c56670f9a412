"""Slack requests already acted on: a replay within the signature window finds its key here.

Keys live a little longer than Slack's five-minute signature window; a request older than
that fails verification anyway, so older keys are pruned. The table is shared by every
replica, so a replay that reaches another replica is caught as well.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SlackRequest

KEEP: Final = timedelta(minutes=6)
"""How long a request's key is kept: Slack's signature window (5 min) and a margin."""


async def remember_request(*, session: AsyncSession, key: str, now: datetime) -> bool:
    """Record `key`; False when it was recorded already (the request is a replay).

    Runs in the caller's transaction; the primary key makes two replicas agree on who saw
    it first (the second waits for the first's commit, then finds it).
    """
    insert = _insert(session).values(key=key, seen_at=now).on_conflict_do_nothing()
    inserted = await session.execute(insert.returning(SlackRequest.key))
    return inserted.first() is not None


async def forget_requests(*, session: AsyncSession, before: datetime) -> int:
    """Delete the keys recorded before `before`; how many went."""
    gone = await session.execute(
        sa.delete(SlackRequest).where(SlackRequest.seen_at < before).returning(SlackRequest.key)
    )
    return len(gone.all())


def _insert(session: AsyncSession) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (SQLite or PostgreSQL)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(SlackRequest)
