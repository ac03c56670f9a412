"""The async engine and session factory behind `DATABASE_URL` (aiosqlite or psycopg 3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_S: Final = 30.0
"""How long a SQLite writer waits for another one before giving up with "database is locked"."""


class DatabaseURLError(ValueError):
    """`DATABASE_URL` names no database PushOps can use; the message says what would work."""


def async_url(url: str | URL) -> URL:
    """`url` with the driver PushOps uses: aiosqlite for SQLite, psycopg 3 for PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(
            "DATABASE_URL is not a database URL; use sqlite:///path/to/file.db or "
            "postgresql://user@host/dbname."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise DatabaseURLError(
        f"DATABASE_URL names a {backend} database; PushOps supports sqlite:///… and postgresql://…."
    )


def display_url(url: str | URL) -> str:
    """`url` fit for a message or a log line: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether `engine` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def create_engine(url: str | URL, *, echo: bool = False, **options: Any) -> AsyncEngine:
    """An engine for `url`; a SQLite file (and its folder) is created on first use.

    `options` go to SQLAlchemy's `create_async_engine` (e.g. `pool_size`).
    """
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        return create_async_engine(target, echo=echo, pool_pre_ping=True, **options)
    if target.database and target.database != ":memory:":
        Path(target.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    engine = create_async_engine(target, echo=echo, connect_args=connect_args, **options)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for every transaction.

    The Python driver would open transactions lazily and as readers; a reader that later writes
    fails at once with "database is locked" when another writer got in between, instead of
    waiting. BEGIN IMMEDIATE takes the write lock up front, so writers queue (up to the busy
    timeout) and every transaction sees a stable database: this is what keeps a compare-and-set,
    a claim or an audit append correct on SQLite. Readers in WAL mode are never blocked.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (the callers hand them to Slack views)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """An engine and its session factory: what the app, the scheduler and the CLI share."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def open(cls, url: str | URL, *, echo: bool = False, **options: Any) -> Database:
        """Connect lazily to `url` (nothing is opened until the first query)."""
        engine = create_engine(url, echo=echo, **options)
        return cls(engine=engine, sessions=create_session_factory(engine))

    async def ping(self) -> None:
        """Raise if the database cannot be reached (for `/readyz`)."""
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
