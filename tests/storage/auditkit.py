"""Writing and reading audit events in storage tests, as PushOps itself appends them."""

from __future__ import annotations

import sqlalchemy as sa

from storage import queries
from storage.db import Database
from storage.models import AuditEvent


async def log_events(
    database: Database, team_id: str, count: int, *, action: str = "test.event", first: int = 0
) -> None:
    """`count` events in one transaction, numbered `first`… in their targets and details."""
    async with database.sessions.begin() as session:
        for number in range(first, first + count):
            await queries.append_audit(
                session=session,
                team_id=team_id,
                actor="U0ALICE",
                action=action,
                target=f"thing {number}",
                details={"n": number},
            )


async def stored_events(database: Database, team_id: str) -> list[AuditEvent]:
    """The workspace's events as stored, oldest first."""
    async with database.sessions() as session:
        query = sa.select(AuditEvent).where(AuditEvent.team_id == team_id)
        return list(await session.scalars(query.order_by(AuditEvent.seq)))
