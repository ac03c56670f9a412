"""Reading the audit events of refusals (`<area>.denied`), which are written just after the
refusal is answered: tests wait for them."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from storage.db import Database
from storage.models import AuditEvent


async def denials(database: Database, action: str | None = None) -> list[AuditEvent]:
    """Every `*.denied` event (of `action` only, when given), oldest first."""
    query = sa.select(AuditEvent).where(AuditEvent.outcome == "denied")
    if action is not None:
        query = query.where(AuditEvent.action == action)
    async with database.sessions() as session:
        return list(await session.scalars(query.order_by(AuditEvent.created_at, AuditEvent.seq)))


async def wait_for_denials(
    database: Database, count: int, action: str | None = None, *, within: float = 5.0
) -> list[AuditEvent]:
    """The `*.denied` events once there are `count` of them; fails after `within` seconds, or
    when more than `count` turn up."""
    deadline = time.monotonic() + within
    while len(found := await denials(database, action)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} denied events, not {count}: {found}")
        await asyncio.sleep(0.02)
    assert len(found) == count, found
    return found
