"""A process that delivers sends and drains the Slack outbox with a short lease, for crash
tests: `python -m tests.scenario.outbox_holder`.

It runs what `pushops worker` runs with Slack credentials (the send service, its scheduler,
the Slack notifier and the outbox drainer, on the settings of the environment), but its
scheduler sweeps twice a second and its drainer's lease is `LEASE` seconds, so that a test
can kill it while it holds messages and see another process take them over within seconds
rather than the production minute.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from typing import Final

from bot.logs import configure_logging
from bot.outbox import DrainPolicy
from bot.services import build_services
from bot.settings import Settings
from bot.slack_clients import clients_from_settings
from commands import notify
from storage.audit import AuditKeys
from storage.crypto import load_keyring
from storage.db import Database
from tests.scenario.processes import WorkerLike

LEASE: Final = 2.0


class OutboxHolder(WorkerLike):
    """This program as a process, started and watched as a `pushops worker` is."""

    module = __name__


async def hold() -> None:
    """Deliver and tell until SIGTERM (or until killed, which is the point)."""
    settings = Settings(_env_file=None)
    configure_logging(settings)
    keyring = load_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
    database = Database.open(
        settings.resolved_database_url, audit_keys=AuditKeys.from_keyring(keyring)
    )
    services = build_services(settings, database=database, keyring=keyring, sweep_interval=0.5)
    services.outbox_policy = DrainPolicy(lease=timedelta(seconds=LEASE), poll=0.2)
    clients = clients_from_settings(
        settings, database=database, keyring=keyring, session=services.slack_http.session()
    )
    assert clients is not None, "the holder needs Slack settings"
    notify.plug_in(services, clients)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await services.start()
    try:
        await stop.wait()
    finally:
        await services.aclose()


if __name__ == "__main__":
    asyncio.run(hold())
