"""Claiming due sends with several processes: each send goes to exactly one claimer."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storage import claims, deliveries, queries
from storage.db import Database
from storage.deliveries import DeliveryResult
from storage.errors import IllegalTransition
from storage.models import AuditEvent, OneSignalApp, Send, SendState, utcnow


def _process(database: Database, pool_size: int = 5) -> Database:
    """Another engine on the same database: what a second replica would have."""
    return database.another(pool_size=pool_size, max_overflow=0)


async def _warm(database: Database, connections: int) -> None:
    """Open `connections` pooled connections now, so the race is not about connecting."""
    held = [await database.engine.connect() for _ in range(connections)]
    for connection in held:
        await connection.close()


async def test_twenty_claimers_race_for_one_due_send_and_one_wins(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app, due_at=utcnow() - timedelta(seconds=1))
    contenders = _process(database, pool_size=20)
    await _warm(contenders, 20)
    start = asyncio.Barrier(20)

    async def claimer(number: int) -> list[Send]:
        await start.wait()
        return await claims.claim_due_sends(
            session_factory=contenders.sessions, now=utcnow(), worker_id=f"w{number}", limit=1
        )

    try:
        results = await asyncio.gather(*(claimer(n) for n in range(20)))
    finally:
        await contenders.dispose()

    winners = [claimed for claimed in results if claimed]
    assert len(winners) == 1
    (claimed,) = winners[0]
    assert claimed.id == send.id and claimed.state == SendState.SENDING and claimed.attempts == 1
    async with database.sessions() as session:
        stored = await queries.get_send(session=session, team_id=app.team_id, send_id=send.id)
        claim_events = await session.scalar(
            sa.select(sa.func.count()).where(AuditEvent.action == "send.sending")
        )
        chain = await queries.verify_audit_chain(session=session)
    assert stored is not None and stored.claimed_by == claimed.claimed_by
    assert stored.lease_until is not None and stored.lease_until > utcnow()
    assert claim_events == 1
    assert chain.ok


async def test_a_burst_of_due_sends_reaches_each_of_four_claimers_once(database, storage_factory):
    app = await storage_factory.app()
    due = utcnow() - timedelta(seconds=5)
    expected = await storage_factory.due_sends(app, 1000, due)
    processes = [_process(database, pool_size=1) for _ in range(4)]

    async def claimer(number: int, process: Database) -> list[tuple[int, Send]]:
        got: list[tuple[int, Send]] = []
        while claimed := await claims.claim_due_sends(
            session_factory=process.sessions, now=utcnow(), worker_id=f"w{number}", limit=25
        ):
            got += [(number, send) for send in claimed]
        return got

    try:
        results = await asyncio.gather(*(claimer(n, p) for n, p in enumerate(processes)))
    finally:
        for process in processes:
            await process.dispose()

    taken = [pair for result in results for pair in result]
    times_claimed = Counter(send.id for _, send in taken)
    assert set(times_claimed) == set(expected)
    assert set(times_claimed.values()) == {1}
    assert all(send.claimed_by == f"w{number}" for number, send in taken)
    async with database.sessions() as session:
        states = dict(
            (
                await session.execute(sa.select(Send.state, sa.func.count()).group_by(Send.state))
            ).all()
        )
        chain = await queries.verify_audit_chain(session=session, team_id=app.team_id)
    assert states == {SendState.SENDING: 1000}
    assert chain.ok and chain.events == 1000 + 1  # one claim event per send, plus app.added


async def test_claims_skip_what_is_not_due_and_leave_late_sends_to_the_missed_sweep(
    database, storage_factory
):
    app = await storage_factory.app()
    now = utcnow()
    due = await storage_factory.send(app, due_at=now - timedelta(seconds=30))
    late = await storage_factory.send(app, due_at=now - timedelta(hours=2))
    future = await storage_factory.send(app, due_at=now + timedelta(minutes=5))
    draft = await storage_factory.send(
        app, state=SendState.DRAFT, due_at=now - timedelta(minutes=1)
    )

    claimed = await claims.claim_due_sends(
        session_factory=database.sessions, now=now, worker_id="w1", grace=timedelta(minutes=10)
    )
    missed = await claims.mark_missed_sends(
        session_factory=database.sessions, now=now, grace=timedelta(minutes=10)
    )

    assert [send.id for send in claimed] == [due.id]
    assert [send.id for send in missed] == [late.id]
    async with database.sessions() as session:
        still = {
            s.id: s.state for s in await queries.list_sends(session=session, team_id=app.team_id)
        }
    assert still[future.id] == SendState.SCHEDULED and still[draft.id] == SendState.DRAFT
    assert still[late.id] == SendState.MISSED


async def _create(database: Database, app: OneSignalApp, **options: Any) -> Send:
    """A send made through `queries.create_send`, scheduled for now unless `options` say."""
    async with database.sessions.begin() as session:
        return await queries.create_send(
            session=session,
            team_id=app.team_id,
            requester_id="U0ALICE",
            app=app,
            content={"contents": {"en": "now"}},
            audience={"segments": ["All"]},
            **{"state": SendState.SCHEDULED, **options},
        )


async def test_a_send_scheduled_without_a_time_is_due_at_once(database, storage_factory):
    app = await storage_factory.app()
    send = await _create(database, app)
    claimed = await claims.claim_due_sends(
        session_factory=database.sessions, now=utcnow(), worker_id="w1"
    )
    assert [c.id for c in claimed] == [send.id]


async def test_a_send_due_now_can_be_claimed_as_it_is_created(database, storage_factory):
    app = await storage_factory.app()
    send = await _create(database, app, claim=claims.Claim("w1", timedelta(seconds=30)))

    assert send.state == SendState.SENDING and send.claimed_by == "w1" and send.attempts == 1
    assert send.lease_until is not None and send.claimed_at is not None
    assert send.lease_until - send.claimed_at == timedelta(seconds=30)
    # No other worker finds it due: it is this worker's until its lease ends.
    assert (
        await claims.claim_due_sends(
            session_factory=database.sessions, now=utcnow(), worker_id="w2"
        )
        == []
    )
    async with database.sessions() as session:
        events = list(
            await session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.team_id == app.team_id)
                .order_by(AuditEvent.seq)
            )
        )
    assert [(e.action, e.actor) for e in events][-2:] == [
        ("send.created", "U0ALICE"),
        ("send.sending", "worker:w1"),
    ]
    assert events[-2].details["state"] == "scheduled"
    assert events[-1].details == {
        "send_id": str(send.id),
        "from": "scheduled",
        "to": "sending",
        "attempt": 1,
    }


@pytest.mark.parametrize(
    ("state", "due_in"),
    [(SendState.DRAFT, None), (SendState.PENDING_APPROVAL, None), (SendState.SCHEDULED, 3600)],
)
async def test_only_a_send_scheduled_for_now_is_claimed_as_it_is_created(
    database, storage_factory, state, due_in
):
    app = await storage_factory.app()
    with pytest.raises(IllegalTransition):
        await _create(
            database,
            app,
            state=state,
            due_at=None if due_in is None else utcnow() + timedelta(seconds=due_in),
            claim=claims.Claim("w1"),
        )
    async with database.sessions() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Send)) == 0


async def test_a_send_whose_worker_died_is_taken_over_with_the_same_key(database, storage_factory):
    app = await storage_factory.app()
    now = utcnow()
    send = await storage_factory.send(app, due_at=now - timedelta(minutes=10))
    (first,) = await claims.claim_due_sends(
        session_factory=database.sessions,
        now=now - timedelta(minutes=10),
        worker_id="dead",
        lease=timedelta(minutes=1),
    )

    assert (
        await claims.reclaim_stale_sends(
            session_factory=database.sessions,
            now=now - timedelta(minutes=9, seconds=30),
            worker_id="w2",
        )
        == []
    )  # the lease still runs
    (taken,) = await claims.reclaim_stale_sends(
        session_factory=database.sessions, now=now, worker_id="w2"
    )

    assert taken.id == first.id == send.id  # same UUID: same OneSignal idempotency key
    assert (taken.claimed_by, taken.attempts, taken.state) == ("w2", 2, SendState.SENDING)
    late = DeliveryResult(send.id, SendState.FAILED, error="x")  # the dead worker's, too late
    finished = await deliveries.finish_sends(
        session_factory=database.sessions, worker_id="dead", results=[late]
    )
    assert finished.recorded == []


async def test_a_dead_workers_claim_is_taken_over_however_late_and_never_marked_missed_blindly(
    database, storage_factory
):
    # What its worker got no answer for may have gone out: only OneSignal can say whether it
    # did, so the claim is taken over (and its taker asks), never marked missed here.
    app = await storage_factory.app()
    now = utcnow()
    held = {"state": SendState.SENDING, "claimed_by": "dead", "attempts": 1}
    expired = {**held, "lease_until": now - timedelta(hours=1)}
    old = now - timedelta(hours=2)
    blind = await storage_factory.send(app, due_at=old, **expired)
    partly = await storage_factory.send(
        app, due_at=old, notification_id=str(uuid.uuid4()), **expired
    )
    recent = await storage_factory.send(app, due_at=now - timedelta(minutes=5), **expired)
    leased = await storage_factory.send(
        app, due_at=old, **held, lease_until=now + timedelta(hours=1)
    )
    never_claimed = await storage_factory.send(app, due_at=old)
    grace = timedelta(minutes=10)

    missed = await claims.mark_missed_sends(session_factory=database.sessions, now=now, grace=grace)
    taken = await claims.reclaim_stale_sends(
        session_factory=database.sessions, now=now, worker_id="w2"
    )

    assert [send.id for send in missed] == [never_claimed.id]  # nothing of it ever left
    assert {send.id for send in taken} == {blind.id, partly.id, recent.id}
    assert {(send.claimed_by, send.attempts) for send in taken} == {("w2", 2)}
    async with database.sessions() as session:
        still = await queries.get_send(session=session, team_id=app.team_id, send_id=leased.id)
    assert still is not None and still.state == SendState.SENDING  # its worker is alive
    assert still.claimed_by == "dead"


async def test_pending_approvals_expire_after_their_time(database, storage_factory):
    app = await storage_factory.app()
    now = utcnow()
    long_ago = now - timedelta(days=2)
    old = await storage_factory.send(
        app, state=SendState.PENDING_APPROVAL, created_at=long_ago, updated_at=long_ago
    )
    fresh = await storage_factory.send(app, state=SendState.PENDING_APPROVAL)
    # created long ago, missed, and asked again just now: it waits from now on
    asked_again = await storage_factory.send(app, state=SendState.MISSED, created_at=long_ago)
    async with database.sessions.begin() as session:
        assert await queries.transition_send(
            session=session,
            team_id=app.team_id,
            send_id=asked_again.id,
            expected=SendState.MISSED,
            new=SendState.PENDING_APPROVAL,
            actor="U0REQUESTER",
        )

    expired = await claims.expire_pending_approvals(
        session_factory=database.sessions, now=now, ttl=timedelta(days=1)
    )

    assert [send.id for send in expired] == [old.id]
    assert expired[0].state == SendState.EXPIRED and expired[0].finished_at is not None
    async with database.sessions() as session:
        for waiting in (fresh, asked_again):
            stored = await queries.get_send(
                session=session, team_id=app.team_id, send_id=waiting.id
            )
            assert stored is not None and stored.state == SendState.PENDING_APPROVAL


# --- many workspaces in one transaction ------------------------------------------------------


@contextlib.contextmanager
def _statements_on_the_audit_log(database: Database) -> Iterator[list[str]]:
    """Every statement run meanwhile on the chains' heads (workspace rows) or events."""
    seen: list[str] = []

    def note(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
        start = " ".join(statement.split())[:80]
        if "workspaces" in start or "audit_events" in start:
            seen.append(start)

    sa.event.listen(database.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(database.engine.sync_engine, "before_cursor_execute", note)


async def test_a_claim_and_its_results_across_many_workspaces_append_in_three_statements(
    database, storage_factory
):
    """A hosted worker's claim spans workspaces: the chains' heads are locked together in one
    statement and moved in one, and the events go in one, however many workspaces, so each
    transaction holds those locks for a few statements, not a few per workspace."""
    teams = [f"T0MANY{n:02d}" for n in range(6)]
    due = utcnow() - timedelta(seconds=1)
    for team in teams:
        await storage_factory.due_sends(await storage_factory.app(team), 3, due)

    with _statements_on_the_audit_log(database) as at_claim:
        claimed = await claims.claim_due_sends(
            session_factory=database.sessions, now=utcnow(), worker_id="w1"
        )
    with _statements_on_the_audit_log(database) as seen:
        await deliveries.finish_sends(
            session_factory=database.sessions,
            worker_id="w1",
            results=[DeliveryResult(send.id, SendState.SENT, f"n-{send.id}") for send in claimed],
        )

    assert len(claimed) == 18
    assert len(at_claim) <= 3, at_claim
    assert len(seen) <= 3, seen
    async with database.sessions() as session:
        chain = await queries.verify_audit_chain(session=session)
        actions = (
            await session.execute(
                sa.select(AuditEvent.team_id, AuditEvent.seq, AuditEvent.action).order_by(
                    AuditEvent.team_id, AuditEvent.seq
                )
            )
        ).all()
    assert chain.ok
    for team in teams:
        mine = [(seq, action) for team_id, seq, action in actions if team_id == team]
        assert [action for _, action in mine[-6:]] == ["send.sending"] * 3 + ["send.sent"] * 3
        assert [seq for seq, _ in mine] == list(range(1, len(mine) + 1))


async def test_two_workers_claiming_and_recording_across_workspaces_keep_every_chain_whole(
    database, storage_factory
):
    """Both lock the heads of the workspaces they touch in one order: no deadlock, no fork."""
    teams = [f"T0PAIR{n:02d}" for n in range(5)]
    due = utcnow() - timedelta(seconds=1)
    for team in teams:
        await storage_factory.due_sends(await storage_factory.app(team), 40, due)
    workers = [_process(database, pool_size=2) for _ in range(2)]

    async def work(process: Database, name: str) -> int:
        done = 0
        while claimed := await claims.claim_due_sends(
            session_factory=process.sessions, now=utcnow(), worker_id=name, limit=7
        ):
            results = [DeliveryResult(s.id, SendState.SENT, f"n-{s.id}") for s in claimed]
            finished = await deliveries.finish_sends(
                session_factory=process.sessions, worker_id=name, results=results
            )
            done += len(finished.recorded)
        return done

    try:
        counts = await asyncio.gather(*(work(p, f"w{n}") for n, p in enumerate(workers)))
    finally:
        for process in workers:
            await process.dispose()

    assert sum(counts) == 200
    async with database.sessions() as session:
        chain = await queries.verify_audit_chain(session=session)
    assert chain.ok


async def test_timers_until_a_moment_are_the_sends_that_need_attention_by_then(storage_factory):
    app = await storage_factory.app()
    now = utcnow()
    soon = await storage_factory.send(app, due_at=now + timedelta(minutes=1))
    later = await storage_factory.send(app, due_at=now + timedelta(days=30))
    held = await storage_factory.send(
        app, state=SendState.SENDING, lease_until=now + timedelta(seconds=30), claimed_by="w1"
    )
    held_long = await storage_factory.send(
        app, state=SendState.SENDING, lease_until=now + timedelta(days=2), claimed_by="w2"
    )
    await storage_factory.send(app, state=SendState.SENT, due_at=now)

    async with storage_factory.database.sessions() as session:
        every = await claims.list_timers(session=session)
        soon_ones = await claims.list_timers(session=session, until=now + timedelta(minutes=5))

    assert {t.send_id for t in every} == {soon.id, later.id, held.id, held_long.id}
    assert {(t.send_id, t.state) for t in soon_ones} == {
        (soon.id, SendState.SCHEDULED),
        (held.id, SendState.SENDING),
    }
