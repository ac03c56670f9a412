"""The database part of `pushops check`: connect, compare the schema, open the stored keys.

Nothing is created: a SQLite file that does not exist yet is reported as such (`serve` makes
it), and the key ring is read without generating the data dir's key file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot.checks.problems import Problem, Report
from bot.default_app import SETTINGS_ACTOR
from bot.settings import Settings
from bot.words import plural
from storage import workspaces
from storage.crypto import KEY_FILE_NAME, CryptoError, KeyRing, SecretDecryptionError, read_keyring
from storage.db import Database, display_url
from storage.migrations import current_revision, head_revision, is_known_revision
from storage.models import OneSignalApp

CONNECT_TIMEOUT: Final = 10.0
"""Seconds `check` waits for the database to answer before calling it unreachable."""


@dataclass(frozen=True)
class StoredApp:
    """A OneSignal app saved in the database, its key decrypted for the online check."""

    team_id: str
    name: str
    app_id: str
    api_key: SecretStr = field(repr=False)
    from_settings: bool

    @property
    def label(self) -> str:
        """How a problem names it."""
        return label_of(self.team_id, self.name)


def label_of(team_id: str, name: str) -> str:
    """How a problem names a stored app."""
    return f"app {name!r} of workspace {team_id}"


@dataclass
class DatabaseReport:
    """What the database check found, and the stored apps whose keys it could open."""

    report: Report = field(default_factory=Report)
    apps: list[StoredApp] = field(default_factory=list)


async def check_database(settings: Settings, *, keys: bool = True) -> DatabaseReport:
    """Connect to the configured database, compare its schema, and (with `keys`) open its keys."""
    url = settings.resolved_database_url
    where = display_url(url)
    if _sqlite_file_missing(url):
        return DatabaseReport(_not_created(settings, where))
    database = Database.open(url)
    try:
        return await _check_open(settings, database, where, keys=keys)
    finally:
        await database.dispose()


def _sqlite_file_missing(url: str) -> bool:
    parsed = make_url(url)
    name = parsed.database
    return (
        parsed.get_backend_name() == "sqlite"
        and bool(name)
        and name != ":memory:"
        and not (Path(str(name)).expanduser().exists())
    )


def _not_created(settings: Settings, where: str) -> Report:
    if settings.auto_migrate:
        return Report(fine=[f"Database {where}: not created yet; `serve` creates it at start."])
    return Report(
        problems=[
            Problem(
                "DATABASE_URL",
                f"{where} does not exist yet, and PUSHOPS_AUTO_MIGRATE=0 keeps `serve` from "
                "creating it.",
                "run `pushops db upgrade`.",
            )
        ]
    )


async def _check_open(
    settings: Settings, database: Database, where: str, *, keys: bool
) -> DatabaseReport:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            current = await current_revision(database.engine)
    except (SQLAlchemyError, OSError) as e:  # TimeoutError is an OSError
        problem = Problem(
            "DATABASE_URL",
            f"cannot connect to {where} ({_reason(e)}).",
            "check that the database runs and that DATABASE_URL's host, port, user, password "
            "and database name are right.",
        )
        return DatabaseReport(Report(problems=[problem]))
    found = DatabaseReport(_schema(settings, where, current))
    if keys and current == head_revision():
        apps, report = await stored_apps(database, _keyring(settings, found.report), settings)
        found.apps = apps
        found.report.extend(report)
    return found


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:g} s"
    cause = error.orig if isinstance(error, DBAPIError) else error
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _schema(settings: Settings, where: str, current: str | None) -> Report:
    head = head_revision()
    if current == head:
        return Report(fine=[f"Database {where}: reachable, schema current (revision {head})."])
    if current is not None and not is_known_revision(current):
        problem = Problem(
            "DATABASE_URL",
            f"the database at {where} is at revision {current}, which this PushOps does not "
            "know: a newer version upgraded it.",
            "run that newer PushOps, or point DATABASE_URL at a database of this version.",
        )
        return Report(problems=[problem])
    at = current or "none (empty)"
    if settings.auto_migrate:
        return Report(
            fine=[f"Database {where}: reachable, at revision {at}; `serve` upgrades it to {head}."]
        )
    problem = Problem(
        "DATABASE_URL",
        f"the database at {where} is at revision {at}, this PushOps needs {head}, and "
        "PUSHOPS_AUTO_MIGRATE=0 keeps `serve` from upgrading it.",
        "run `pushops db upgrade`.",
    )
    return Report(problems=[problem])


def _keyring(settings: Settings, report: Report) -> KeyRing | None:
    try:
        return read_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
    except (CryptoError, OSError) as e:  # a malformed PUSHOPS_SECRET_KEY is reported already
        if settings.secret_key is None:
            report.problems.append(
                Problem(
                    "PUSHOPS_DATA_DIR",
                    f"its key file cannot be read: {e}",
                    f"make {settings.data_dir / KEY_FILE_NAME} readable by the user running "
                    "PushOps, or set PUSHOPS_SECRET_KEY.",
                )
            )
        return None


async def stored_apps(
    database: Database, keyring: KeyRing | None, settings: Settings
) -> tuple[list[StoredApp], Report]:
    """Every stored OneSignal app with its key decrypted, and a problem for each that won't."""
    async with database.sessions() as session:
        rows = await workspaces.list_apps(session=session, team_id=None)
    report = Report()
    if not rows:
        return [], report
    if keyring is None:
        if settings.secret_key is None:
            report.problems.append(_no_key(settings, len(rows)))
        return [], report
    apps = []
    for row in rows:
        try:
            apps.append(_opened(row, keyring))
        except SecretDecryptionError as e:
            report.problems.append(
                Problem(
                    label_of(row.team_id, row.name),
                    f"its REST API key does not decrypt: {e.reason}.",
                    "set PUSHOPS_SECRET_KEY to the key it was saved with (new,old while "
                    "rotating), or save the app's key again with /push setup.",
                )
            )
    if apps:
        report.fine.append(f"The key ring opens {plural(len(apps), 'stored OneSignal key')}.")
    return apps, report


def _opened(row: OneSignalApp, keyring: KeyRing) -> StoredApp:
    return StoredApp(
        team_id=row.team_id,
        name=row.name,
        app_id=row.onesignal_app_id,
        api_key=workspaces.decrypt_app_key(row, keyring=keyring),
        from_settings=row.added_by == SETTINGS_ACTOR,
    )


def _no_key(settings: Settings, count: int) -> Problem:
    return Problem(
        "PUSHOPS_SECRET_KEY",
        f"is not set and {settings.data_dir / KEY_FILE_NAME} does not exist, but the database "
        f"holds {plural(count, 'encrypted OneSignal key')}; `serve` would make a new key that "
        "opens none.",
        "set PUSHOPS_SECRET_KEY to the key they were saved with, or put the key file back.",
    )
