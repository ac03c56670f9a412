"""What every `pushops` command group that works on the database shares: reading the settings,
opening the database at this version's schema, the key ring, the operator's name, and turning
every expected failure into one line on standard error.

Every expected failure (bad input, unknown workspace, missing key, wrong key, unreachable
database) ends with one line on standard error and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from bot.settings import Settings, read_settings
from storage.audit import AuditKeys
from storage.crypto import KEY_FILE_NAME, CryptoError, KeyRing, load_keyring, read_keyring
from storage.db import Database, DatabaseURLError, display_url
from storage.errors import StorageError
from storage.migrations import current_revision, head_revision
from storage.models import OneSignalApp
from storage.workspaces import decrypt_app_key

if TYPE_CHECKING:
    from bot.workspaces import Workspaces


class CliError(Exception):
    """An expected failure; its message is printed as is."""


Handler = Callable[[argparse.Namespace], int]


def sync(command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Handler:
    """A handler running `command`, turning every expected failure into a message."""

    def handler(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(command(args))
        except (CliError, StorageError, CryptoError, DatabaseURLError) as error:
            return fail(str(error))
        except DBAPIError as error:
            return fail(f"The database failed: {first_line(error.orig)}")
        except OSError as error:
            return fail(f"{error.strerror or error.__class__.__name__}: {error.filename or ''}")

    return handler


def fail(message: str) -> int:
    """Print `message` as the command's error; the exit code of an expected failure."""
    print(f"error: {message}", file=sys.stderr)
    return 1


def first_line(error: BaseException | None) -> str:
    """The first line of an error's message ("?" when it has none)."""
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "?"


def cli_settings() -> Settings:
    """The settings, or CliError naming every invalid one."""
    settings, invalid = read_settings()
    if invalid:
        problems = "; ".join(f"{item.name} {item.message}" for item in invalid)
        raise CliError(f"invalid settings: {problems}. `pushops check` says how to fix each.")
    return settings


async def with_database(
    settings: Settings, work: Callable[[Database], Awaitable[int]], *, migrated: bool = True
) -> int:
    """Run `work` on the settings' database (at this version's schema unless not `migrated`)."""
    url = settings.resolved_database_url
    database = Database.open(url)
    try:
        if migrated:
            await _require_head(database, url)
        return await work(database)
    except DBAPIError as error:
        raise CliError(
            f"Cannot use the database at {display_url(url)}: {first_line(error.orig)}"
        ) from None
    finally:
        await database.dispose()


async def _require_head(database: Database, url: str) -> None:
    current, head = await current_revision(database.engine), head_revision()
    if current != head:
        raise CliError(
            f"The database at {display_url(url)} is at revision {current or 'none'}, this "
            f"PushOps needs {head}: run `pushops db upgrade`."
        )


def new_keyring(settings: Settings) -> KeyRing:
    """The key ring; without PUSHOPS_SECRET_KEY, the data dir's key file, made if missing."""
    return load_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)


def existing_keyring(settings: Settings) -> KeyRing:
    """The key ring, never making a key file: a command that only reads needs none made."""
    keyring = read_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
    if keyring is None:
        raise CliError(
            f"No key: PUSHOPS_SECRET_KEY is not set and {settings.data_dir / KEY_FILE_NAME} "
            "does not exist. Set PUSHOPS_SECRET_KEY to the key the secrets were saved with."
        )
    return keyring


def audited(database: Database, keyring: KeyRing) -> Database:
    """`database` writing audit events under the keys derived from `keyring`."""
    return database.keyed(AuditKeys.from_keyring(keyring))


def operator(named: str | None = None) -> str:
    """The audit actor of a command: `cli:` and the name given (`--actor`) or the OS user's."""
    if named and named.strip():
        return f"cli:{named.strip()}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


def read_api_key(offered: SecretStr | None, *, what: str = "", variable: str = "") -> SecretStr:
    """A OneSignal REST API key: `offered` (from the environment), or typed at a prompt
    (never echoed). `what` says whose key in the messages, `variable` where else to put it."""
    if offered is not None and offered.get_secret_value():
        return offered
    if not sys.stdin.isatty():
        raise CliError(
            f"No REST API key{what}: set {variable or 'ONESIGNAL_API_KEY'}, or run in a "
            "terminal to be asked for it."
        )
    try:
        typed = getpass.getpass(f"OneSignal REST API key{what} (not echoed): ")
    except (EOFError, KeyboardInterrupt):
        raise CliError("No REST API key was entered.") from None
    if not typed.strip():
        raise CliError("No REST API key was entered.")
    return SecretStr(typed.strip())


async def verify_key(settings: Settings, app_id: str, api_key: SecretStr) -> None:
    """Ask OneSignal whether `api_key` opens app `app_id`; CliError saying why not."""
    from bot.credentials import CredentialError, verify_onesignal_app
    from bot.onesignal_clients import OneSignalClients

    clients = OneSignalClients(http=None, base_url=settings.onesignal_api_url)  # one call
    try:
        await verify_onesignal_app(clients, app_id=app_id, rest_api_key=api_key)
    except CredentialError as error:
        raise CliError(f"{error} (use --no-verify to save it anyway)") from None


def masked_key(app: OneSignalApp, keyring: KeyRing) -> str:
    """An app's key as `••••` and its last four characters, or why it cannot be read."""
    try:
        plain = decrypt_app_key(app, keyring=keyring).get_secret_value()
    except CryptoError as error:
        return f"UNREADABLE ({error})"
    return MASK + plain[-4:] if len(plain) >= MASKED_MIN else MASK


MASK = "••••"
"""How a masked key starts; the rest is its last four characters (of a key long enough)."""
MASKED_MIN = 16
"""The shortest key whose last four characters are shown."""


def print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Rows as columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


class _NoSendService:
    """A command line process sends nothing: the processes that do re-read apps and the policy
    within seconds of a change made here (their caches' time to live)."""

    def forget_apps(self, team_id: str) -> None:
        """Nothing to forget here."""

    def forget_policy(self, team_id: str) -> None:
        """Nothing to forget here."""


def workspace_service(settings: Settings, database: Database, keyring: KeyRing) -> Workspaces:
    """The workspace service `/push setup` uses, its changes audited under `keyring`."""
    from bot.onesignal_clients import OneSignalClients
    from bot.workspaces import Workspaces

    clients = OneSignalClients(http=None, base_url=settings.onesignal_api_url)
    return Workspaces(
        database=audited(database, keyring),
        keyring=keyring,
        clients=clients,
        sends=_NoSendService(),
    )
