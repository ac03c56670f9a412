"""Real processes: `pushops worker` killed with SIGKILL before its sends are due, then restarted.

Within the grace every send is delivered exactly once; after it, every send is `missed` and
none is delivered. The database and the fake OneSignal outlive the processes, as they would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import OneSignalApp, Send, SendState, utcnow
from tests.bot.deliverykit import insert_due, seeded_app
from tests.scenario.processes import Worker, environment

pytestmark = pytest.mark.slow

DUE_IN = (3.0, 3.5, 4.0, 4.5, 5.0)  # seconds after the sends are stored


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
    env = environment(database, secret_key, fake_onesignal, tmp_path, grace=60)
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
    env = environment(database, secret_key, fake_onesignal, tmp_path, grace=grace)
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
