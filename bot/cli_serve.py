"""`pushops serve` starts the bot; `pushops check` says what is wrong with its settings.

Bad or contradictory settings stop `serve` before anything starts, with one message that
names every problem and its fix, never a traceback. `check` prints the same and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import uvicorn
from pydantic import SecretStr, ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.app import build_app
from bot.listener import server_config
from bot.logs import configure_logging, redact, secrets_of, valid_level
from bot.server import build_server
from bot.services import build_services
from bot.settings import Settings
from bot.slack_clients import is_oauth_mode
from storage.crypto import CryptoError, KeyRing, load_keyring
from storage.db import Database, DatabaseURLError, async_url, display_url
from storage.migrations import upgrade

log = logging.getLogger(__name__)

EXIT_SETTINGS: Final = 2  # the settings are wrong: nothing was started
EXIT_STARTUP: Final = 1  # the settings look right but something refused at start

# Slack answers these when a token itself is wrong; anything else may be passing trouble.
_REFUSED_TOKEN_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
_PLACEHOLDERS: Final = re.compile(r"(?i)(changeme|change-me|your[-_ ]|<.*>|\.\.\.|^x+$|^todo$)")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings: which setting, what is wrong, how to fix it."""

    setting: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"- {self.setting}: {self.problem}\n  Fix: {self.fix}"


class StartupError(Exception):
    """Something refused at start (a token, the database, the port); the message says what."""


# --- the parser -------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Add `serve` and `check` to the `pushops` parser."""
    serve = subparsers.add_parser(
        "serve",
        help="run the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on HOST:PORT)",
    )
    serve.set_defaults(handler=run_serve)
    check = subparsers.add_parser(
        "check", help="check the settings; print each problem and its fix"
    )
    check.set_defaults(handler=run_check)


# --- check --------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    """`pushops check`: 0 and a summary when the settings are usable, 1 and the problems if not."""
    del args
    settings, problems = load_settings()
    if settings is not None:
        problems = find_problems(settings)
    if problems:
        print(format_problems(problems, heading="Found"), file=sys.stderr)
        return 1
    assert settings is not None
    print(f"Settings OK: {describe(settings)}.")
    return 0


def load_settings() -> tuple[Settings | None, list[Problem]]:
    """The settings from the environment and `.env`, or the problems that stop reading them."""
    try:
        return Settings(), []
    except ValidationError as e:
        return None, [_validation_problem(error) for error in e.errors()]


def _validation_problem(error: Any) -> Problem:
    # The error's "input" may be a secret: only its location and message are shown.
    location = error.get("loc") or ("?",)
    name = str(location[0]).upper()
    return Problem(name, f"{error.get('msg', 'is not valid')}.", f"Correct {name} or unset it.")


def find_problems(
    settings: Settings, checks: Iterable[Callable[[Settings], list[Problem]]] | None = None
) -> list[Problem]:
    """Every problem of `settings` (for `serve`, or the given `checks`), in fixing order."""
    problems: list[Problem] = []
    for check in _CHECKS if checks is None else checks:
        problems.extend(check(settings))
    return problems


def format_problems(problems: Iterable[Problem], *, heading: str) -> str:
    """One message naming each problem and its fix."""
    items = list(problems)
    noun = "problem" if len(items) == 1 else "problems"
    lines = [f"{heading} {len(items)} {noun} in the settings:"]
    lines.extend(str(p) for p in items)
    return "\n".join(lines)


def describe(settings: Settings) -> str:
    """The mode the settings select, in a few words."""
    workspaces = "multi-workspace (OAuth)" if is_oauth_mode(settings) else "single workspace"
    if settings.slack_app_token is not None:
        transport = f"Socket Mode (health and metrics on {settings.host}:{settings.port})"
    else:
        transport = f"HTTP on {settings.host}:{settings.port}"
    return f"{transport}, {workspaces}, database {display_url(settings.resolved_database_url)}"


def _set(value: SecretStr | str | None) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value().strip())
    return bool(value and value.strip())


def _text(value: SecretStr | str | None) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value().strip()
    return (value or "").strip()


def _check_slack_mode(s: Settings) -> list[Problem]:
    token, client_id, secret = (
        _set(s.slack_bot_token),
        _set(s.slack_client_id),
        _set(s.slack_client_secret),
    )
    if not token and not client_id and not secret:
        return [
            Problem(
                "SLACK_BOT_TOKEN",
                "no Slack credentials are set.",
                "set SLACK_BOT_TOKEN (one workspace), or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (many workspaces, OAuth).",
            )
        ]
    if client_id != secret:
        return [_half_oauth(has_token=token, has_client_id=client_id)]
    if token and client_id:
        return [
            Problem(
                "SLACK_BOT_TOKEN",
                "both a bot token and OAuth credentials are set; PushOps runs in one mode.",
                "unset SLACK_BOT_TOKEN for many workspaces, or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET for one.",
            )
        ]
    return []


def _half_oauth(*, has_token: bool, has_client_id: bool) -> Problem:
    """One of SLACK_CLIENT_ID / SLACK_CLIENT_SECRET without the other: name the missing one."""
    given, missing = "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"
    if not has_client_id:
        given, missing = missing, given
    where = "Basic Information > App Credentials"
    if not has_token:
        return Problem(
            missing,
            "OAuth mode needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET.",
            f"set {missing} ({where}).",
        )
    return Problem(
        missing,
        f"{given} is set without {missing}, beside SLACK_BOT_TOKEN.",
        f"for one workspace with the bot token, unset {given}; for many workspaces (OAuth), "
        f"set {missing} ({where}) and unset SLACK_BOT_TOKEN.",
    )


def _check_tokens(s: Settings) -> list[Problem]:
    problems = []
    if _set(s.slack_bot_token) and not _text(s.slack_bot_token).startswith("xoxb-"):
        problems.append(
            Problem(
                "SLACK_BOT_TOKEN",
                "is not a bot token (those start with xoxb-).",
                "copy the Bot User OAuth Token from OAuth & Permissions.",
            )
        )
    if _set(s.slack_app_token) and not _text(s.slack_app_token).startswith("xapp-"):
        problems.append(
            Problem(
                "SLACK_APP_TOKEN",
                "is not an app-level token (those start with xapp-).",
                "create one with the connections:write scope under Basic Information > "
                "App-Level Tokens, or unset SLACK_APP_TOKEN to serve over HTTP.",
            )
        )
    return problems


def _check_signing_secret(s: Settings) -> list[Problem]:
    if _set(s.slack_app_token) or _set(s.slack_signing_secret):
        return []
    return [
        Problem(
            "SLACK_SIGNING_SECRET",
            "is not set; over HTTP it proves that requests come from Slack.",
            "copy the Signing Secret from Basic Information > App Credentials, or set "
            "SLACK_APP_TOKEN to use Socket Mode instead.",
        )
    ]


def _check_onesignal(s: Settings) -> list[Problem]:
    app_id, key = _set(s.onesignal_app_id), _set(s.onesignal_api_key)
    if app_id and not key:
        return [
            Problem(
                "ONESIGNAL_API_KEY",
                "ONESIGNAL_APP_ID is set without its API key.",
                "set ONESIGNAL_API_KEY to the app's REST API key (OneSignal: Settings > "
                "Keys & IDs), or unset ONESIGNAL_APP_ID and add apps with /push setup.",
            )
        ]
    if key and not app_id:
        return [
            Problem(
                "ONESIGNAL_APP_ID",
                "ONESIGNAL_API_KEY is set without the app it belongs to.",
                "set ONESIGNAL_APP_ID (OneSignal: Settings > Keys & IDs).",
            )
        ]
    if app_id and not _is_uuid(_text(s.onesignal_app_id)):
        return [
            Problem(
                "ONESIGNAL_APP_ID",
                "is not a OneSignal app id (a UUID such as 1b2c3d4e-...).",
                "copy the App ID from OneSignal: Settings > Keys & IDs.",
            )
        ]
    return []


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _check_urls(s: Settings) -> list[Problem]:
    problems = []
    for name, value in (
        ("SLACK_API_URL", s.slack_api_url),
        ("ONESIGNAL_API_URL", s.onesignal_api_url),
    ):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                Problem(
                    name, "is not an http(s) URL.", f"set {name} to an https:// URL or unset it."
                )
            )
    return problems


def _check_placeholders(s: Settings) -> list[Problem]:
    secrets: dict[str, SecretStr | str | None] = {
        "SLACK_BOT_TOKEN": s.slack_bot_token,
        "SLACK_SIGNING_SECRET": s.slack_signing_secret,
        "SLACK_APP_TOKEN": s.slack_app_token,
        "SLACK_CLIENT_SECRET": s.slack_client_secret,
        "ONESIGNAL_API_KEY": s.onesignal_api_key,
    }
    return [
        Problem(name, "still holds a placeholder value.", f"set {name} to the real value.")
        for name, value in secrets.items()
        if _set(value) and _PLACEHOLDERS.search(_text(value))
    ]


def _check_storage(s: Settings) -> list[Problem]:
    problems = []
    try:
        async_url(s.resolved_database_url)
    except DatabaseURLError as e:
        problems.append(Problem("DATABASE_URL", str(e), "unset it to use the SQLite default."))
    if s.secret_key is not None:
        try:
            KeyRing.from_text(s.secret_key.get_secret_value())
        except CryptoError as e:
            problems.append(
                Problem("PUSHOPS_SECRET_KEY", str(e), "make a key with `pushops keys generate`.")
            )
    return problems


def _check_logging(s: Settings) -> list[Problem]:
    if valid_level(s.log_level):
        return []
    return [
        Problem(
            "PUSHOPS_LOG_LEVEL",
            "is not a log level.",
            "use DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        )
    ]


_CHECKS: Final[tuple[Callable[[Settings], list[Problem]], ...]] = (
    _check_slack_mode,
    _check_tokens,
    _check_signing_secret,
    _check_placeholders,
    _check_onesignal,
    _check_urls,
    _check_storage,
    _check_logging,
)


def _check_worker_slack(s: Settings) -> list[Problem]:
    """A worker may run without Slack; the Slack settings it is given must hold as serve's."""
    if not (_set(s.slack_bot_token) or _set(s.slack_client_id) or _set(s.slack_client_secret)):
        return []
    return [*_check_slack_mode(s), *_check_tokens(s)]


WORKER_CHECKS: Final[tuple[Callable[[Settings], list[Problem]], ...]] = (
    _check_worker_slack,
    _check_placeholders,
    _check_onesignal,
    _check_urls,
    _check_storage,
    _check_logging,
)
"""What `pushops worker` needs: what delivers sends, and Slack settings that hold if any is set
(without them it delivers but tells nobody, see bot.cli_worker)."""


# --- serve --------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    """`pushops serve`: check the settings, then serve until stopped."""
    del args
    settings, problems = load_settings()
    if settings is not None:
        problems = find_problems(settings)
    if problems:
        print(format_problems(problems, heading="PushOps cannot start:"), file=sys.stderr)
        return EXIT_SETTINGS
    assert settings is not None
    configure_logging(settings)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        asyncio.run(serve(settings))
    except StartupError as e:
        message = redact(str(e), secrets_of(settings))
        print(f"PushOps cannot start: {message}", file=sys.stderr)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        pass
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM is the normal way to stop: exit 0, not "killed by signal 15".

    uvicorn catches SIGTERM, stops gracefully, then re-raises it to the handler that was
    there before it; this one ends the process with status 0 (and a SIGTERM during the
    start-up work, before uvicorn listens, stops it too).
    """
    raise SystemExit(0)


async def serve(settings: Settings) -> None:
    """Check the tokens with Slack, migrate the database, then serve until a signal."""
    await preflight(settings)
    keyring = _keyring(settings)
    database = Database.open(settings.resolved_database_url)
    await migrate_at_start(settings, database)
    try:
        listener = bind(settings.host, settings.port)
    except StartupError:
        await database.dispose()
        raise
    services = build_services(settings, database=database, keyring=keyring)
    app = build_app(settings, services=services)
    socket_mode = settings.slack_app_token is not None
    config = server_config(build_server(app, services, socket_mode=socket_mode))
    await uvicorn.Server(config).serve(sockets=[listener])


async def migrate_at_start(settings: Settings, database: Database) -> None:
    """Bring the schema to this version's head, unless PUSHOPS_AUTO_MIGRATE=0."""
    if not settings.auto_migrate:
        return
    try:
        await upgrade(database.engine)
    except SQLAlchemyError as e:
        await database.dispose()
        where = display_url(settings.resolved_database_url)
        raise StartupError(
            f"the database at {where} could not be migrated ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Check DATABASE_URL and that the "
            "database is reachable."
        ) from e


def _keyring(settings: Settings) -> KeyRing:
    """The key ring from PUSHOPS_SECRET_KEY, or the key file in the data dir (made once)."""
    try:
        return load_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
    except (CryptoError, OSError) as e:
        raise StartupError(f"the secret key could not be loaded: {e}") from e


def bind(host: str, port: int) -> socket.socket:
    """The listening socket for HTTP; a clear StartupError when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as e:
        listener.close()
        raise StartupError(
            f"cannot listen on {host}:{port} ({e.strerror}). Set PORT (or HOST) to a free one."
        ) from e
    return listener


async def preflight(settings: Settings) -> None:
    """Ask Slack whether it accepts the tokens, so a wrong one stops the start clearly.

    Only a definite refusal stops the start; an unreachable Slack is left to the retries.
    """
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=10)
    checks: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if settings.slack_bot_token is not None and not is_oauth_mode(settings):
        bot_token = _text(settings.slack_bot_token)
        checks.append(("SLACK_BOT_TOKEN", lambda: client.auth_test(token=bot_token)))
    if settings.slack_app_token is not None:
        app_token = _text(settings.slack_app_token)
        checks.append(
            ("SLACK_APP_TOKEN", lambda: client.apps_connections_open(app_token=app_token))
        )
    for name, call in checks:
        try:
            await call()
        except SlackApiError as e:
            error = str(e.response.get("error", ""))
            if error in _REFUSED_TOKEN_ERRORS:
                raise StartupError(
                    f"Slack refused {name} ({error}). Copy the current token from the app's "
                    "settings page on api.slack.com and set it again."
                ) from None
            log.warning("could not check %s with Slack (%s); starting anyway", name, error)
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning(
                "could not reach Slack to check %s (%s); starting anyway", name, type(e).__name__
            )
