"""`pushops worker`: the scheduler without Slack's door: delivers due sends, marks missed
ones, and tells Slack of each outcome as `serve` does.

It runs beside `pushops serve` (which has its own scheduler) or instead of a second one:
several may share a database, the claim in it keeps each send to one of them. It writes to
Slack with the same settings as `serve` (SLACK_BOT_TOKEN, or the OAuth installations in the
database); it needs no signing secret. Without any Slack credentials it still delivers,
but tells nobody: it says so in one warning at start. It stops cleanly on SIGTERM or
Ctrl-C: deliveries in flight finish first (bounded), and a send it could not finish is
taken over, with the same idempotency key, by the next scheduler.

It opens no port unless asked: with `--metrics-port PORT` it serves `/metrics`, `/healthz`
and `/readyz` on HOST:PORT, so that the sends it delivers are counted where Prometheus
scrapes (its counters live in its own process, not in `serve`'s).
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

from bot import collector
from bot.checks.online import check_in_background
from bot.checks.problems import format_problems
from bot.checks.settings import WORKER_CHECKS, settings_problems
from bot.cli_serve import (
    EXIT_SETTINGS,
    EXIT_STARTUP,
    StartupError,
    bind,
    migrate_at_start,
    preflight,
)
from bot.listener import server_config
from bot.logs import configure_logging, redact, secrets_of
from bot.server import build_operations_server
from bot.services import Services, build_services
from bot.settings import Settings
from bot.slack_clients import clients_from_settings, is_oauth_mode
from commands import audit, notify
from storage.audit import AuditKeys
from storage.crypto import CryptoError, load_keyring
from storage.db import Database

log = logging.getLogger(__name__)

NO_SLACK: Final = (
    "PushOps worker has no Slack credentials (SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and "
    "SLACK_CLIENT_SECRET): it delivers sends but tells nobody in Slack of their outcomes "
    "(no DM, no log-channel update; they are only logged here). Give it serve's Slack settings."
)


def add_parser(subparsers: Any) -> None:
    """Add `worker` to the `pushops` parser."""
    worker = subparsers.add_parser(
        "worker",
        help="deliver scheduled sends and tell Slack, without serving Slack's requests "
        "(several may share a database)",
    )
    worker.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on HOST:PORT (default: no port at all)",
    )
    worker.set_defaults(handler=run_worker)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535)")
    return int(text)


def run_worker(args: argparse.Namespace) -> int:
    """`pushops worker`: check the settings, then deliver until SIGTERM or Ctrl-C."""
    settings, problems = settings_problems(WORKER_CHECKS)
    if problems:
        print(format_problems(problems, heading="PushOps worker cannot start:"), file=sys.stderr)
        return EXIT_SETTINGS
    configure_logging(settings)
    try:
        asyncio.run(work(settings, metrics_port=args.metrics_port))
    except StartupError as e:
        print(
            f"PushOps worker cannot start: {redact(str(e), secrets_of(settings))}", file=sys.stderr
        )
        return EXIT_STARTUP
    except KeyboardInterrupt:
        pass
    return 0


async def work(settings: Settings, *, metrics_port: int | None = None) -> None:
    """Run the scheduler on the configured database until a stop signal (serving the
    operations endpoints on `metrics_port` meanwhile, if given)."""
    await preflight(settings)
    try:
        keyring = load_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
    except (CryptoError, OSError) as e:
        raise StartupError(f"the secret key could not be loaded: {e}") from e
    database = Database.open(
        settings.resolved_database_url, audit_keys=AuditKeys.from_keyring(keyring)
    )
    await migrate_at_start(settings, database)
    listener = None
    if metrics_port is not None:
        try:
            listener = bind(settings.host, metrics_port, fix="Give --metrics-port a free port.")
        except StartupError:
            await database.dispose()
            raise
    services = build_services(settings, database=database, keyring=keyring)
    _tell_slack(settings, services)
    check_in_background(settings, services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await services.start()
    collector.settle()
    log.info("PushOps worker running; SIGTERM stops it")
    try:
        if listener is None:
            await stop.wait()
        else:
            await _serve_operations(services, listener, stop)
    finally:
        log.info("PushOps worker stopping")
        await services.aclose()


def _tell_slack(settings: Settings, services: Services) -> None:
    """Plug in the Slack notifier and checkpoint sink `serve` has, or say once that nobody
    will be told."""
    clients = clients_from_settings(
        settings,
        database=services.database,
        keyring=services.keyring,
        session=services.slack_http.session(),
        count_error=services.metrics.slack_api_error,
    )
    if clients is None:
        log.warning(NO_SLACK)
        return
    notify.plug_in(services, clients)
    audit.plug_in(services, clients)
    how = "the workspaces' installations" if is_oauth_mode(settings) else "SLACK_BOT_TOKEN"
    log.info("PushOps worker tells Slack of outcomes with %s", how)


async def _serve_operations(
    services: Services, listener: socket.socket, stop: asyncio.Event
) -> None:
    """Serve health, readiness and metrics on `listener` until `stop` or a stop signal.

    uvicorn takes SIGTERM and SIGINT while it serves, ends, and raises the signal again
    for the handlers it found, so `stop` is set either way.
    """
    host, port = listener.getsockname()[:2]
    config = server_config(
        build_operations_server(services),
        lifespan="off",  # the services run already
        access_log=False,  # a line per scrape would drown the log
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    log.info("metrics, health and readiness on http://%s:%d", host, port)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopped.cancel()
    await serving
