"""The engine behind `DATABASE_URL`: reads never hold up writes, a writer that cannot get its
locks in time fails having written nothing, readiness means the database takes writes, and SQL
parameters stay out of error texts."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage import workspaces
from storage.db import Database, WriteBusy, WriteRefused, is_sqlite, limited_lock_wait
from storage.migrations import current_revision, head_revision
from storage.models import Workspace
from tests.plugins.database import DEFAULT_TEAM
from tests.scenario.busy import refusing_writes

HANG_GUARD = 10.0  # seconds; a write held up by a reader would wait SQLite's 30 s busy timeout


async def _rename(database: Database, name: str) -> None:
    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(Workspace).where(Workspace.team_id == DEFAULT_TEAM).values(name=name)
        )


async def _name(database: Database) -> str | None:
    async with database.sessions() as session:
        workspace = await workspaces.get_workspace(session=session, team_id=DEFAULT_TEAM)
    return workspace.name if workspace else None


@contextlib.asynccontextmanager
async def _holding_the_write_lock(database: Database) -> AsyncIterator[None]:
    """A write transaction that has locked the workspace row (and, on SQLite, the database)."""
    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(Workspace).where(Workspace.team_id == DEFAULT_TEAM).values(name="held")
        )
        yield


async def test_a_read_left_open_does_not_hold_up_a_write(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM, name="before")
    async with database.sessions() as reader:
        await workspaces.get_workspace(session=reader, team_id=DEFAULT_TEAM)  # a read, begun

        async with asyncio.timeout(HANG_GUARD):
            await _rename(database, "after")

        # The read keeps its snapshot; a new one sees the write.
        workspace = await workspaces.get_workspace(session=reader, team_id=DEFAULT_TEAM)
        assert workspace is not None
    assert await _name(database) == "after"


async def test_readiness_writes_nothing(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM, name="before")
    revision = await current_revision(database.engine)

    await database.ping()

    assert await current_revision(database.engine) == revision == head_revision()
    async with asyncio.timeout(HANG_GUARD):
        await _rename(database, "after")  # the probe left no lock behind
    assert await _name(database) == "after"


async def test_readiness_fails_while_the_database_refuses_writes(database):
    async with refusing_writes(database):
        with pytest.raises(WriteRefused):
            await database.ping()

    await database.ping()


async def test_readiness_waits_for_another_writer_only_so_long(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    other = Database.open(database.engine.url)  # another process, as far as locks go
    try:
        async with _holding_the_write_lock(other):
            async with asyncio.timeout(HANG_GUARD):
                if is_sqlite(database.engine):  # one writer at a time: nothing can be written
                    with pytest.raises(WriteBusy):
                        await database.ping(lock_wait=0.2)
                else:  # a row locked elsewhere does not keep writes out
                    await database.ping(lock_wait=0.2)
    finally:
        await other.dispose()


async def test_a_write_that_cannot_get_its_lock_in_time_writes_nothing(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM, name="before")
    other = database.another()  # another process, as far as locks go
    try:
        async with _holding_the_write_lock(other):
            with pytest.raises(WriteBusy), limited_lock_wait(0.2):
                async with asyncio.timeout(HANG_GUARD):
                    await _rename(database, "lost")
    finally:
        await other.dispose()

    assert await _name(database) == "held"


async def test_a_write_within_the_limit_waits_for_the_lock_and_commits(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)

    async def hold_briefly() -> None:
        async with _holding_the_write_lock(database):
            await asyncio.sleep(0.2)

    holder = asyncio.create_task(hold_briefly())
    await asyncio.sleep(0.05)
    with limited_lock_wait(5.0):
        await _rename(database, "waited")
    await holder

    assert await _name(database) == "waited"


async def test_a_write_in_a_read_transaction_is_refused_on_sqlite(database, storage_factory):
    if not is_sqlite(database.engine):
        pytest.skip("PostgreSQL locks rows: its reads and writes share one engine")
    await storage_factory.workspace(DEFAULT_TEAM, name="before")

    async with database.sessions() as session:
        with pytest.raises(DBAPIError, match="readonly"):
            await session.execute(
                sa.update(Workspace).where(Workspace.team_id == DEFAULT_TEAM).values(name="x")
            )

    assert await _name(database) == "before"


async def test_sql_parameters_never_reach_an_error_text(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    secret = "os_v2_app_do-not-print-me"

    with pytest.raises(IntegrityError) as failed:
        async with database.sessions.begin() as session:
            await session.execute(sa.insert(Workspace).values(team_id=DEFAULT_TEAM, name=secret))

    assert secret not in str(failed.value)


async def test_sqlite_commits_are_synced_at_checkpoints(database):
    if not is_sqlite(database.engine):
        pytest.skip("SQLite only")
    async with database.sessions.begin() as session:
        synchronous = (await session.execute(sa.text("PRAGMA synchronous"))).scalar_one()
    assert synchronous == 1  # NORMAL: safe from a crash of PushOps in WAL mode


async def _thread_running(session) -> int:
    """The thread SQLite runs this session's statements on."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    await driver.create_function("thread_id", 0, threading.get_ident)
    return (await session.execute(sa.text("SELECT thread_id()"))).scalar_one()


async def test_sqlite_writes_run_on_the_event_loops_thread_and_reads_do_not(database):
    if not is_sqlite(database.engine):
        pytest.skip("SQLite only")
    async with database.sessions.begin() as session:
        writes = await _thread_running(session)
    async with database.sessions() as session:
        reads = await _thread_running(session)

    # A write's statements take no turn of the event loop each (the lock is held shorter);
    # a read's may be long and go on beside the loop.
    assert writes == threading.get_ident()
    assert reads != threading.get_ident()


async def test_a_write_block_commits_before_another_task_runs(database, storage_factory):
    if not is_sqlite(database.engine):
        pytest.skip("SQLite only: PostgreSQL locks rows")
    await storage_factory.workspace(DEFAULT_TEAM)
    async with database.engine.connect(), database.engine.connect():
        pass  # two pooled connections: the other task need not open one (and wait)

    async def write_without_waiting() -> None:
        with limited_lock_wait(0.001):
            await _rename(database, "second")

    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(Workspace).where(Workspace.team_id == DEFAULT_TEAM).values(name="first")
        )
        other = asyncio.create_task(write_without_waiting())  # runs once this task yields

    await other  # no WriteBusy: the lock was free by the time it ran
    assert await _name(database) == "second"
