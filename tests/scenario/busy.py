"""A database held by another writer, or refusing writes, as the scenarios of a busy or failed
PushOps need it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database
from storage.models import Workspace
from tests.fakes.slack import DEFAULT_TEAM_ID

READ_ONLY = "attempt to write a readonly database"
"""What the refusal says (SQLite's words for a read-only database)."""


@contextlib.asynccontextmanager
async def held_by_another_writer(
    database: Database, team_id: str = DEFAULT_TEAM_ID
) -> AsyncIterator[None]:
    """Another process writing: the workspace row locked (and SQLite's write lock taken)."""
    other = database.another()
    try:
        async with other.sessions.begin() as session:
            await session.execute(
                sa.update(Workspace).where(Workspace.team_id == team_id).values(name="held")
            )
            yield
    finally:
        await other.dispose()


@contextlib.asynccontextmanager
async def refusing_writes(database: Database) -> AsyncIterator[None]:
    """Every table of the database refuses every write until the block ends, as a database
    turned read-only does (a failover to a standby, a read-only file).

    Done from another connection, as an operator would, with a trigger on each table: on
    PostgreSQL a statement trigger raising SQLSTATE 25006 (read_only_sql_transaction, what
    a read-only server answers), on SQLite row triggers that RAISE(ABORT). The triggers live
    in the test's own schema or file, so other tests never see them.
    """
    other = Database.open(database.engine.url)
    try:
        async with other.engine.begin() as connection:
            tables = await _tables(connection)
            for statement in _refusals(connection, tables):
                await connection.exec_driver_sql(statement)
        try:
            yield
        finally:
            async with other.engine.begin() as connection:
                for statement in _lifts(connection, tables):
                    await connection.exec_driver_sql(statement)
    finally:
        await other.dispose()


async def _tables(connection: AsyncConnection) -> list[str]:
    return sorted(await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


_OPS = ("INSERT", "UPDATE", "DELETE")


def _refusals(connection: AsyncConnection, tables: list[str]) -> list[str]:
    if connection.dialect.name == "sqlite":
        return [
            f'CREATE TRIGGER "refuse_{table}_{op.lower()}" BEFORE {op} ON "{table}" '
            f"BEGIN SELECT RAISE(ABORT, '{READ_ONLY}'); END"
            for table in tables
            for op in _OPS
        ]
    function = (
        "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'cannot execute %% in a read-only transaction', TG_OP "
        "USING ERRCODE = 'read_only_sql_transaction'; END $$"
    )
    return [function] + [
        f'CREATE TRIGGER refuse_writes BEFORE INSERT OR UPDATE OR DELETE ON "{table}" '
        "FOR EACH STATEMENT EXECUTE FUNCTION refuse_writes()"
        for table in tables
    ]


def _lifts(connection: AsyncConnection, tables: list[str]) -> list[str]:
    if connection.dialect.name == "sqlite":
        return [f'DROP TRIGGER "refuse_{table}_{op.lower()}"' for table in tables for op in _OPS]
    return [f'DROP TRIGGER refuse_writes ON "{table}"' for table in tables] + [
        "DROP FUNCTION refuse_writes()"
    ]


@contextlib.asynccontextmanager
async def refusing_to_change(database: Database, short_id: str) -> AsyncIterator[None]:
    """The database refuses every change to one send's row (and takes all others)."""
    other = Database.open(database.engine.url)
    if other.engine.dialect.name == "sqlite":
        make = [
            f"CREATE TRIGGER refuse_one BEFORE UPDATE ON sends WHEN OLD.short_id = '{short_id}' "
            f"BEGIN SELECT RAISE(ABORT, '{READ_ONLY}'); END"
        ]
        lift = ["DROP TRIGGER refuse_one"]
    else:
        make = [
            "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'this row is read-only' USING ERRCODE = 'read_only_sql_transaction'; "
            "END $$",
            f"CREATE TRIGGER refuse_one BEFORE UPDATE ON sends FOR EACH ROW "
            f"WHEN (OLD.short_id = '{short_id}') EXECUTE FUNCTION refuse_one()",
        ]
        lift = ["DROP TRIGGER refuse_one ON sends", "DROP FUNCTION refuse_one()"]
    try:
        async with other.engine.begin() as connection:
            for statement in make:
                await connection.exec_driver_sql(statement)
        try:
            yield
        finally:
            async with other.engine.begin() as connection:
                for statement in lift:
                    await connection.exec_driver_sql(statement)
    finally:
        await other.dispose()
