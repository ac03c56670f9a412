"""A database held by another writer, as the scenarios of a busy PushOps need it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa

from storage.db import Database
from storage.models import Workspace
from tests.fakes.slack import DEFAULT_TEAM_ID


@contextlib.asynccontextmanager
async def held_by_another_writer(
    database: Database, team_id: str = DEFAULT_TEAM_ID
) -> AsyncIterator[None]:
    """Another process writing: the workspace row locked (and SQLite's write lock taken)."""
    other = Database.open(database.engine.url)
    try:
        async with other.sessions.begin() as session:
            await session.execute(
                sa.update(Workspace).where(Workspace.team_id == team_id).values(name="held")
            )
            yield
    finally:
        await other.dispose()
