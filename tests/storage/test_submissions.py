"""Submission keys: a request repeated (one compose form submitted twice) stores one send.

The database is the guard, so the repeat may come through another process: the second
`create_send` with the same (team, submission) inserts nothing and returns the first send.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from storage import queries
from storage.db import Database
from storage.models import AuditEvent, OneSignalApp, Send, SendState
from tests.plugins.database import OTHER_TEAM


async def _create(
    database: Database, app: OneSignalApp, submission: str | None, text: str = "Hello"
) -> Send:
    async with database.sessions.begin() as session:
        return await queries.create_send(
            session=session,
            team_id=app.team_id,
            requester_id="U0ALICE",
            app=app,
            content={"contents": {"en": text}},
            audience={"included_segments": ["All"]},
            state=SendState.SCHEDULED,
            submission=submission,
        )


async def _rows(database: Database) -> list[tuple[str, str, str | None]]:
    async with database.sessions() as session:
        query = sa.select(Send.team_id, Send.short_id, Send.submission).order_by(Send.created_at)
        return [tuple(row) for row in await session.execute(query)]


async def _created_events(database: Database) -> int:
    async with database.sessions() as session:
        query = sa.select(sa.func.count()).where(AuditEvent.action == "send.created")
        return int(await session.scalar(query) or 0)


async def test_the_same_submission_twice_stores_one_send_and_returns_it(database, storage_factory):
    app = await storage_factory.app()

    first = await _create(database, app, "V0FORM1")
    again = await _create(database, app, "V0FORM1", text="pressed again")

    assert (again.id, again.short_id) == (first.id, first.short_id)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.content == {"contents": {"en": "Hello"}}  # the first one's, as stored
    assert await _rows(database) == [(app.team_id, first.short_id, "V0FORM1")]
    assert await _created_events(database) == 1


async def test_different_submissions_store_different_sends(database, storage_factory):
    app = await storage_factory.app()

    first = await _create(database, app, "V0FORM1")
    second = await _create(database, app, "V0FORM2")

    assert first.id != second.id and not second.replayed
    assert [row[2] for row in await _rows(database)] == ["V0FORM1", "V0FORM2"]


async def test_sends_without_a_submission_never_collide(database, storage_factory):
    app = await storage_factory.app()

    first = await _create(database, app, None)
    second = await _create(database, app, None)

    assert first.id != second.id and not second.replayed
    assert [row[2] for row in await _rows(database)] == [None, None]
    assert await _created_events(database) == 2


async def test_a_submission_is_unique_per_workspace_only(database, storage_factory):
    ours = await storage_factory.app()
    theirs = await storage_factory.app(team_id=OTHER_TEAM)

    mine = await _create(database, ours, "V0FORM1")
    other = await _create(database, theirs, "V0FORM1")

    assert mine.id != other.id and not other.replayed
    assert sorted(row[0] for row in await _rows(database)) == sorted([ours.team_id, OTHER_TEAM])


async def test_a_submission_stored_by_a_concurrent_transaction_is_returned(
    database, storage_factory
):
    """Two processes store the same form at once: the one that commits second gets the first.

    On PostgreSQL the second transaction does not see the first's uncommitted row, so its
    insert waits on the unique key and is refused once the first commits; on SQLite the
    second waits for the write lock and then finds the row.
    """
    app = await storage_factory.app()
    async with database.sessions.begin() as session:
        first = await queries.create_send(
            session=session,
            team_id=app.team_id,
            requester_id="U0ALICE",
            app=app,
            content={"contents": {"en": "Hello"}},
            audience={"included_segments": ["All"]},
            submission="V0FORM1",
        )
        racing = asyncio.create_task(_create(database, app, "V0FORM1"))
        await _blocked(database, racing)

    again = await racing
    assert (again.id, again.short_id, again.replayed) == (first.id, first.short_id, True)
    assert len(await _rows(database)) == 1
    assert await _created_events(database) == 1


async def _blocked(database: Database, task: asyncio.Task[Send]) -> None:
    """Wait until `task` waits for the open transaction (PostgreSQL: a lock not granted)."""
    if database.engine.dialect.name != "postgresql":
        await asyncio.sleep(0.1)  # it waits for the write lock (asyncio sleeps)
        assert not task.done()
        return
    waiting = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
    for _ in range(500):
        async with database.engine.connect() as connection:
            if await connection.scalar(waiting):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second transaction never waited for the first")
