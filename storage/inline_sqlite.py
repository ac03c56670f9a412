"""aiosqlite connections whose statements run on the event loop's own thread (SQLite writes).

The one place PushOps leans on a private name of a dependency under its database, and why.

Through aiosqlite's worker thread every call SQLAlchemy makes (a cursor, an execute, a
fetch, a close: about four a statement) is a round trip to that thread and back through the
event loop's queue, behind every other ready task. SQLite's write lock is
held from BEGIN IMMEDIATE to COMMIT, so on a busy loop (a burst of `/push send`, the
scheduler's timers) each write held the lock for tens of milliseconds or more, and every
other writer, and the acks waiting on them, queued behind it. Run here, a write transaction
holds the lock only while SQLite works (under a millisecond) and no other task runs in
between. Writers never wait inside SQLite, which would stop the loop: another writer's lock
is waited for with asyncio sleeps (storage.db `_begin_immediate`). Reads keep aiosqlite's
worker thread: they may be long, and hold no lock.

Nothing public serves: aiosqlite has no option to run statements inline, and SQLAlchemy's
`async_creator` (public) takes an aiosqlite connection. So this subclass overrides
`aiosqlite.Connection._execute`, through which aiosqlite (as of 0.22) runs every call on
the sqlite3 connection and its cursors, and marks `_thread` a daemon as SQLAlchemy does for
its own aiosqlite connections. tests/storage/test_inline_sqlite.py fails on the aiosqlite
release that changes either: it checks that every call SQLAlchemy makes completes without
a turn of the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import aiosqlite

CONNECT_TIMEOUT_S: Final = 5.0
"""How long opening a SQLite connection may wait for a lock (its PRAGMAs)."""

_ITER_CHUNK_SIZE: Final = 64  # aiosqlite's default: rows fetched at a time by `async for`


class LoopThreadConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run on the event loop's own thread."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # aiosqlite queues `fn` for its worker thread here; a closed connection fails in
        # sqlite3 ("Cannot operate on a closed database") or before, in aiosqlite's `_conn`.
        return fn(*args, **kwargs)


def connector(path: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """SQLAlchemy's `async_creator` for `LoopThreadConnection`s to the SQLite file at `path`."""

    async def connect() -> aiosqlite.Connection:
        opener = partial(sqlite3.connect, path, timeout=CONNECT_TIMEOUT_S, check_same_thread=False)
        connection = LoopThreadConnection(opener, _ITER_CHUNK_SIZE)
        # The worker thread (which still opens and closes the connection) must not keep the
        # process alive when an engine is left undisposed.
        connection._thread.daemon = True
        return await connection

    return connect
