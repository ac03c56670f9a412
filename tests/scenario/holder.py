"""A delivering process with a short lease, for crash tests: `python -m tests.scenario.holder`.

It runs what `pushops worker` runs (the send service and its scheduler, on the settings of
the environment), but with a `LEASE`-second lease and a half-second sweep, so that a test can
kill it while it holds a send and see another process take the send over within seconds
rather than the production minute. It logs like the worker ("scheduler started ...").
"""

from __future__ import annotations

import asyncio
import signal
from typing import Final

from bot.delivery import DeliveryPolicy
from bot.logs import configure_logging
from bot.services import build_services
from bot.settings import Settings
from storage.audit import AuditKeys
from storage.crypto import load_keyring
from storage.db import Database
from tests.scenario.processes import WorkerLike

LEASE: Final = 2.0


class Holder(WorkerLike):
    """This program as a process, started and watched as a `pushops worker` is."""

    module = __name__


async def hold() -> None:
    """Deliver until SIGTERM (or until killed, which is the point)."""
    settings = Settings(_env_file=None)
    configure_logging(settings)
    keyring = load_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
    database = Database.open(
        settings.resolved_database_url, audit_keys=AuditKeys.from_keyring(keyring)
    )
    services = build_services(
        settings,
        database=database,
        keyring=keyring,
        policy=DeliveryPolicy(lease=LEASE),
        sweep_interval=0.5,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await services.start()
    try:
        await stop.wait()
    finally:
        await services.aclose()


if __name__ == "__main__":
    asyncio.run(hold())
