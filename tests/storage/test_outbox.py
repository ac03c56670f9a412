"""The Slack outbox's rows: owed once, coalesced while queued, claimed by one drainer at a time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from storage import outbox
from storage.db import Database
from storage.models import OutboxKind, OutboxMessage, OutboxState, Send, utcnow
from storage.outbox import OutboxEntry, Refused, Retry, Sent

TEAM = "T0TEST"


def _log(send_id: uuid.UUID, text: str, *, priority: int = 2) -> OutboxEntry:
    return OutboxEntry(
        team_id=TEAM,
        key=f"log:{send_id}",
        kind=OutboxKind.MESSAGE,
        purpose="log",
        destination="C0LOG",
        payload={"text": text, "blocks": None},
        priority=priority,
        send_id=send_id,
    )


def _dm(key: str, text: str, *, user: str = "U0ALICE", priority: int = 1) -> OutboxEntry:
    return OutboxEntry(
        team_id=TEAM,
        key=key,
        kind=OutboxKind.DM,
        purpose="outcome",
        destination=user,
        payload={"text": text},
        priority=priority,
    )


async def _owe(database: Database, *entries: OutboxEntry, replace: bool) -> None:
    async with database.sessions.begin() as session:
        await outbox.enqueue(session=session, entries=entries, replace=replace)


async def _claim(database: Database, worker: str = "w1", **kwargs: Any) -> list[OutboxMessage]:
    return await outbox.claim_outbox(
        session_factory=database.sessions, now=utcnow(), worker_id=worker, **kwargs
    )


async def _rows(database: Database) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return list(await session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.key)))


async def test_a_dm_is_owed_once_and_done_once_slack_took_it(database):
    await _owe(database, _dm("dm:a", "Sent."), replace=False)
    await _owe(database, _dm("dm:a", "Sent, told again."), replace=False)  # the same transition

    (claimed,) = await _claim(database)
    assert claimed.payload == {"text": "Sent."} and claimed.attempts == 1
    assert await _claim(database, "w2") == []  # leased
    finished = await outbox.finish_outbox(
        session_factory=database.sessions, worker_id="w1", results=[(claimed, Sent("D0A", "1.1"))]
    )

    assert finished.done == [claimed.id]
    (row,) = await _rows(database)
    assert row.state == OutboxState.DONE and row.leased_by is None and row.ts == "1.1"
    assert await _claim(database) == []


async def test_updates_queued_together_collapse_into_the_latest(database):
    send_id = uuid.uuid4()
    for text in ("scheduled", "sending", "sent"):
        await _owe(database, _log(send_id, text), replace=True)

    (claimed,) = await _claim(database)

    assert claimed.payload["text"] == "sent" and claimed.version == 3


async def test_an_update_queued_while_the_first_post_is_out_follows_it_as_an_update(
    database, storage_factory
):
    app = await storage_factory.app(TEAM)
    send = await storage_factory.send(app)
    await _owe(database, _log(send.id, "scheduled"), replace=True)
    (posting,) = await _claim(database)
    await _owe(database, _log(send.id, "sent"), replace=True)  # while the post is out
    assert await _claim(database, "w2") == []  # never two drainers on one message

    await outbox.finish_outbox(
        session_factory=database.sessions,
        worker_id="w1",
        results=[(posting, Sent("C0LOG", "9.9"))],
    )
    (again,) = await _claim(database, "w2")

    assert again.payload["text"] == "sent" and (again.channel, again.ts) == ("C0LOG", "9.9")
    async with database.sessions() as session:
        stored = await session.get(Send, send.id)
    assert stored is not None and stored.slack_messages["log"] == {"channel": "C0LOG", "ts": "9.9"}


async def test_the_most_urgent_go_first_and_busy_channels_wait(database):
    await _owe(database, _dm("dm:routine", "sent", priority=2), replace=False)
    await _owe(database, _log(uuid.uuid4(), "failed", priority=0), replace=True)
    await _owe(database, _dm("dm:failed", "failed", user="U0BOB", priority=0), replace=False)

    first = await _claim(database, limit=2, skip_destinations=["C0LOG"])
    rest = await _claim(database, limit=5)

    assert [row.key for row in first] == ["dm:failed", "dm:routine"]
    assert [row.destination for row in rest] == ["C0LOG"]


async def test_a_refused_message_is_kept_with_its_reason_and_not_tried_again(
    database, storage_factory
):
    app = await storage_factory.app(TEAM)
    send = await storage_factory.send(app)
    await _owe(database, _log(send.id, "sent"), replace=True)
    (claimed,) = await _claim(database)

    await outbox.finish_outbox(
        session_factory=database.sessions,
        worker_id="w1",
        results=[(claimed, Refused("channel_not_found"))],
    )

    assert await _claim(database) == []
    async with database.sessions() as session:
        (refused,) = await outbox.refused_messages(session=session, team_id=TEAM, send_id=send.id)
        counts = await outbox.outbox_counts(session=session)
    assert refused.last_error == "channel_not_found" and refused.purpose == "log"
    assert counts[OutboxState.REFUSED] == 1 and counts[OutboxState.PENDING] == 0


async def test_a_retry_waits_until_its_time_and_a_rate_limit_is_not_counted(database):
    await _owe(database, _dm("dm:a", "Sent."), replace=False)
    (claimed,) = await _claim(database)
    later = utcnow() + timedelta(seconds=30)

    await outbox.finish_outbox(
        session_factory=database.sessions,
        worker_id="w1",
        results=[(claimed, Retry(later, "ratelimited", counted=False))],
    )

    assert await _claim(database) == []
    (row,) = await _rows(database)
    assert row.attempts == 0 and row.last_error == "ratelimited" and row.next_attempt_at == later
    (again,) = await outbox.claim_outbox(
        session_factory=database.sessions, now=later, worker_id="w1"
    )
    assert again.attempts == 1


async def test_a_dead_drainers_rows_are_taken_over_after_its_lease(database):
    await _owe(database, _dm("dm:a", "Sent."), _dm("dm:b", "Sent.", user="U0BOB"), replace=False)
    held = await _claim(database, "dead", lease=timedelta(milliseconds=200))
    assert len(held) == 2 and await _claim(database, "alive") == []

    await asyncio.sleep(0.3)
    taken = await _claim(database, "alive")
    late = await outbox.finish_outbox(
        session_factory=database.sessions,
        worker_id="dead",
        results=[(row, Sent()) for row in held],
    )

    assert sorted(row.key for row in taken) == ["dm:a", "dm:b"]
    assert all(row.attempts == 2 for row in taken)
    assert sorted(late.lost) == sorted(row.id for row in held)  # the dead one's word is void


async def test_ten_drainers_share_rows_without_taking_one_twice(database):
    await _owe(
        database, *(_dm(f"dm:{n}", "Sent.", user=f"U{n:04d}") for n in range(40)), replace=False
    )
    others = [database.another(pool_size=2, max_overflow=0) for _ in range(10)]
    try:
        claims = await asyncio.gather(
            *(
                outbox.claim_outbox(
                    session_factory=other.sessions, now=utcnow(), worker_id=f"w{n}", limit=7
                )
                for n, other in enumerate(others)
            )
        )
    finally:
        for other in others:
            await other.dispose()

    keys = [row.key for rows in claims for row in rows]
    assert len(keys) == len(set(keys)) == 40


async def test_done_rows_are_pruned_and_refused_ones_kept(database):
    await _owe(database, _dm("dm:a", "Sent."), _dm("dm:b", "Sent.", user="U0BOB"), replace=False)
    done, refused = await _claim(database)
    await outbox.finish_outbox(
        session_factory=database.sessions,
        worker_id="w1",
        results=[(done, Sent()), (refused, Refused("user_not_found"))],
    )

    pruned = await outbox.prune_outbox(
        session_factory=database.sessions, before=utcnow() + timedelta(seconds=1)
    )

    assert pruned == 1
    assert [row.state for row in await _rows(database)] == [OutboxState.REFUSED]


async def test_a_read_of_final_counters_given_up_is_not_listed_as_refused_by_slack(
    database, storage_factory
):
    app = await storage_factory.app(TEAM)
    send = await storage_factory.send(app)
    await _owe(database, outbox.counters_entry(send, due_at=utcnow()), replace=False)
    (claimed,) = await _claim(database)

    await outbox.finish_outbox(
        session_factory=database.sessions,
        worker_id="w1",
        results=[(claimed, Refused("gave up after 12 tries: OneSignal unreachable"))],
    )

    async with database.sessions() as session:
        refused = await outbox.refused_messages(session=session, team_id=TEAM, send_id=send.id)
    assert refused == []


async def test_sends_whose_final_counters_came_due_are_owed_once(database, storage_factory):
    app = await storage_factory.app(TEAM)
    due = await storage_factory.send(app, counters_due_at=utcnow() - timedelta(seconds=1))
    later = await storage_factory.send(app, counters_due_at=utcnow() + timedelta(hours=1))
    await storage_factory.send(app)  # never went out: nothing owed

    first = await outbox.owe_counters(session_factory=database.sessions, now=utcnow())
    again = await outbox.owe_counters(session_factory=database.sessions, now=utcnow())

    assert (first, again) == (1, 0)
    (owed,) = await _claim(database)
    assert (owed.key, owed.purpose, owed.send_id) == (f"counters:{due.id}", "counters", due.id)
    async with database.sessions() as session:
        moments = dict(
            (await session.execute(sa.select(Send.id, Send.counters_due_at))).tuples().all()
        )
    assert moments[due.id] is None and moments[later.id] is not None


def _notice(send_id: uuid.UUID, outcome: str, *, team: str = TEAM) -> OutboxEntry:
    return OutboxEntry(
        team_id=team,
        key=f"{outbox.NOTICE}:{send_id}:{outcome}:1796515414692378",
        kind=OutboxKind.DM,
        purpose=outbox.NOTICE,
        destination="U0ALICE",
        payload={"outcome": outcome, "args": {}},
        priority=0,
        send_id=send_id,
    )


async def test_notices_settled_together_are_each_done_for_their_own_send_outcome_and_team(
    database,
):
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _owe(database, _notice(a, "delivered"), _notice(a, "failed"), replace=False)
    await _owe(database, _notice(b, "delivered"), _notice(b, "failed"), replace=False)
    await _owe(database, _notice(c, "delivered"), _notice(c, "delivered", team="T0OTHER"),
               replace=False)  # fmt: skip

    async with database.sessions.begin() as session:
        await outbox.settle_notices(
            session=session,
            notices=[(TEAM, a, "delivered"), (TEAM, b, "failed"), ("T0OTHER", c, "delivered")],
        )

    done = {(row.team_id, row.send_id, row.payload["outcome"]) for row in await _rows(database)
            if row.state == OutboxState.DONE}  # fmt: skip
    assert done == {(TEAM, a, "delivered"), (TEAM, b, "failed"), ("T0OTHER", c, "delivered")}
