"""The async engine and session factory behind `DATABASE_URL` (aiosqlite or psycopg 3).

A transaction opened with `begin()` (`database.sessions.begin()`, or `session.begin()`) is a
write transaction; one that a first query opens is a read. On SQLite the difference matters:
only a write takes the database's single write lock (BEGIN IMMEDIATE), and a read runs on
connections of its own that refuse to write (`PRAGMA query_only`), so a long read such as an
audit export never holds up a send, a claim or an audit append, and a write slipped into a
read fails at once instead of some day under load. PostgreSQL locks rows, so both kinds run
on one engine there.

SQLite writes run on the event loop's thread (storage.inline_sqlite); reads keep aiosqlite's
worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, AdaptedConnection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransactionOrigin

from storage import inline_sqlite
from storage.audit import AuditKeys, audit_session_info

SQLITE_BUSY_TIMEOUT_S: Final = 30.0
"""How long a SQLite writer waits for another one before giving up with "database is locked"."""

_LOCK_RETRY_FIRST_S: Final = 0.001
_LOCK_RETRY_MAX_S: Final = 0.02

_SQLITE_BUSY: Final = 5  # SQLITE_BUSY, the primary result code of "database is locked"
_PG_LOCK_NOT_AVAILABLE: Final = "55P03"  # what lock_timeout raises

_LOCK_WAIT_MS: ContextVar[int | None] = ContextVar("pushops_lock_wait_ms", default=None)


class DatabaseURLError(ValueError):
    """`DATABASE_URL` names no database PushOps can use; the message says what would work."""


class DatabaseDriverMissing(DatabaseURLError):
    """`DATABASE_URL` names PostgreSQL but its driver cannot be imported; `fix` says what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"DATABASE_URL {problem.rstrip('.')}: {fix}.")


POSTGRES_EXTRA_FIX: Final = "pip install 'pushops[postgres]' (the Docker image has it)"


class WriteBusy(Exception):
    """Another writer held the database longer than the caller could wait; nothing was written."""


class WriteRefused(Exception):
    """The database refuses writes (read-only after a failover, a read-only file, a full disk)."""


_WRITE_PROBE: Final = sa.text("UPDATE alembic_version SET version_num = version_num")
"""A write that changes nothing, to the one row Alembic keeps in every migrated database."""


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
        _require_psycopg()
        return parsed.set(drivername="postgresql+psycopg")
    raise DatabaseURLError(
        f"DATABASE_URL names a {backend} database; PushOps supports sqlite:///… and postgresql://…."
    )


def _require_psycopg() -> None:
    """Raise `DatabaseDriverMissing` when psycopg 3 (an optional dependency) cannot be imported.

    Without this, the first connection would fail deep in SQLAlchemy with a long traceback.
    """
    try:
        import psycopg  # noqa: F401  # imported by the engine later; here only to ask
    except ModuleNotFoundError as e:
        if e.name != "psycopg":
            raise
        raise DatabaseDriverMissing(
            "names a PostgreSQL database, but the PostgreSQL driver (psycopg) is not installed.",
            POSTGRES_EXTRA_FIX,
        ) from None
    except ImportError as e:  # installed, but its C library (libpq) is missing or broken
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DatabaseDriverMissing(
            f"names a PostgreSQL database, but the PostgreSQL driver (psycopg) could not be "
            f"loaded: {reason}.",
            "pip install 'psycopg[binary]', or install libpq",
        ) from None


def display_url(url: str | URL) -> str:
    """`url` fit for a message or a log line: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether `engine` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def create_engine(url: str | URL, *, echo: bool = False, **options: Any) -> AsyncEngine:
    """An engine for `url` (its writes, on SQLite); a SQLite file and its folder are created.

    `options` go to SQLAlchemy's `create_async_engine` (e.g. `pool_size`). SQL parameters
    never appear in SQLAlchemy's errors or logs (`hide_parameters`): they may hold secrets.
    """
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        engine = create_async_engine(
            target, echo=echo, pool_pre_ping=True, hide_parameters=True, **options
        )
        _configure_postgresql(engine)
        return engine
    if not _is_file(target):
        engine = _sqlite_engine(target, echo, options)
        _configure_sqlite(engine, reads=False, inline=False)
        return engine
    Path(str(target.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        target,
        echo=echo,
        hide_parameters=True,
        async_creator=inline_sqlite.connector(str(target.database)),
        **options,
    )
    _configure_sqlite(engine, reads=False, inline=True)
    return engine


def _is_file(target: URL) -> bool:
    return bool(target.database) and target.database != ":memory:"


def _sqlite_engine(target: URL, echo: bool, options: dict[str, Any]) -> AsyncEngine:
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    return create_async_engine(
        target, echo=echo, connect_args=connect_args, hide_parameters=True, **options
    )


def _configure_sqlite(engine: AsyncEngine, *, reads: bool, inline: bool = False) -> None:
    """WAL, foreign keys, a busy timeout; BEGIN IMMEDIATE for writes, a plain BEGIN for reads.

    The Python driver would open transactions lazily and as readers; a reader that later writes
    fails at once with "database is locked" when another writer got in between, instead of
    waiting. BEGIN IMMEDIATE takes the write lock up front, so writers queue (up to the busy
    timeout) and every write transaction sees a stable database: this is what keeps a
    compare-and-set, a claim or an audit append correct on SQLite. Reads begin deferred: in
    WAL mode they neither wait for the writer nor hold it up, and each sees one snapshot.

    `synchronous=NORMAL` (writes only): in WAL mode a commit is then not synced to disk until
    the next checkpoint. A committed send survives a crash of PushOps (the WAL is in the OS's
    hands); only a power cut or an OS crash may lose the last commits. It takes a file sync
    (milliseconds) off every commit, and commits hold the write lock that much shorter.
    `inline` (writes on the loop's thread): SQLite itself never waits for the lock
    (`busy_timeout=0`); `_begin_immediate` does.
    """
    busy_ms = 0 if inline else int(SQLITE_BUSY_TIMEOUT_S * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA query_only=ON" if reads else "PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if reads:
            connection.exec_driver_sql("BEGIN")
        elif inline:
            _begin_immediate(connection, _LOCK_WAIT_MS.get())
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_immediate(connection: sa.Connection, limit_ms: int | None) -> None:
    """BEGIN IMMEDIATE, waiting for another writer's lock with asyncio sleeps.

    Gives up after `limit_ms` (SQLITE_BUSY_TIMEOUT_S without a limit) with SQLite's own
    "database is locked", which `limited_lock_wait` turns into WriteBusy.
    """
    wait = SQLITE_BUSY_TIMEOUT_S if limit_ms is None else limit_ms / 1000
    deadline = time.monotonic() + wait
    pause = _LOCK_RETRY_FIRST_S
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as error:
            if not is_lock_timeout(error) or time.monotonic() + pause > deadline:
                raise
        _sleep(connection, pause)
        pause = min(pause * 2, _LOCK_RETRY_MAX_S)


def _sleep(connection: sa.Connection, seconds: float) -> None:
    """Sleep inside an event handler while the event loop goes on.

    An event handler is synchronous; `AdaptedConnection.run_async` is SQLAlchemy's documented
    way to await from one ("Using awaitable-only driver methods in connection pool and other
    events", in its asyncio guide).
    """
    adapted = connection.connection.dbapi_connection
    if not isinstance(adapted, AdaptedConnection):
        raise TypeError(f"not an asyncio driver's connection: {type(adapted).__name__}")
    adapted.run_async(lambda _driver: asyncio.sleep(seconds))


def _configure_postgresql(engine: AsyncEngine) -> None:
    """Inside `limited_lock_wait`, a transaction waits on row locks no longer than allowed."""

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        limit_ms = _LOCK_WAIT_MS.get()
        if limit_ms is not None:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(limit_ms)}")


@contextlib.contextmanager
def limited_lock_wait(seconds: float) -> Iterator[None]:
    """Write transactions begun inside wait at most `seconds` for another writer's lock.

    When that is not enough the transaction fails before anything of it is written, and
    `WriteBusy` comes out of this block: the caller may say for sure that nothing was stored.
    Nothing else is cut short: a transaction that got its locks runs to its commit (a timeout
    that could cancel a commit would leave the caller not knowing what it stored).
    """
    token = _LOCK_WAIT_MS.set(max(1, int(seconds * 1000)))
    try:
        yield
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise WriteBusy("the database is busy with other writes; nothing was written") from None
        raise
    finally:
        _LOCK_WAIT_MS.reset(token)


def is_lock_timeout(error: DBAPIError) -> bool:
    """Whether `error` is a write that gave up waiting for another writer's lock (nothing of
    its transaction was written)."""
    original = error.orig
    if getattr(original, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
        return True
    code = getattr(original, "sqlite_errorcode", None)
    # SQLite in WAL mode is busy only at BEGIN IMMEDIATE: before the transaction wrote a thing.
    return isinstance(code, int) and code & 0xFF == _SQLITE_BUSY


class RoutingSession(Session):
    """A session whose reads (transactions a first query began) run on the read engine.

    SQLAlchemy's documented way to split reads from writes is overriding `get_bind`. A
    transaction begun with `begin()` is a write and runs on the session's own bind.
    """

    def __init__(self, *args: Any, reads: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reads = reads

    def get_bind(self, mapper: Any = None, *, bind: Any = None, **kwargs: Any) -> Any:
        """The read engine for a read transaction, else the session's bind."""
        if self._reads is not None and bind is None and not self.writing:
            return self._reads
        return super().get_bind(mapper, bind=bind, **kwargs)

    @property
    def writing(self) -> bool:
        """Whether the transaction in progress was begun with `begin()` (is a write)."""
        root = self.get_transaction()
        return root is not None and root.origin is SessionTransactionOrigin.BEGIN


class _CommitAtOnce(AbstractAsyncContextManager[AsyncSession]):
    """A `begin()` block that commits in the caller's own task (`SessionFactory`)."""

    __slots__ = ("session", "transaction")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.transaction = session.begin()

    async def __aenter__(self) -> AsyncSession:
        await self.transaction.__aenter__()
        return self.session

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        try:
            await self.transaction.__aexit__(type_, value, traceback)  # COMMIT, or ROLLBACK
        finally:
            await self.session.__aexit__(type_, value, traceback)  # close


class SessionFactory(async_sessionmaker[AsyncSession]):
    """Sessions whose `begin()` block commits as soon as it ends (SQLite's write engine).

    SQLAlchemy ends a `begin()` block by committing in a task of its own, so that a
    cancellation cannot abandon a commit halfway; that task only starts at the event loop's
    next turn, and meanwhile SQLite's write lock stays taken, which under load made other
    writers wait a turn each. On storage.inline_sqlite's connections a commit never
    suspends, so it cannot be cancelled halfway, and it runs at once: this block is
    `async with session, session.begin()`, both public (tests/storage/test_db.py checks that
    a commit releases the lock before the block ends).
    """

    # SQLAlchemy annotates begin() with its private context manager class; callers only
    # enter the block, which this one does as theirs does.
    def begin(self) -> AbstractAsyncContextManager[AsyncSession]:  # type: ignore[override]
        """A new session in a transaction that commits when the block ends."""
        return _CommitAtOnce(self())


def create_session_factory(
    engine: AsyncEngine,
    *,
    reads: AsyncEngine | None = None,
    audit_keys: AuditKeys | None = None,
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (the callers hand them to Slack views).

    With `reads`, read transactions run there (see `RoutingSession`). With `audit_keys`, the
    sessions append audit events (each session's `info` holds what storage.audit needs).
    """
    factory = SessionFactory if _writes_on_loop_thread(engine) else async_sessionmaker
    return factory(
        engine,
        expire_on_commit=False,
        sync_session_class=RoutingSession,
        reads=reads.sync_engine if reads is not None else None,
        info=audit_session_info(audit_keys),
    )


def _writes_on_loop_thread(engine: AsyncEngine) -> bool:
    return is_sqlite(engine) and _is_file(engine.url)


def _read_engine(engine: AsyncEngine, echo: bool, options: dict[str, Any]) -> AsyncEngine | None:
    """SQLite's engine for reads (its own connections, which refuse to write); None elsewhere."""
    url = engine.url
    if not is_sqlite(engine) or not _is_file(url):
        return None  # an in-memory database is private to its connection: no second one
    reads = _sqlite_engine(url, echo, options)
    _configure_sqlite(reads, reads=True)
    return reads


@dataclass(frozen=True)
class Database:
    """An engine and its session factory: what the app, the scheduler and the CLI share.

    `engine` is the one for writes (and everything that is not a session: migrations, Slack's
    installation store); `read_engine` is SQLite's engine for reads, None on PostgreSQL.
    """

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine | None = None
    audit_keys: AuditKeys | None = None

    @classmethod
    def open(
        cls,
        url: str | URL,
        *,
        audit_keys: AuditKeys | None = None,
        echo: bool = False,
        **options: Any,
    ) -> Database:
        """Connect lazily to `url` (nothing is opened until the first query).

        Audit events can be written only with `audit_keys` (storage.audit); a database opened
        without them reads, migrates and writes everything else.
        """
        engine = create_engine(url, echo=echo, **options)
        reads = _read_engine(engine, echo, options)
        return cls(
            engine=engine,
            sessions=create_session_factory(engine, reads=reads, audit_keys=audit_keys),
            read_engine=reads,
            audit_keys=audit_keys,
        )

    def keyed(self, audit_keys: AuditKeys) -> Database:
        """This database, on the same engines and pools, with sessions that write audit events.

        For a caller that opens the database before it may make the key (the command line
        makes no key file until nothing else can refuse). Dispose of one of the two only.
        """
        sessions = create_session_factory(
            self.engine, reads=self.read_engine, audit_keys=audit_keys
        )
        return replace(self, sessions=sessions, audit_keys=audit_keys)

    def another(self, **options: Any) -> Database:
        """The same database with the same audit keys, through an engine and pool of its own.

        As far as locks and connections go this is another process (a second replica).
        """
        return Database.open(self.engine.url, audit_keys=self.audit_keys, **options)

    async def ping(self, *, lock_wait: float = 1.0) -> None:
        """Raise unless the database can take a write (for `/readyz`).

        A database that answers reads but refuses writes (a failover left it read-only)
        fails nearly every command, so reaching it is not enough: this writes a row without
        changing it, in a transaction rolled back, which a read-only database refuses
        (`WriteRefused`). On SQLite it holds the write lock for that moment, waiting for
        another writer at most `lock_wait` s (`WriteBusy`); on PostgreSQL it locks only
        that row. A database that cannot be reached raises SQLAlchemy's error.
        """
        with limited_lock_wait(lock_wait):
            async with self.engine.connect() as connection:
                try:
                    transaction = await connection.begin()
                    try:
                        await connection.execute(_WRITE_PROBE)
                    finally:
                        await transaction.rollback()
                except DBAPIError as error:
                    if is_lock_timeout(error) or error.connection_invalidated:
                        raise
                    raise WriteRefused(
                        f"the database refused a write ({type(error).__name__})"
                    ) from None

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self.read_engine is not None:
            await self.read_engine.dispose()
        await self.engine.dispose()
