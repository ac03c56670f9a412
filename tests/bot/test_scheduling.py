"""The scheduler against the fake OneSignal and a real database: timers derived from the table,
crashes, several schedulers, misfires, expiries, retries across attempts, and shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.delivery import Deliverer, notification_name
from bot.onesignal import OneSignalClient, make_http_client
from bot.onesignal_clients import OneSignalClients
from bot.scheduling import SWEEP_JOB, Scheduler
from bot.settings import Settings
from bot.timers import DEFAULT_HORIZON, Timers
from storage.audit import AuditKeys
from storage.crypto import KeyRing
from storage.db import Database, is_sqlite
from storage.models import AuditEvent, Send, SendState, utcnow
from tests.bot.deliverykit import (
    FAST,
    SEGMENT,
    Kit,
    audit_chain_ok,
    insert_due,
    kit,
    seeded_app,
    settings_for,
)


@pytest.fixture
async def app(storage_factory, fake_onesignal):
    return await seeded_app(storage_factory, fake_onesignal)


@pytest.fixture
async def env(database, keyring, fake_onesignal, app):
    async with kit(database, keyring, fake_onesignal, app) as ready:
        yield ready


async def _count(database: Database, state: SendState) -> int:
    async with database.sessions() as session:
        return int(
            await session.scalar(
                sa.select(sa.func.count()).select_from(Send).where(Send.state == state)
            )
        )


async def _wait_count(database: Database, state: SendState, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await _count(database, state) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{await _count(database, state)} sends {state}, not {count}")
        await asyncio.sleep(0.1)


async def test_a_send_due_in_2s_goes_out_once_and_a_cancelled_one_never(env):
    await env.start()
    started = time.monotonic()
    kept = await env.create("kept", due_in=2)
    dropped = await env.create("dropped", due_in=2)
    await env.deliverer.dispatch(kept)
    await env.deliverer.dispatch(dropped)
    assert env.scheduler.armed == 2

    outcome = await env.recall.cancel(team_id=env.app.team_id, ref=dropped.short_id, actor="U0B")
    await env.wait_state(kept, SendState.SENT)
    await asyncio.sleep(1.0)  # two more sweeps: the cancelled one stays cancelled

    assert outcome.kind == "stopped_before_sending" and env.scheduler.armed == 0
    (request,) = env.posted()
    assert request.json["idempotency_key"] == str(kept.id)
    assert request.time - started >= 1.9  # not before it was due
    assert (await env.row(dropped)).state == SendState.CANCELLED
    assert len(env.notifier.of("send_delivered")) == 1


async def test_sends_due_within_the_same_10_ms_share_one_timer_and_none_goes_early(
    env, database, app
):
    due = utcnow() + timedelta(seconds=1.5)
    ids = await insert_due(database, app, 30, due)
    later = await insert_due(database, app, 1, due + timedelta(seconds=1), prefix="L")

    await env.start()
    jobs = [job.id for job in env.scheduler.timers._aps.get_jobs() if job.id != SWEEP_JOB]
    await _wait_count(database, SendState.SENT, 31, seconds=15)

    assert env.scheduler.armed == 0
    assert len(jobs) == 2  # one per 10 ms slot with sends due in it: 31 sends, 2 slots
    offset = time.monotonic() - time.time()  # the fake stamps requests with monotonic time
    due_at = {str(send_id): due for send_id in ids} | {str(later[0]): due + timedelta(seconds=1)}
    for request in env.posted():
        sent_at = request.time - offset
        assert sent_at >= due_at[request.json["idempotency_key"]].timestamp() - 0.001


async def test_at_start_every_send_due_within_the_horizon_gets_a_timer_and_no_later_one(env):
    sends = [await env.create(due_in=120 + i) for i in range(3)]
    later = [await env.create(due_in=DEFAULT_HORIZON.total_seconds() + 600 * i) for i in (1, 2)]

    await env.start()

    assert env.scheduler.armed == 3
    assert [env.scheduler.timers.due_at(send.id) for send in later] == [None, None]
    await env.recall.cancel(team_id=env.app.team_id, ref=sends[0].short_id, actor="U0B")
    assert env.scheduler.armed == 2


async def test_a_send_due_beyond_the_horizon_goes_out_on_time_and_once_across_a_restart(
    database, keyring, fake_onesignal, app
):
    # Timers 2 s ahead, a sweep every 0.5 s: a send due in 4 s has no timer when it is made,
    # nor after the restart; the sweep that finds it within 2 s of its time arms it.
    horizon = timedelta(seconds=2)
    async with kit(database, keyring, fake_onesignal, app, horizon=horizon) as first:
        await first.start()
        send = await first.create("far", due_in=4)
        await first.deliverer.dispatch(send)
        assert first.scheduler.armed == 0
        await first.scheduler.stop()
    assert send.due_at is not None

    async with kit(database, keyring, fake_onesignal, app, horizon=horizon) as second:
        await second.start()
        assert second.scheduler.armed == 0
        armed_at = await _when_armed(second, send.id)
        sent = await second.wait_state(send, SendState.SENT, seconds=15)
        await asyncio.sleep(1.0)  # two more sweeps: nothing more goes out

    assert send.due_at - horizon <= armed_at < send.due_at
    (request,) = second.posted()
    assert request.json["idempotency_key"] == str(send.id)
    offset = time.monotonic() - time.time()  # the fake stamps requests with monotonic time
    assert request.time - offset >= send.due_at.timestamp() - 0.001  # not early
    assert sent.notification_id in fake_onesignal.notifications
    assert len(fake_onesignal.notifications) == 1


async def _when_armed(env: Kit, send_id: uuid.UUID) -> datetime:
    """Poll until the send has a timer; when it got it."""
    deadline = time.monotonic() + 10
    while env.scheduler.timers.due_at(send_id) is None:
        assert time.monotonic() < deadline, "the send never got a timer"
        await asyncio.sleep(0.01)
    return utcnow()


async def test_a_horizon_shorter_than_two_sweeps_is_refused(database, keyring, fake_onesignal):
    http = make_http_client()
    deliverer = Deliverer(
        database=database,
        keyring=keyring,
        clients=OneSignalClients(http, fake_onesignal.url),
        settings=settings_for(fake_onesignal),
        timers=Timers(horizon=timedelta(seconds=30)),
    )
    try:
        with pytest.raises(ValueError, match="at least two sweeps"):
            Scheduler(
                database=database, deliverer=deliverer, settings=deliverer.settings,
                sweep_interval=20,
            )  # fmt: skip
    finally:
        await http.aclose()


async def test_a_send_another_replica_created_is_found_by_the_sweep(env, database, app):
    await env.start()

    (due_soon,) = await insert_due(database, app, 1, utcnow() + timedelta(seconds=1))
    (due_already,) = await insert_due(database, app, 1, utcnow() - timedelta(seconds=5), prefix="P")

    await env.wait_state(due_soon, SendState.SENT)
    await env.wait_state(due_already, SendState.SENT)
    assert sorted(r.json["idempotency_key"] for r in env.posted()) == sorted(
        [str(due_soon), str(due_already)]
    )


async def test_a_send_later_than_the_grace_is_missed_and_not_sent(env, database, app):
    (late,) = await insert_due(database, app, 1, utcnow() - timedelta(hours=1))

    await env.start()

    row = await env.row(late)
    assert row.state == SendState.MISSED
    (notice,) = await env.notifier.wait_for("send_missed")
    assert notice.send.id == late
    assert env.posted() == []


async def test_approvals_past_their_ttl_expire(database, keyring, fake_onesignal, app):
    async with kit(database, keyring, fake_onesignal, app, approval_ttl=0.5) as env:
        pending = await env.create(approvals=1)
        await asyncio.sleep(0.6)

        await env.start()

        assert (await env.row(pending)).state == SendState.EXPIRED
        (notice,) = await env.notifier.wait_for("approval_expired")
        assert notice.send.id == pending.id


async def test_a_send_stuck_in_sending_after_a_crash_is_taken_over(env, storage_factory, app):
    stuck = await storage_factory.send(
        app,
        state=SendState.SENDING,
        content={"message": "stuck"},
        audience={"segments": [SEGMENT]},
        claimed_by="dead-worker",
        attempts=1,
        lease_until=utcnow() - timedelta(seconds=1),
    )

    await env.start()

    row = await env.wait_state(stuck, SendState.SENT)
    (request,) = env.posted()
    assert request.json["idempotency_key"] == str(stuck.id)
    assert row.attempts == 2 and row.claimed_by == env.deliverer.worker_id
    assert "send.reclaimed" in await env.actions(stuck)


async def _stuck(storage_factory: Any, app: Any, message: str, **columns: Any) -> Send:
    """A send claimed 3 h ago by a worker that died, its lease long over (columns may add to it)."""
    values: dict[str, Any] = {
        "due_at": utcnow() - timedelta(hours=3),
        "state": SendState.SENDING,
        "content": {"message": message},
        "audience": {"segments": [SEGMENT]},
        "claimed_by": "dead-worker",
        "attempts": 1,
        "lease_until": utcnow() - timedelta(hours=2),
    }
    return await storage_factory.send(app, **(values | columns))


async def test_a_claim_cut_off_and_found_later_than_the_grace_is_missed_not_sent(
    env, storage_factory, app
):
    stuck = await _stuck(storage_factory, app, "stuck for hours")

    await env.start()

    row = await env.wait_state(stuck, SendState.MISSED)
    (notice,) = await env.notifier.wait_for("send_missed")
    assert notice.send.id == stuck.id
    await asyncio.sleep(1.0)  # two more sweeps
    assert env.posted() == []
    assert (await env.row(stuck)).state == SendState.MISSED and row.lease_until is None
    assert (await env.actions(stuck))[-1] == "send.missed"


async def test_a_claim_cut_off_after_onesignal_took_it_and_found_late_is_sent_not_missed(
    env, storage_factory, app
):
    stuck = await _stuck(storage_factory, app, "went out")
    # What the dead worker's call made OneSignal create, before it could write the id down.
    created = await _created_by_a_dead_worker(env, stuck)

    await env.start()

    row = await env.wait_state(stuck, SendState.SENT)
    (notice,) = await env.notifier.wait_for("send_delivered")
    assert notice.send.id == stuck.id
    assert row.notification_id == created and row.last_error is None
    assert len(env.posted()) == 1  # only the dead worker's: asked by name, never sent late
    assert (await env.actions(stuck))[-2:] == ["send.reclaimed", "send.sent"]


def _rate_limited(attempt: int) -> list[dict[str, Any]]:
    """The batch record of a segment send whose attempt `attempt` OneSignal refused with 429."""
    return [
        {"index": 0, "external_ids": 0, "notification_id": None, "status": 429, "unknown": False,
         "error": "OneSignal's rate limit was reached (HTTP 429).", "attempt": attempt}
    ]  # fmt: skip


async def test_a_send_whose_retry_was_cut_off_is_asked_about_and_found_sent(
    env, storage_factory, app
):
    # Attempt 1 was refused (429); attempt 2 was claimed, called OneSignal, and its worker died.
    stuck = await _stuck(
        storage_factory,
        app,
        "second try went out",
        attempts=2,
        batches=_rate_limited(1),
        last_error="OneSignal's rate limit was reached (HTTP 429).",
    )
    created = await _created_by_a_dead_worker(env, stuck)

    await env.start()

    row = await env.wait_state(stuck, SendState.SENT)
    assert row.notification_id == created and row.last_error is None
    assert len(env.posted()) == 1  # the dead worker's only


async def test_a_send_refused_then_found_late_ends_failed_without_asking(env, storage_factory, app):
    # Attempt 1 was refused (429), and nothing claimed it since: nothing of it can be out.
    stuck = await _stuck(
        storage_factory,
        app,
        "never went out",
        batches=_rate_limited(1),
        last_error="OneSignal's rate limit was reached (HTTP 429).",
    )

    await env.start()

    row = await env.wait_state(stuck, SendState.FAILED)
    assert row.last_error == (
        "OneSignal's rate limit was reached (HTTP 429). "
        "Not sent: still not delivered 10 min after its due time."
    )
    assert env.fake.requests == []  # neither created late nor looked up: it cannot be out


async def _created_by_a_dead_worker(env: Any, send: Send) -> str:
    async with OneSignalClient(
        rest_api_key=env.fake.app.rest_api_key, base_url=env.fake.url
    ) as client:
        created = await client.create_notification(
            {
                "app_id": env.fake.app.id,
                "contents": {"en": send.content["message"]},
                "included_segments": [SEGMENT],
                "name": notification_name(send),
                "idempotency_key": str(send.id),
            }
        )
    return created.id


async def test_a_send_claimed_as_it_is_stored_keeps_its_claim_while_it_waits_for_a_place(
    env, database, keyring, fake_onesignal, app
):
    async with kit(database, keyring, fake_onesignal, app, worker_id="replica-2") as other:
        await asyncio.gather(env.start(), other.start())
        send = await env.create(claim=True)
        await asyncio.sleep(FAST.lease * 2)  # still waiting for a place, past its first lease

        await env.deliverer.dispatch(send)

    assert [r.json["idempotency_key"] for r in env.posted()] == [str(send.id)]
    row = await env.row(send)
    assert row.state == SendState.SENT and row.claimed_by == env.deliverer.worker_id
    assert await env.actions(send) == ["send.created", "send.sending", "send.sent"]


async def test_a_claim_let_go_after_waiting_too_long_is_not_delivered_twice(
    database, keyring, fake_onesignal, app
):
    policy = replace(FAST, max_queued=0.5)
    async with (
        kit(database, keyring, fake_onesignal, app, policy=policy) as slow,
        kit(database, keyring, fake_onesignal, app, worker_id="replica-2") as other,
    ):
        await asyncio.gather(slow.start(), other.start())
        send = await slow.create(claim=True)
        # Let go after 0.5 s, then taken over once its lease ended (by either scheduler).
        taken = await other.wait_state(send, SendState.SENT)

        assert await slow.deliverer.deliver(send) is None  # its stored claim is gone: no 2nd call

    assert [r.json["idempotency_key"] for r in other.posted()] == [str(send.id)]
    assert taken.attempts == 2 and "send.reclaimed" in await other.actions(send)


async def test_a_partly_sent_claim_found_later_than_the_grace_sends_nothing_more(
    env, storage_factory, app
):
    first_id = "a3f1c2d4-0000-4000-8000-000000000001"
    stuck = await _stuck(
        storage_factory,
        app,
        "half out",
        audience={"external_ids": ["u-1", "u-2"]},
        notification_id=first_id,
        batches=[
            {"index": 0, "external_ids": 2000, "notification_id": first_id, "error": None},
            {"index": 1, "external_ids": 500, "notification_id": None, "error": "HTTP 503"},
        ],
    )

    await env.start()

    row = await env.wait_state(stuck, SendState.SENT)
    (notice,) = await env.notifier.wait_for("send_failed")
    assert env.posted() == []
    assert row.notification_id == first_id
    assert row.last_error == notice.reason
    assert notice.reason.startswith("Partly delivered: 1 of 2 batches (500 users) were not sent")
    assert f"batch 1 ({first_id})" in notice.reason


async def test_passing_failures_are_retried_with_backoff_then_fail_once_onesignal_says_so(
    database, keyring, fake_onesignal, app
):
    policy = replace(FAST, max_attempts=2, client_retries=1, backoff=0.3)
    async with kit(database, keyring, fake_onesignal, app, policy=policy) as env:
        env.fake.faults.statuses([503] * 10, method="POST", path="/notifications")
        await env.start()
        send = await env.create()

        await env.deliverer.dispatch(send)
        row = await env.wait_state(send, SendState.FAILED)

    posted = env.posted()
    assert len(posted) == 4  # two attempts, each with one retry inside the client
    assert {r.json["idempotency_key"] for r in posted} == {str(send.id)}
    assert posted[2].time - posted[1].time >= 0.3  # the backoff between attempts
    # A 503 may hide a notification OneSignal made: it was asked (by listing) after each
    # attempt, and once more before the send was called failed.
    assert len(env.fake.requests_to("GET", "/notifications")) == 3
    assert row.last_error == (
        "OneSignal failed (HTTP 503): Service Unavailable. Gave up after 2 attempts. "
        "OneSignal has no notification of it: nothing was sent."
    )
    (notice,) = env.notifier.of("send_failed")
    assert notice.reason == row.last_error
    assert env.created() == []


async def test_a_send_onesignal_cannot_say_anything_of_ends_saying_it_may_have_gone_out(
    database, keyring, fake_onesignal, app
):
    policy = replace(FAST, max_attempts=1, checks=1, client_retries=0, backoff=0.3)
    async with kit(database, keyring, fake_onesignal, app, policy=policy) as env:
        env.fake.faults.statuses([503] * 10, path="/notifications")  # lists fail too
        await env.start()
        send = await env.create()

        await env.deliverer.dispatch(send)
        row = await env.wait_state(send, SendState.FAILED)

    assert len(env.posted()) == 1
    assert len(env.fake.requests_to("GET", "/notifications")) == 2  # after it, and a check
    assert row.last_error == (
        "OneSignal failed (HTTP 503): Service Unavailable. Gave up after 1 attempt. "
        "It may have gone out: OneSignal could not be asked whether it did."
    )
    assert [batch["unknown"] for batch in row.batches] == [True]
    (notice,) = env.notifier.of("send_failed")
    assert notice.reason == row.last_error


class _FlakyClock:
    """The scheduler's clock; raises once when told to, as any bug in a renewal could."""

    def __init__(self) -> None:
        self.fail_next = False
        self.failures = 0

    def __call__(self) -> Any:
        if self.fail_next:
            self.fail_next = False
            self.failures += 1
            raise RuntimeError("renewal broke")
        return utcnow()


async def test_a_failing_lease_renewal_does_not_stop_the_heartbeat(env, caplog):
    clock = _FlakyClock()
    scheduler = Scheduler(
        database=env.database,
        deliverer=env.deliverer,
        settings=env.deliverer.settings,
        sweep_interval=60,
        clock=clock,
        drain_timeout=5.0,
    )
    hold = env.fake.faults.hold(method="POST", path="/notifications")
    try:
        await scheduler.start()
        send = await env.create()
        scheduler.timers.arm(send.id, utcnow())
        await asyncio.to_thread(hold.arrived.wait, 10)
        clock.fail_next = True  # the next renewal fails

        deadline = time.monotonic() + 10
        while clock.failures == 0:
            assert time.monotonic() < deadline, "no renewal was tried"
            await asyncio.sleep(0.05)
        failed_at = (await env.row(send)).lease_until
        while (await env.row(send)).lease_until <= failed_at:
            assert time.monotonic() < deadline, "the lease was not renewed after the failure"
            await asyncio.sleep(0.1)
        hold.release()
        row = await env.wait_state(send, SendState.SENT)
    finally:
        hold.release()
        await scheduler.stop()

    assert row.claimed_by == env.deliverer.worker_id and row.attempts == 1
    assert len(env.posted()) == 1
    assert "could not renew leases (RuntimeError)" in caplog.text


async def test_stop_lets_a_delivery_in_flight_finish(env):
    hold = env.fake.faults.hold(method="POST", path="/notifications")
    await env.start()
    send = await env.create()
    env.scheduler.timers.arm(send.id, utcnow())  # due now: the scheduler's claimer takes it
    await asyncio.to_thread(hold.arrived.wait, 10)

    stopping = asyncio.create_task(env.scheduler.stop())
    await asyncio.sleep(0.3)
    assert not stopping.done()  # waiting for the delivery, not dropping it
    hold.release()
    await stopping

    assert (await env.row(send)).state == SendState.SENT
    assert len(env.created()) == 1


async def test_a_delivery_cut_off_at_shutdown_resumes_with_the_same_key(
    database, keyring, fake_onesignal, app
):
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")
    async with kit(database, keyring, fake_onesignal, app) as first:
        first.scheduler.drain_timeout = 0.2
        await first.start()
        send = await first.create()
        first.scheduler.timers.arm(send.id, utcnow())
        await asyncio.to_thread(hold.arrived.wait, 10)
        await first.scheduler.stop()
        assert (await first.row(send)).state == SendState.SENDING  # still claimed, not lost
    hold.release()  # OneSignal now acts on the request the first scheduler never heard back from
    async with kit(database, keyring, fake_onesignal, app) as second:
        await second.start()
        row = await second.wait_state(send, SendState.SENT)

    keys = [r.json["idempotency_key"] for r in second.posted()]
    assert keys == [str(send.id), str(send.id)]
    (created,) = second.created()
    assert row.notification_id == created["id"]


async def test_shutdown_hands_back_its_claims_and_another_scheduler_sends_them_at_once(
    database, keyring, fake_onesignal, app
):
    # One call at a time and a long lease: one send goes to OneSignal, two wait their turn.
    policy = replace(FAST, lease=30.0, max_in_flight=1)
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")
    ids = await insert_due(database, app, 3, utcnow())
    async with kit(database, keyring, fake_onesignal, app, policy=policy) as first:
        first.scheduler.drain_timeout = 0.2
        await first.start()
        await asyncio.to_thread(hold.arrived.wait, 10)
        await first.scheduler.stop()  # what SIGTERM runs: `Services.aclose`
        await first.deliverer.aclose()
        stopped_at = utcnow()
        rows = {send_id: await first.row(send_id) for send_id in ids}
    (called,) = [uuid.UUID(r.json["idempotency_key"]) for r in first.posted()]
    hold.release()  # OneSignal acts on the call the first scheduler never heard back from

    started = time.monotonic()
    async with kit(database, keyring, fake_onesignal, app, policy=policy) as second:
        await second.start()
        sent = [await second.wait_state(send_id, SendState.SENT, seconds=10) for send_id in ids]
        took = time.monotonic() - started

    # The call that may have reached OneSignal keeps its claim and key, its lease ended now;
    # the two that never called are scheduled again as if never claimed.
    lease = rows[called].lease_until
    assert rows[called].state == SendState.SENDING and lease is not None and lease <= stopped_at
    for send_id in set(ids) - {called}:
        assert (rows[send_id].state, rows[send_id].claimed_by) == (SendState.SCHEDULED, None)
        assert rows[send_id].attempts == 0
        assert await first.actions(rows[send_id]) == [
            "send.sending",
            "send.released",
            "send.sending",
            "send.sent",
        ]
    assert took < 10 < policy.lease  # promptly, not after the 30 s lease
    keys = Counter(r.json["idempotency_key"] for r in fake_onesignal.requests_to("POST", "/n"))
    assert keys == {str(called): 2} | {str(i): 1 for i in ids if i != called}
    assert len(fake_onesignal.notifications) == 3  # each sent exactly once
    assert {row.notification_id for row in sent} == set(fake_onesignal.notifications)
    assert await audit_chain_ok(database)


def _abandoned_scheduler(
    url: URL,
    keyring: KeyRing,
    settings: Settings,
    loop: asyncio.AbstractEventLoop,
    parts: dict[str, Any],
) -> None:
    """Run a scheduler in `loop` on this thread until the loop is stopped from outside."""
    asyncio.set_event_loop(loop)

    async def start() -> None:
        named = _named(url)
        parts["database"] = Database.open(named, audit_keys=AuditKeys.from_keyring(keyring))
        parts["http"] = make_http_client()
        deliverer = Deliverer(
            database=parts["database"],
            keyring=keyring,
            clients=OneSignalClients(parts["http"], settings.onesignal_api_url),
            settings=settings,
            timers=Timers(),
            policy=replace(FAST, lease=3.0),  # no lease renewal before the crash
            worker_id="crashed-worker",
        )
        scheduler = Scheduler(
            database=parts["database"], deliverer=deliverer, settings=settings, sweep_interval=60
        )
        await scheduler.start()

    loop.run_until_complete(start())
    loop.run_forever()


CRASHED_PROCESS = "pushops-crashed-worker"


def _named(url: URL) -> URL:
    """`url` with the abandoned process's PostgreSQL connections named, so that its death
    can close them (`_die`)."""
    if url.get_backend_name() != "postgresql":
        return url
    return url.update_query_dict({"application_name": CRASHED_PROCESS})


async def _die(database: Database) -> None:
    """What the abandoned process's death does to its connections: PostgreSQL closes them
    and rolls back what they held open. Without it a stopped loop keeps them open, and a
    lease renewal caught between its UPDATE and its COMMIT keeps the send's row locked, so
    nobody could take the send over (SQLite: its writes run on the stopped loop's thread
    between awaits, and no test has caught one open; nothing here closes them)."""
    if database.engine.url.get_backend_name() != "postgresql":
        return
    async with database.engine.connect() as connection:
        await connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": CRASHED_PROCESS},
        )


async def _renewing_forever(
    database: Database, send_id: uuid.UUID, locked: threading.Event
) -> None:
    """Renew `send_id`'s lease as a worker does, in a transaction that never commits."""
    async with database.sessions() as session, session.begin():
        renewed = sa.update(Send).where(Send.id == send_id)
        await session.execute(renewed.values(lease_until=Send.lease_until))
        locked.set()
        await asyncio.Event().wait()


def _bury(loop: asyncio.AbstractEventLoop, parts: dict[str, Any]) -> None:
    """After the test: close what the abandoned process left open."""

    async def close() -> None:
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await parts["http"].aclose()
        await parts["database"].dispose()

    loop.run_until_complete(close())
    loop.close()


async def test_a_crash_between_the_claim_and_the_result_ends_with_one_notification(
    database, keyring, fake_onesignal, app
):
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")
    (send_id,) = await insert_due(database, app, 1, utcnow())
    settings = settings_for(fake_onesignal)
    crashed_loop = asyncio.new_event_loop()
    parts: dict[str, Any] = {}
    thread = threading.Thread(
        target=_abandoned_scheduler,
        args=(database.engine.url, keyring, settings, crashed_loop, parts),
        daemon=True,
    )
    thread.start()
    await asyncio.to_thread(hold.arrived.wait, 10)
    if not is_sqlite(database.engine):
        # The worst moment: the process also renews the send's lease, its row locked in a
        # transaction that never commits. (On SQLite the stopped loop would hold the whole
        # database's write lock, which a real death gives back: see `_die`.)
        locked = threading.Event()
        renewal = _renewing_forever(parts["database"], send_id, locked)
        asyncio.run_coroutine_threadsafe(renewal, crashed_loop)
        assert await asyncio.to_thread(locked.wait, 10)
    # The crash: the process state is abandoned right after the claim, mid-call; OneSignal
    # then creates the notification, but nobody is left to store its id.
    crashed_loop.call_soon_threadsafe(crashed_loop.stop)
    await asyncio.to_thread(thread.join, 10)
    await _die(database)
    hold.release()
    await asyncio.to_thread(_wait_for, lambda: len(fake_onesignal.notifications) == 1)
    try:
        async with kit(database, keyring, fake_onesignal, app) as fresh:
            claimed = await fresh.row(send_id)
            assert (claimed.state, claimed.claimed_by) == (SendState.SENDING, "crashed-worker")

            await fresh.start()
            row = await fresh.wait_state(send_id, SendState.SENT)
    finally:
        await asyncio.to_thread(_bury, crashed_loop, parts)

    (created,) = fresh.created()
    assert [r.json["idempotency_key"] for r in fresh.posted()] == [str(send_id)] * 2
    assert row.notification_id == created["id"] and row.attempts == 2
    assert len(fresh.notifier.of("send_delivered")) == 1
    assert await audit_chain_ok(database)


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# Claims that outlast a busy machine: this test is about two replicas sharing a burst, not
# about a lease running out under a starved event loop (FAST's 2 s does, under heavy load).
STEADY = replace(FAST, lease=20.0)


async def test_two_schedulers_deliver_500_sends_due_in_the_same_second_once_each(
    database, keyring, fake_onesignal, app
):
    due = utcnow() + timedelta(seconds=1.5)
    ids = await insert_due(database, app, 500, due)
    replicas = [database.another(pool_size=3) for _ in range(2)]
    try:
        async with (
            kit(
                replicas[0], keyring, fake_onesignal, app, policy=STEADY, worker_id="replica-a"
            ) as a,
            kit(
                replicas[1], keyring, fake_onesignal, app, policy=STEADY, worker_id="replica-b"
            ) as b,
        ):
            await asyncio.gather(a.start(), b.start())
            await _wait_count(database, SendState.SENT, 500, seconds=60)
    finally:
        for replica in replicas:
            await replica.dispose()

    keys = Counter(r.json["idempotency_key"] for r in fake_onesignal.requests_to("POST", "/n"))
    assert len(fake_onesignal.notifications) == 500
    # Every send reached OneSignal once, under its own key.
    assert set(keys) == {str(i) for i in ids}
    assert max(keys.values()) == 1
    async with database.sessions() as session:
        claims = Counter(
            await session.scalars(
                sa.select(AuditEvent.actor).where(AuditEvent.action == "send.sent")
            )
        )
    assert sum(claims.values()) == 500
    assert set(claims) <= {"worker:replica-a", "worker:replica-b"}
    assert await audit_chain_ok(database)


async def test_stop_waits_for_a_sweep_in_the_middle_of_a_query(env, database):
    """A sweep still reading when the scheduler stops is waited for, not left running: a
    sweep that outlived the scheduler could still be reading when the database closes, and
    hung the process's exit (APScheduler's executor cancels its jobs without awaiting them)."""
    if database.read_engine is None:
        pytest.skip("a read held in SQLite's reader thread; PostgreSQL reads run on the loop")
    await env.start()
    entered, release = threading.Event(), threading.Event()

    def hold(*_args: Any) -> None:
        entered.set()
        release.wait(10)

    sa.event.listen(database.read_engine.sync_engine, "before_cursor_execute", hold)
    try:
        assert await asyncio.to_thread(entered.wait, 10)  # the next sweep is reading
        stopping = asyncio.create_task(env.scheduler.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()
    finally:
        release.set()
        sa.event.remove(database.read_engine.sync_engine, "before_cursor_execute", hold)
    await stopping

    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert [task for task in others if "Scheduler.sweep" in repr(task)] == []
