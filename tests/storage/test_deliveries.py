"""Delivery's storage: claiming one send, timers, leases (`storage.claims`), results in bulk."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storage import claims, deliveries, queries
from storage.db import Database, is_sqlite
from storage.deliveries import DeliveryResult
from storage.errors import InvalidInput
from storage.models import Send, SendNotification, SendState, utcnow


async def _claim(database: Database, send: Send, worker: str = "w1", **kwargs: Any) -> Send | None:
    return await claims.claim_send(
        session_factory=database.sessions,
        send_id=send.id,
        now=kwargs.pop("now", utcnow()),
        worker_id=worker,
        **kwargs,
    )


async def test_one_due_send_is_claimed_once(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app, due_at=utcnow() - timedelta(seconds=1))

    first = await _claim(database, send, "w1")
    second = await _claim(database, send, "w2")

    assert first is not None and first.state == SendState.SENDING
    assert first.claimed_by == "w1" and first.attempts == 1
    assert second is None


async def test_a_send_not_due_or_later_than_the_grace_is_not_claimed(database, storage_factory):
    app = await storage_factory.app()
    early = await storage_factory.send(app, due_at=utcnow() + timedelta(hours=1))
    late = await storage_factory.send(app, due_at=utcnow() - timedelta(hours=1))

    assert await _claim(database, early) is None
    assert await _claim(database, late, grace=timedelta(minutes=10)) is None


async def test_timers_are_due_times_and_lease_ends(database, storage_factory):
    app = await storage_factory.app()
    due = utcnow() + timedelta(minutes=5)
    scheduled = await storage_factory.send(app, due_at=due)
    held = await storage_factory.send(app, due_at=utcnow())
    claimed = await _claim(database, held, lease=timedelta(seconds=30))
    await storage_factory.send(app, state=SendState.SENT)

    async with database.sessions() as session:
        timers = {timer.send_id: timer for timer in await claims.list_timers(session=session)}

    assert set(timers) == {scheduled.id, held.id}
    assert timers[scheduled.id].at == due and timers[scheduled.id].state == SendState.SCHEDULED
    assert claimed is not None and timers[held.id].at == claimed.lease_until


async def test_only_the_holder_renews_a_lease(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app, due_at=utcnow())
    await _claim(database, send, "w1")
    later = utcnow() + timedelta(minutes=10)

    theirs = await claims.renew_leases(
        session_factory=database.sessions, worker_id="w2", send_ids=[send.id], lease_until=later
    )
    mine = await claims.renew_leases(
        session_factory=database.sessions, worker_id="w1", send_ids=[send.id], lease_until=later
    )

    assert (theirs, mine) == (0, 1)


async def test_renewing_leases_skips_a_send_whose_result_is_being_recorded(
    database, storage_factory
):
    """A renewal never waits on a row lock: waiting on one held by `finish_sends` could
    deadlock with it (the renewal's scan order is not the finish's id order)."""
    if is_sqlite(database.engine):
        pytest.skip("SQLite has no row locks: each write holds the whole database")
    app = await storage_factory.app()
    sends = [await storage_factory.send(app, due_at=utcnow()) for _ in range(3)]
    claimed = [await _claim(database, send, "w1") for send in sends]
    assert claimed[0] is not None
    later = utcnow() + timedelta(minutes=10)

    async with database.sessions() as finishing, finishing.begin():
        await finishing.execute(sa.select(Send.id).where(Send.id == sends[0].id).with_for_update())
        renewed = await asyncio.wait_for(
            claims.renew_leases(
                session_factory=database.sessions,
                worker_id="w1",
                send_ids=[send.id for send in sends],
                lease_until=later,
            ),
            timeout=5,
        )

    assert renewed == 2
    async with database.sessions() as session:
        leases = dict((await session.execute(sa.select(Send.id, Send.lease_until))).all())
    assert leases[sends[0].id] == claimed[0].lease_until
    assert leases[sends[1].id] == leases[sends[2].id] == later


async def test_results_of_many_sends_are_recorded_together_and_audited(database, storage_factory):
    app = await storage_factory.app()
    sends = [await storage_factory.send(app, due_at=utcnow()) for _ in range(3)]
    for send in sends:
        await _claim(database, send)
    retry_at = utcnow() + timedelta(seconds=30)
    results = [
        DeliveryResult(sends[0].id, SendState.SENT, "n-1", [{"index": 0}]),
        DeliveryResult(sends[1].id, SendState.FAILED, None, (), "OneSignal refused it."),
        DeliveryResult(sends[2].id, SendState.SENDING, None, (), "HTTP 503", retry_at),
    ]

    finished = await deliveries.finish_sends(
        session_factory=database.sessions, worker_id="w1", results=results
    )

    assert sorted(finished.recorded) == sorted(send.id for send in sends)
    assert finished.lost == []
    async with database.sessions() as session:
        rows = await session.scalars(sa.select(Send).where(Send.id.in_(finished.recorded)))
        by_id = {send.id: send for send in rows}
    for send, result in zip(sends, results, strict=True):
        applied = deliveries.apply_result(send, result, finished.at)
        assert (applied.state, applied.last_error, applied.lease_until) == (
            by_id[send.id].state,
            by_id[send.id].last_error,
            by_id[send.id].lease_until,
        )
    assert by_id[sends[0].id].state == SendState.SENT
    assert by_id[sends[0].id].notification_id == "n-1"
    assert by_id[sends[0].id].finished_at is not None
    assert by_id[sends[1].id].state == SendState.FAILED
    assert by_id[sends[1].id].last_error == "OneSignal refused it."
    assert by_id[sends[2].id].state == SendState.SENDING
    assert by_id[sends[2].id].lease_until == retry_at
    async with database.sessions() as session:
        events = await queries.list_audit_events(session=session, team_id=app.team_id, limit=3)
        chain = await queries.verify_audit_chain(session=session)
    assert sorted(e.action for e in events) == ["send.failed", "send.retry", "send.sent"]
    assert chain.ok


async def test_a_result_for_a_send_cancelled_meanwhile_is_lost_but_keeps_its_ids(
    database, storage_factory
):
    app = await storage_factory.app()
    send = await storage_factory.send(app, due_at=utcnow())
    await _claim(database, send)
    async with database.sessions.begin() as session:
        await queries.cancel_send(session=session, team_id=app.team_id, send_id=send.id, actor="U")

    finished = await deliveries.finish_sends(
        session_factory=database.sessions,
        worker_id="w1",
        results=[DeliveryResult(send.id, SendState.SENT, "n-1", [{"notification_id": "n-1"}])],
    )

    (lost,) = finished.lost
    assert finished.recorded == []
    assert lost.state == SendState.CANCELLED and lost.notification_id == "n-1"


async def test_a_result_of_another_workers_claim_is_not_recorded(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app, due_at=utcnow())
    await _claim(database, send, "w2")

    finished = await deliveries.finish_sends(
        session_factory=database.sessions,
        worker_id="w1",
        results=[DeliveryResult(send.id, SendState.SENT, "n-1")],
    )

    assert [s.state for s in finished.lost] == [SendState.SENDING]


def test_a_result_must_be_a_delivery_outcome():
    with pytest.raises(InvalidInput):
        DeliveryResult(uuid.uuid4(), SendState.CANCELLED)
    with pytest.raises(InvalidInput):
        DeliveryResult(uuid.uuid4(), SendState.SENDING)


async def test_every_batch_of_every_recorded_send_gets_its_lookup_row(database, storage_factory):
    app = await storage_factory.app()
    held = [await storage_factory.send(app, due_at=utcnow()) for _ in range(3)]
    for send in held:
        await _claim(database, send)
    async with database.sessions.begin() as session:  # the third is stopped while it goes out
        await queries.cancel_send(
            session=session, team_id=app.team_id, send_id=held[2].id, actor="U"
        )
    ids = [[f"0b7f1c0d-0000-4000-8000-{n:06d}{i:06d}" for i in range(3)] for n in range(3)]
    batches = [[{"index": i, "notification_id": ids[n][i]} for i in range(3)] for n in range(3)]
    results = [
        DeliveryResult(held[0].id, SendState.SENT, ids[0][0], batches[0]),
        DeliveryResult(held[1].id, SendState.FAILED, ids[1][0], batches[1][:1], "x"),
        DeliveryResult(held[2].id, SendState.SENT, ids[2][0], batches[2]),
    ]

    await deliveries.finish_sends(
        session_factory=database.sessions, worker_id="w1", results=results
    )

    async with database.sessions() as session:
        query = sa.select(SendNotification.send_id, SendNotification.notification_id)
        rows = set((await session.execute(query)).tuples())
        by_last = [
            await queries.find_send(session=session, team_id=app.team_id, ref=ids[n][2])
            for n in (0, 2)
        ]
    expected = {(r.send_id, b["notification_id"]) for r in results for b in r.batches}
    assert rows == expected and len(rows) == 7
    assert [s.id if s else None for s in by_last] == [held[0].id, held[2].id]
