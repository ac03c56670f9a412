"""`pushops serve` starts the bot; `pushops check` says what is wrong with its settings.

Bad or contradictory settings stop `serve` before anything starts, with one message that
names every problem and its fix, never a traceback. `check` prints the same, then tries the
database and, with `--online`, asks OneSignal and Slack about each key (bot.checks).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from typing import Any, Final

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from bot import collector
from bot.app import build_app
from bot.checks.database import check_database
from bot.checks.online import check_in_background, check_onesignal, check_slack
from bot.checks.problems import Problem, Report, format_problems, format_unchecked
from bot.checks.settings import SERVE_CHECKS, describe, settings_problems, settings_warnings
from bot.listener import server_config
from bot.logs import configure_logging, redact, secrets_of
from bot.server import build_server
from bot.services import build_services
from bot.settings import Settings
from storage.audit import AuditKeys
from storage.crypto import CryptoError, KeyRing, load_keyring
from storage.db import Database, DatabaseURLError, display_url
from storage.migrations import upgrade

log = logging.getLogger(__name__)

EXIT_SETTINGS: Final = 2  # serve: the settings are wrong, nothing was started
EXIT_STARTUP: Final = 1  # serve: the settings look right but something refused at start
EXIT_PROBLEMS: Final = 1  # check: at least one problem, each printed with its fix
EXIT_UNCHECKED: Final = 3  # check: no problem found, but something could not be asked


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
        "check",
        help="check the settings and the database; print each problem and its fix",
        description="Check the settings and the database, and print each problem with its fix. "
        "Exit codes: 0 nothing wrong, 1 problems found, 3 nothing wrong found but something "
        "could not be asked.",
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also ask OneSignal and Slack whether they accept each key and token",
    )
    check.set_defaults(handler=run_check)


# --- check --------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    """`pushops check [--online]`: print what is fine and each problem; see the exit codes."""
    settings, problems = settings_problems(SERVE_CHECKS)
    report = Report(problems=list(problems))
    report.extend(asyncio.run(check_beyond_settings(settings, problems, online=args.online)))
    if not report.problems:
        print(f"Settings OK: {describe(settings)}.")
    for line in report.fine:
        print(line)
    for warning in settings_warnings(settings):
        print(f"Warning: {warning}")
    if report.problems:
        print(format_problems(report.problems, heading="Found"), file=sys.stderr)
    if report.unchecked:
        print(format_unchecked(report.unchecked), file=sys.stderr)
    if report.problems:
        return EXIT_PROBLEMS
    return EXIT_UNCHECKED if report.unchecked else 0


async def check_beyond_settings(
    settings: Settings, problems: list[Problem], *, online: bool
) -> Report:
    """The database, and with `online` each key; what has a problem already is left out."""
    skip = {p.setting for p in problems}
    report = Report()
    apps = []
    if not {"DATABASE_URL", "PUSHOPS_DATA_DIR"} & skip:
        found = await check_database(settings, keys="PUSHOPS_SECRET_KEY" not in skip)
        report.extend(found.report)
        apps = found.apps
    if online:
        report.extend(await check_slack(settings, skip=skip))
        report.extend(await check_onesignal(settings, apps, skip=skip))
    return report


# --- serve --------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    """`pushops serve`: check the settings, then serve until stopped."""
    del args
    settings, problems = settings_problems(SERVE_CHECKS)
    if problems:
        print(format_problems(problems, heading="PushOps cannot start:"), file=sys.stderr)
        return EXIT_SETTINGS
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
    """Check the tokens with Slack, migrate the database, then serve until a signal.

    The OneSignal keys are asked about once serving, in the background (bot.checks.online).
    """
    await preflight(settings)
    keyring = _keyring(settings)
    database = open_database(settings, audit_keys=AuditKeys.from_keyring(keyring))
    await migrate_at_start(settings, database)
    try:
        listener = bind(settings.host, settings.port)
    except StartupError:
        await database.dispose()
        raise
    services = build_services(settings, database=database, keyring=keyring)
    app = build_app(settings, services=services)
    check_in_background(settings, services)  # after build_app's hooks: the default app is saved
    socket_mode = settings.slack_app_token is not None
    # The garbage collector is set for a long-running server once its services started.
    asgi = build_server(app, services, socket_mode=socket_mode, started=collector.settle)
    config = server_config(asgi)
    # Listening before uvicorn's start-up (the services' start hooks) lets a request that
    # comes meanwhile wait in the backlog, and makes the address logged true at once.
    listener.listen(config.backlog)
    log_address(listener, socket_mode=socket_mode)
    await uvicorn.Server(config).serve(sockets=[listener])


def open_database(settings: Settings, *, audit_keys: AuditKeys | None = None) -> Database:
    """The configured database; a StartupError naming the problem when it cannot be opened.

    With `audit_keys` (what `serve` and `worker` need) it writes audit events.
    """
    try:
        return Database.open(settings.resolved_database_url, audit_keys=audit_keys)
    except DatabaseURLError as e:
        raise StartupError(str(e)) from None
    except OSError as e:  # the SQLite file's folder could not be made
        raise StartupError(
            f"the database at {display_url(settings.resolved_database_url)} cannot be opened "
            f"({e.strerror or type(e).__name__}: {e.filename}). Set DATABASE_URL (or "
            "PUSHOPS_DATA_DIR) to a place the user running PushOps may write to."
        ) from None


def log_address(listener: socket.socket, *, socket_mode: bool) -> None:
    """Say where the HTTP server listens (the real port, when PORT=0 let the system pick)."""
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if socket_mode:
        log.info(
            "listening on http://%s:%d for health and metrics; Slack over Socket Mode", shown, port
        )
    else:
        log.info(
            "listening on http://%s:%d; Slack sends its requests to /slack/events", shown, port
        )


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


def bind(host: str, port: int, *, fix: str = "Set PORT (or HOST) to a free one.") -> socket.socket:
    """The listening socket for HTTP; a clear StartupError (ending in `fix`) when the port
    is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as e:
        listener.close()
        raise StartupError(f"cannot listen on {host}:{port} ({e.strerror}). {fix}") from e
    return listener


async def preflight(settings: Settings) -> None:
    """Ask Slack whether it accepts the tokens, so a wrong one stops the start clearly.

    Only a definite refusal stops the start; an unreachable Slack is left to the retries.
    """
    report = await check_slack(settings)
    if report.problems:
        raise StartupError(str(report.problems[0]))
    for unchecked in report.unchecked:
        log.warning("could not check %s: %s Starting anyway.", unchecked.setting, unchecked.problem)
