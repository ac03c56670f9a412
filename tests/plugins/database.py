"""Pytest fixtures: real databases, factories for workspaces, apps and sends, a secret-leak guard.

Databases
- `database_url`: an empty database, parametrized: "sqlite" (a file in tmp_path) always,
  "postgresql" when PUSHOPS_TEST_DATABASE_URL is set (skipped otherwise).
  PostgreSQL isolation is a fresh schema per test, made the connection's only `search_path`
  entry through libpq's `options`; it is dropped at teardown. A schema costs a few
  milliseconds where a database from a template costs a file copy and needs the template
  to have no connection, and it isolates everything our code touches (we never name a schema).
- `database`: `storage.db.Database` (engine + session factory) on `database_url`, migrated.
- `sqlite_database`: the same on SQLite only, for tests where the backend does not matter
  (one run instead of two under CI).
- `keyring`, `secret_key`: a fresh key ring and its `PUSHOPS_SECRET_KEY` text.
- `storage_factory`: `StorageFactory` making workspaces, apps and sends in a line.
- `cli_env`, `run_cli`: the environment for `pushops …` on `database`, and an async runner
  for `bot.cli.main` that returns exit code, stdout and stderr.

Secret-leak guard (autouse): every log record at DEBUG and above from our packages and the
Slack and HTTP libraries is kept during each test; a test fails at teardown when a value
registered with `register_secret(...)` appears in one. The fixtures here register every key
they make; other fixtures and tests register theirs the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from storage import queries, workspaces
from storage.audit import AuditKeys
from storage.crypto import KeyRing, generate_key
from storage.db import Database
from storage.migrations import upgrade
from storage.models import OneSignalApp, Send, SendState, Workspace, utcnow

PG_ENV = "PUSHOPS_TEST_DATABASE_URL"
DEFAULT_TEAM = "T0000TEST"
OTHER_TEAM = "T0000OTHER"

# --- secret-leak guard ------------------------------------------------------------------------

_SECRETS: set[str] = set()
_WATCHED_LOGGERS = ("bot", "commands", "storage", "slack_bolt", "slack_sdk", "httpx", "alembic")


def register_secret(value: str | SecretStr) -> str:
    """Mark `value` as a secret for the current test; returns the plain value."""
    plain = value.get_secret_value() if isinstance(value, SecretStr) else value
    if len(plain) >= 8:  # shorter values would match innocent text
        _SECRETS.add(plain)
    return plain


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record_text(record: logging.LogRecord) -> str:
    try:
        return logging.Formatter().format(record)
    except Exception:  # noqa: BLE001 - any argument's __str__ may raise; the others must show
        return str(record.msg)


def find_leaks(records: Sequence[logging.LogRecord], secrets: Collection[str]) -> list[str]:
    """The records (formatted, secrets masked) in which any of `secrets` appears."""
    leaks = []
    for record in records:
        text = _record_text(record)
        found = [secret for secret in secrets if secret in text]
        for secret in found:
            text = text.replace(secret, "<secret>")
        if found:
            leaks.append(f"{record.name}: {text[:300]}")
    return leaks


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    recorder = _Recorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    levels = {name: logging.getLogger(name).level for name in _WATCHED_LOGGERS}
    for name in _WATCHED_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(recorder)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        secrets = set(_SECRETS)
        _SECRETS.clear()
    leaks = find_leaks(recorder.records, secrets)
    if leaks:
        pytest.fail("a secret appeared in a log line:\n" + "\n".join(leaks), pytrace=False)


# --- databases --------------------------------------------------------------------------------


def _pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@contextlib.contextmanager
def _pg_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the test database; yields a URL whose only search path is it."""
    url = make_url(base_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pushops.db'}"
        return
    base = _pg_base_url()
    if base is None:
        pytest.skip(f"{PG_ENV} is not set")
    with _pg_schema(base) as url:
        yield url


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the head revision, copied per test (a copy costs ~1 ms, a migration ~50)."""
    path = tmp_path_factory.mktemp("template") / "pushops.db"

    async def build() -> None:
        database = Database.open(f"sqlite:///{path}")
        await upgrade(database.engine)
        await database.dispose()  # closing the last connection folds the WAL into the file

    asyncio.run(build())
    return path


async def open_migrated(url: str, template: Path, keyring: KeyRing) -> Database:
    """The database at `url` at the head revision: a copy of `template` for SQLite, migrated
    for PostgreSQL; its audit keyed by `keyring`."""
    target = make_url(url)
    if target.get_backend_name() == "sqlite" and target.database:
        assert not template.with_name(template.name + "-wal").exists()
        shutil.copyfile(template, target.database)
    database = Database.open(url, audit_keys=AuditKeys.from_keyring(keyring))
    if target.get_backend_name() != "sqlite":
        await upgrade(database.engine)
    return database


@pytest.fixture
async def database(
    database_url: str, _migrated_sqlite_template: Path, keyring: KeyRing
) -> AsyncIterator[Database]:
    """A migrated database (SQLite, and PostgreSQL when configured); audit keyed by `keyring`."""
    db = await open_migrated(database_url, _migrated_sqlite_template, keyring)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def sqlite_database(
    tmp_path: Path, _migrated_sqlite_template: Path, keyring: KeyRing
) -> AsyncIterator[Database]:
    """A migrated SQLite database, for tests where the backend does not matter."""
    db = await open_migrated(
        f"sqlite:///{tmp_path / 'pushops.db'}", _migrated_sqlite_template, keyring
    )
    try:
        yield db
    finally:
        await db.dispose()


# --- keys -------------------------------------------------------------------------------------


@pytest.fixture
def secret_key() -> str:
    """A fresh `PUSHOPS_SECRET_KEY` value (one key), registered as a secret."""
    return register_secret(generate_key())


@pytest.fixture
def keyring(secret_key: str) -> KeyRing:
    """The key ring of `secret_key`."""
    return KeyRing.from_text(secret_key)


# --- factories --------------------------------------------------------------------------------


def fake_api_key() -> str:
    """A random OneSignal-shaped REST API key, registered as a secret."""
    return register_secret(f"os_v2_app_{uuid.uuid4().hex}{uuid.uuid4().hex}")


@dataclass
class StorageFactory:
    """Make rows in a line; every write goes through `storage.queries` and `storage.workspaces`,
    so rows are real."""

    database: Database
    keyring: KeyRing

    async def workspace(self, team_id: str = DEFAULT_TEAM, name: str = "Test") -> Workspace:
        """A workspace (created if missing)."""
        async with self.database.sessions.begin() as session:
            return await workspaces.ensure_workspace(session=session, team_id=team_id, name=name)

    async def app(
        self,
        team_id: str = DEFAULT_TEAM,
        name: str = "main",
        *,
        onesignal_app_id: str | None = None,
        api_key: str | None = None,
        make_default: bool = False,
    ) -> OneSignalApp:
        """A OneSignal app with a random registered key (its workspace made if missing)."""
        async with self.database.sessions.begin() as session:
            return await workspaces.add_app(
                session=session,
                keyring=self.keyring,
                team_id=team_id,
                name=name,
                onesignal_app_id=onesignal_app_id or str(uuid.uuid4()),
                api_key=SecretStr(api_key or fake_api_key()),
                added_by="U0ADMIN",
                make_default=make_default,
            )

    async def send(
        self,
        app: OneSignalApp,
        *,
        state: SendState = SendState.SCHEDULED,
        due_at: datetime | None = None,
        requester_id: str = "U0REQUESTER",
        content: Mapping[str, Any] | None = None,
        audience: Mapping[str, Any] | None = None,
        **columns: Any,
    ) -> Send:
        """A send of `app`; states a send cannot start in are set directly afterwards."""
        start = (
            state if state in {SendState.DRAFT, SendState.PENDING_APPROVAL} else SendState.SCHEDULED
        )
        async with self.database.sessions.begin() as session:
            send = await queries.create_send(
                session=session,
                team_id=app.team_id,
                requester_id=requester_id,
                app=app,
                content=content or {"contents": {"en": "Hello"}},
                audience=audience or {"segments": ["Test Users"]},
                state=start,
                due_at=due_at or utcnow(),
            )
            if state != start or columns:
                await session.execute(
                    sa.update(Send).where(Send.id == send.id).values(state=state, **columns)
                )
                await session.refresh(send)
            return send

    async def due_sends(self, app: OneSignalApp, count: int, due_at: datetime) -> list[uuid.UUID]:
        """`count` scheduled sends due at `due_at`, inserted in one statement (load tests)."""
        rows: list[dict[str, Any]] = [
            {
                "id": uuid.uuid4(),
                "short_id": f"{i:06d}",
                "team_id": app.team_id,
                "app_ref": app.id,
                "app_name": app.name,
                "requester_id": "U0REQUESTER",
                "content": {"contents": {"en": f"burst {i}"}},
                "audience": {"segments": ["Test Users"]},
                "state": SendState.SCHEDULED,
                "due_at": due_at,
            }
            for i in range(count)
        ]
        async with self.database.sessions.begin() as session:
            await session.execute(sa.insert(Send), rows)
        return [row["id"] for row in rows]


@pytest.fixture
def storage_factory(database: Database, keyring: KeyRing) -> StorageFactory:
    """Factories on `database` with `keyring`."""
    return StorageFactory(database, keyring)


# --- command line -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """What a `pushops` run gave back."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: Database, secret_key: str
) -> dict[str, str]:
    """Environment for `pushops` on `database`; tests may change it before `run_cli`."""
    url = database.engine.url.set(
        drivername=database.engine.url.get_backend_name()
    ).render_as_string(hide_password=False)
    env = {
        "DATABASE_URL": url,
        "PUSHOPS_SECRET_KEY": secret_key,
        "PUSHOPS_DATA_DIR": str(tmp_path / "data"),
    }
    for name in ("ONESIGNAL_API_KEY", "ONESIGNAL_APP_ID", "PUSHOPS_AUTO_MIGRATE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`await run_cli("apps", "list", env={...})` runs `bot.cli.main` in a thread."""
    from bot.cli import main

    def invoke(argv: Sequence[str]) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exit_:  # argparse usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
        return CliResult(code, out.getvalue(), err.getvalue())

    async def run(*argv: str, env: Mapping[str, str | None] | None = None) -> CliResult:
        for name, value in (env or {}).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        return await asyncio.to_thread(invoke, argv)

    return run
