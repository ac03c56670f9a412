"""The pin on aiosqlite's internals that storage.inline_sqlite holds: every call SQLAlchemy makes
on a write connection completes without a turn of the event loop.

Fails on the aiosqlite release that stops running calls through `Connection._execute` (a call
would then wait for the worker thread) or drops `_thread`; storage/inline_sqlite.py says why
PushOps needs this.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from storage import inline_sqlite

T = TypeVar("T")


def at_once(call: Awaitable[T]) -> T:
    """The result of `call`, which must complete without giving the event loop a turn."""
    steps = call.__await__()
    try:
        waiting_on = steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise AssertionError(
        f"suspended on {waiting_on!r}: aiosqlite no longer runs this call through "
        "Connection._execute (see storage/inline_sqlite.py)"
    )


@pytest.fixture
async def connection(tmp_path: Path) -> AsyncIterator[Any]:
    connection = await inline_sqlite.connector(str(tmp_path / "pin.db"))()
    try:
        yield connection
    finally:
        await connection.close()


async def test_every_call_sqlalchemy_makes_runs_without_a_turn_of_the_loop(connection):
    # What sqlalchemy.dialects.sqlite.aiosqlite calls on a connection and its cursors.
    at_once(connection.create_function("thread_id", 0, threading.get_ident))
    at_once(connection.execute("CREATE TABLE pins (id INTEGER PRIMARY KEY, name TEXT)"))
    at_once(connection.execute("BEGIN IMMEDIATE"))
    cursor = at_once(connection.cursor())
    at_once(cursor.execute("INSERT INTO pins (name) VALUES (?)", ("one",)))
    assert cursor.lastrowid == 1
    at_once(cursor.executemany("INSERT INTO pins (name) VALUES (?)", [("two",), ("three",)]))
    assert cursor.rowcount == 2
    at_once(cursor.execute("SELECT name, thread_id() FROM pins ORDER BY id"))
    assert cursor.description[0][0] == "name"
    assert at_once(cursor.fetchone()) == ("one", threading.get_ident())
    assert at_once(cursor.fetchmany(1)) == [("two", threading.get_ident())]
    assert at_once(cursor.fetchall()) == [("three", threading.get_ident())]
    at_once(cursor.close())
    at_once(connection.commit())
    at_once(connection.execute("BEGIN IMMEDIATE"))
    at_once(connection.execute("DELETE FROM pins"))
    at_once(connection.rollback())

    count = at_once(connection.execute("SELECT count(*) FROM pins"))
    assert at_once(count.fetchall()) == [(3,)]


async def test_the_worker_thread_never_keeps_the_process_alive(connection):
    # It still opens and closes the sqlite3 connection; an undisposed engine leaves it waiting.
    assert isinstance(connection._thread, threading.Thread)
    assert connection._thread.daemon


async def test_a_closed_connection_refuses_calls(tmp_path):
    connection = await inline_sqlite.connector(str(tmp_path / "pin.db"))()
    cursor = await connection.cursor()
    await connection.close()

    with pytest.raises(ValueError, match="no active connection"):
        await connection.execute("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        await cursor.execute("SELECT 1")
