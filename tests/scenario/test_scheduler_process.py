"""Real processes: `pushops worker` killed with SIGKILL before its sends are due, then restarted;
and a process killed while OneSignal's answer to its send was on the way.

Within the grace every send is delivered exactly once; after it, every send is `missed` and
none is delivered. A send OneSignal took before its process died ends `sent`, however late
it is found. The database and the fake OneSignal outlive the processes, as they would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import OneSignalApp, Send, SendState, utcnow
from tests.bot.deliverykit import insert_due, seeded_app
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.holder import LEASE as HOLDER_LEASE
from tests.scenario.holder import Holder
from tests.scenario.processes import Worker, environment
from tests.scenario.sendkit import ALICE, creates, dm_to

pytestmark = pytest.mark.slow

STORED_DUE_IN = 120.0  # far beyond a worker's start, however busy the machine
DUE_IN = (0.5, 1.0, 1.5, 2.0, 2.5)  # after the kill: seconds from the restart's start


async def _store_sends(database: Database, app: OneSignalApp) -> list[uuid.UUID]:
    """Five sends due in `STORED_DUE_IN` s: a worker arms their timers whenever it starts."""
    due = utcnow() + timedelta(seconds=STORED_DUE_IN)
    ids: list[uuid.UUID] = []
    for index in range(len(DUE_IN)):
        ids += await insert_due(database, app, 1, due, prefix=f"K{index}")
    return ids


async def _move_due(database: Database, ids: list[uuid.UUID], offsets: Sequence[float]) -> None:
    """While no worker runs, bring the sends' due times to now plus `offsets` (seconds).

    A worker was killed with their timers armed; what matters is what the next one does with
    them once they are (nearly) due, not how long a busy machine took to start the first.
    """
    now = utcnow()
    async with database.sessions.begin() as session:
        for send_id, offset in zip(ids, offsets, strict=True):
            due = now + timedelta(seconds=offset)
            await session.execute(sa.update(Send).where(Send.id == send_id).values(due_at=due))


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
    ids = await _store_sends(database, app)
    log = tmp_path / "worker.log"

    await _killed_before_due(Worker(env, log), database, ids)
    await _move_due(database, ids, DUE_IN)
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
    ids = await _store_sends(database, app)
    log = tmp_path / "worker.log"

    await _killed_before_due(Worker(env, log), database, ids)
    await _move_due(database, ids, [-(grace + 1.0 + d) for d in DUE_IN])  # past the grace
    restarted = Worker(env, log)
    await restarted.start()
    await _wait_states(database, ids, SendState.MISSED, seconds=20)
    code = await restarted.terminate()

    assert fake_onesignal.requests_to("POST", "/notifications") == []
    assert code == 0
    output = log.read_text()
    assert output.count(" state=missed ") == len(ids)  # one send.outcome line each
    assert "Traceback" not in output


async def test_a_send_onesignal_took_from_a_process_killed_before_the_answer_ends_sent(
    database, storage_factory, secret_key, fake_slack, fake_onesignal, tmp_path
):
    grace = 1.0  # shorter than the holder's lease: the send is late once its claim ends
    assert grace < HOLDER_LEASE
    app = await storage_factory.app(
        DEFAULT_TEAM_ID,
        "default",
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret(fake_onesignal.app.rest_api_key),
        make_default=True,
    )
    env = environment(database, secret_key, fake_onesignal, tmp_path, grace=grace, slack=fake_slack)
    answers = fake_onesignal.faults.hold_answers(method="POST", path="/notifications")
    holder = Holder(env, tmp_path / "holder.log")
    await holder.start()
    await holder.armed()
    (send_id,) = await insert_due(database, app, 1, utcnow() + timedelta(seconds=1))

    # OneSignal creates the notification; its answer never reaches the holder, killed meanwhile.
    assert await asyncio.to_thread(answers.arrived.wait, 20)
    await holder.kill()
    (created,) = fake_onesignal.notifications.values()
    assert (await _states(database, [send_id]))[SendState.SENDING] == 1
    worker = Worker(env, tmp_path / "worker.log")
    await worker.start()
    try:
        await _wait_states(database, [send_id], SendState.SENT, seconds=30)
        told = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE), timeout=10)
    finally:
        code = await worker.terminate()

    async with database.sessions() as session:
        row = await session.get(Send, send_id)
    assert row is not None and row.notification_id == created["id"]
    assert row.last_error is None and row.attempts == 2
    # Found by its name, not created again: a replay this late would have sent it late.
    assert [r.json["idempotency_key"] for r in creates(fake_onesignal)] == [str(send_id)]
    assert f"`{row.short_id}`" in told.args["text"] and "was sent" in told.args["text"]
    assert created["id"] in told.args["text"]
    assert fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE)) == [told]  # once
    assert code == 0
    assert "missed" not in worker.output() and "Traceback" not in worker.output()


async def test_a_worker_with_unusable_settings_says_what_to_fix(run_cli):
    result = await run_cli("worker", env={"DATABASE_URL": "mysql://db/pushops"})

    assert result.code == 2
    assert result.stderr.startswith("PushOps worker cannot start:")
    assert "DATABASE_URL" in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
