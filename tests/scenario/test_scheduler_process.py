"""Real processes: `pushops worker` killed with SIGKILL before its sends are due, then restarted.

Within the grace every send is delivered exactly once; after it, every send is `missed` and
none is delivered. The database and the fake OneSignal outlive the processes, as they would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import OneSignalApp, Send, SendState, utcnow
from tests.bot.deliverykit import insert_due, seeded_app
from tests.fakes.onesignal import FakeOneSignal

pytestmark = pytest.mark.slow

DUE_IN = (3.0, 3.5, 4.0, 4.5, 5.0)  # seconds after the sends are stored
STARTED = re.compile(r"scheduler started \(worker [^)]*\): (\d+) timers armed")


def _environment(
    database: Database, secret_key: str, fake: FakeOneSignal, tmp: Path, grace: float
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_", "DATABASE_URL"))
    }
    url = database.engine.url
    env.update(
        DATABASE_URL=url.set(drivername=url.get_backend_name()).render_as_string(
            hide_password=False
        ),
        PUSHOPS_SECRET_KEY=secret_key,
        PUSHOPS_DATA_DIR=str(tmp / "data"),
        PUSHOPS_MISFIRE_GRACE=str(grace),
        ONESIGNAL_API_URL=fake.url,
    )
    return env


class Worker:
    """One `pushops worker` process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("a") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "worker", env=self.env, stdout=out, stderr=out
            )

    async def armed(self, seconds: float = 20.0) -> int:
        """Wait until the scheduler reports it started; how many timers it armed."""
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = STARTED.findall(self.log.read_text())
            if found:
                return int(found[-1])
            if self.process.returncode is not None:
                raise AssertionError(f"worker exited early:\n{self.log.read_text()}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"worker did not start:\n{self.log.read_text()}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            return await self.process.wait()


async def _store_sends(database: Database, app: OneSignalApp) -> tuple[list[uuid.UUID], float]:
    """Sends due 3-5 s from now; their ids, and the monotonic time the last is due."""
    now = utcnow()
    ids: list[uuid.UUID] = []
    for index, delay in enumerate(DUE_IN):
        ids += await insert_due(
            database, app, 1, now + timedelta(seconds=delay), prefix=f"K{index}"
        )
    return ids, time.monotonic() + max(DUE_IN)


async def _states(database: Database, ids: list[uuid.UUID]) -> Counter[SendState]:
    async with database.sessions() as session:
        return Counter(await session.scalars(sa.select(Send.state).where(Send.id.in_(ids))))


async def _wait_states(
    database: Database, ids: list[uuid.UUID], state: SendState, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while (await _states(database, ids))[state] < len(ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"states: {dict(await _states(database, ids))}")
        await asyncio.sleep(0.1)


async def _killed_before_due(worker: Worker, database: Database, ids: list[uuid.UUID]) -> None:
    """Start the worker, let it arm its timers, and SIGKILL it before any send is due."""
    await worker.start()
    armed = await worker.armed()
    await worker.kill()
    assert armed == len(ids)
    # The premise of the test: nothing was due, so nothing was claimed or sent.
    assert (await _states(database, ids))[SendState.SCHEDULED] == len(ids)


async def test_restarted_within_the_grace_every_send_goes_out_once(
    database, storage_factory, secret_key, fake_onesignal, tmp_path
):
    app = await seeded_app(storage_factory, fake_onesignal)
    env = _environment(database, secret_key, fake_onesignal, tmp_path, grace=60)
    ids, last_due = await _store_sends(database, app)
    log = tmp_path / "worker.log"

    await _killed_before_due(Worker(env, log), database, ids)
    await asyncio.sleep(max(0.0, last_due - time.monotonic()) + 0.3)  # all due now
    restarted = Worker(env, log)
    await restarted.start()
    await _wait_states(database, ids, SendState.SENT, seconds=20)
    code = await restarted.terminate()

    keys = Counter(r.json["idempotency_key"] for r in fake_onesignal.requests_to("POST", "/n"))
    assert keys == Counter({str(send_id): 1 for send_id in ids})
    assert len(fake_onesignal.notifications) == len(ids)
    assert code == 0
    output = log.read_text()
    assert "Traceback" not in output
    assert fake_onesignal.app.rest_api_key not in output and secret_key not in output


async def test_restarted_after_the_grace_every_send_is_missed_and_none_sent(
    database, storage_factory, secret_key, fake_onesignal, tmp_path
):
    grace = 1.5
    app = await seeded_app(storage_factory, fake_onesignal)
    env = _environment(database, secret_key, fake_onesignal, tmp_path, grace=grace)
    ids, last_due = await _store_sends(database, app)
    log = tmp_path / "worker.log"

    await _killed_before_due(Worker(env, log), database, ids)
    await asyncio.sleep(max(0.0, last_due - time.monotonic()) + grace + 0.5)
    restarted = Worker(env, log)
    await restarted.start()
    await _wait_states(database, ids, SendState.MISSED, seconds=20)
    code = await restarted.terminate()

    assert fake_onesignal.requests_to("POST", "/notifications") == []
    assert code == 0
    output = log.read_text()
    assert output.count("missed: due") == len(ids)
    assert "Traceback" not in output


async def test_a_worker_with_unusable_settings_says_what_to_fix(run_cli):
    result = await run_cli("worker", env={"DATABASE_URL": "mysql://db/pushops"})

    assert result.code == 2
    assert result.stderr.startswith("PushOps worker cannot start:")
    assert "DATABASE_URL" in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
