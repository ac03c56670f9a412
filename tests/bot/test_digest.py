"""Digests in the outbox, against the fake Slack: news piled up for one requester becomes one
DM, a log channel behind gets one message naming the sends that ended while each send's own
message still reaches its final state, and nothing is told twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from bot.digest import Coalescer, DigestPolicy
from bot.outbox import DrainPolicy, OutboxDrainer
from bot.slack_limits import SLACK_LIMITS
from storage import outbox
from storage.db import Database
from storage.models import OutboxKind, OutboxMessage, OutboxState, utcnow
from storage.outbox import OutboxEntry
from tests.bot.test_outbox import LOG, Kit
from tests.fakes.slack import DEFAULT_TEAM_ID, FakeSlack

BOB, CAROL = "U0BOB", "U0CAROL"
AT_ONCE = DigestPolicy(every=0, requester_gather=0, log_gather=0)


def _facts(n: int, state: str = "sent") -> dict[str, Any]:
    return {
        "short_id": f"7K3M{n:02d}",
        "state": state,
        "title": f"Release {n}",
        "message": f"Version {n} is out",
        "audience": "segment Active Users",
        "ended_at": "2026-12-04T09:00:12+00:00",
        "timezone": "Europe/Berlin",
    }


def _dm(user: str, n: int, purpose: str = "delivered") -> OutboxEntry:
    return OutboxEntry(
        team_id=DEFAULT_TEAM_ID,
        key=f"dm:{uuid.uuid4()}",
        kind=OutboxKind.DM,
        purpose=purpose,
        destination=user,
        payload={"text": f"`7K3M{n:02d}` {purpose} alone", "blocks": None, "facts": _facts(n)},
        priority=1,
    )


def _log(n: int, state: str = "sent") -> OutboxEntry:
    return OutboxEntry(
        team_id=DEFAULT_TEAM_ID,
        key=f"log:{n}",
        kind=OutboxKind.MESSAGE,
        purpose="log",
        destination=LOG,
        payload={"text": f"`7K3M{n:02d}` is {state}", "blocks": None, "facts": _facts(n, state)},
        priority=2,
    )


async def _owe(database: Database, *entries: OutboxEntry) -> None:
    async with database.sessions.begin() as session:
        for kind in (OutboxKind.MESSAGE, OutboxKind.DM):
            chosen = [entry for entry in entries if entry.kind == kind]
            if chosen:
                await outbox.enqueue(
                    session=session, entries=chosen, replace=kind == OutboxKind.MESSAGE
                )


async def _rows(database: Database) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return list(await session.scalars(sa.select(OutboxMessage)))


def _drainer(kit: Kit, database: Database, coalescer: Coalescer) -> OutboxDrainer:
    return OutboxDrainer(
        database=database,
        deliver=kit.delivery,
        pacer=kit.pacer,
        worker_id="test",
        policy=DrainPolicy(poll=0.1),
        coalesce=coalescer,
    )


@pytest.fixture
async def kit(database: Database, fake_slack: FakeSlack) -> AsyncIterator[Kit]:
    fake_slack.add_user(BOB)
    fake_slack.add_user(CAROL)
    made = Kit(database, fake_slack, limits=SLACK_LIMITS.scaled(speed=50))
    yield made
    await made.drainer.stop(grace=0)


async def _drain(drainer: OutboxDrainer, database: Database) -> None:
    """Drain until nothing is owed (a paced message waits its turn)."""
    deadline = time.monotonic() + 10
    while any(row.state == OutboxState.PENDING for row in await _rows(database)):
        assert time.monotonic() < deadline, await _rows(database)
        if not await drainer.drain_once():
            await asyncio.sleep(0.05)


def _texts(fake: FakeSlack, channel: str) -> list[str]:
    return [str(message.get("text")) for message in fake.messages_in(channel)]


async def test_went_out_dms_waiting_for_one_requester_become_one_digest(kit, database, fake_slack):
    await _owe(database, _dm(BOB, 1), _dm(BOB, 2), _dm(BOB, 3), _dm(BOB, 4, purpose="failed"))
    await _owe(database, _dm(CAROL, 5))
    drainer = _drainer(kit, database, Coalescer(database, policy=AT_ONCE))

    await _drain(drainer, database)

    bob = _texts(fake_slack, "D0BOB")
    assert sorted(bob) == sorted(
        [
            "3 of your sends went out at 10:00 CET: `7K3M01` Release 1 to segment Active Users,"
            " `7K3M02` Release 2 to segment Active Users,"
            " `7K3M03` Release 3 to segment Active Users",
            "`7K3M04` failed alone",  # asks for action: told alone
        ]
    )
    assert _texts(fake_slack, "D0CAROL") == ["`7K3M05` delivered alone"]  # nothing to digest
    rows = await _rows(database)
    [digest] = [row for row in rows if row.purpose == "digest"]
    told = [row for row in rows if row.digest == digest.key]
    assert len(told) == 3 and all(row.state == OutboxState.DONE for row in told)
    assert all(row.state == OutboxState.DONE for row in rows)


async def test_a_log_channel_behind_gets_one_digest_and_every_send_its_final_state(
    kit, database, fake_slack
):
    await _owe(database, *(_log(n) for n in range(6)), _log(6, state="scheduled"))
    drainer = _drainer(kit, database, Coalescer(database, policy=AT_ONCE))

    await _drain(drainer, database)

    texts = _texts(fake_slack, LOG)
    [digest] = [text for text in texts if "sends went out" in text]
    assert digest.startswith("6 sends went out at 09:00 UTC: `7K3M00` Release 0 to segment")
    assert "`7K3M06`" not in digest  # not ended: no news yet
    assert sorted(text for text in texts if text != digest) == [
        *(f"`7K3M{n:02d}` is sent" for n in range(6)),
        "`7K3M06` is scheduled",
    ]
    rows = await _rows(database)
    assert all(row.state == OutboxState.DONE for row in rows)


async def test_a_send_is_named_in_one_log_digest_and_a_channel_gets_one_a_minute(
    kit, database, fake_slack
):
    await _owe(database, *(_log(n) for n in range(5)))
    assert await Coalescer(database, policy=AT_ONCE)() == 5
    await _owe(database, *(_log(n) for n in range(5, 10)))

    too_soon = await Coalescer(database, policy=AT_ONCE)()
    now = DigestPolicy(every=0, requester_gather=0, log_gather=0, log_every=0)
    later = await Coalescer(database, policy=now)()

    assert (too_soon, later) == (0, 5)
    digests = sorted(
        (row for row in await _rows(database) if row.purpose == "digest"),
        key=lambda row: row.created_at,
    )
    named = [[item["short_id"] for item in row.payload["items"]] for row in digests]
    assert named == [[f"7K3M{n:02d}" for n in range(5)], [f"7K3M{n:02d}" for n in range(5, 10)]]


async def test_a_log_pile_is_left_to_grow_before_its_digest(database):
    clock = [0.0]
    policy = DigestPolicy(every=0, log_gather=3.0)
    coalescer = Coalescer(database, policy=policy, monotonic=lambda: clock[0])
    await _owe(database, *(_log(n) for n in range(5)))

    first = await coalescer()
    await _owe(database, *(_log(n) for n in range(5, 8)))
    clock[0] = 3.0
    grown = await coalescer()

    assert (first, grown) == (0, 8)


async def test_too_few_waiting_or_not_for_long_make_no_digest(database):
    await _owe(database, _dm(BOB, 1), _dm(BOB, 2), *(_log(n) for n in range(4)))
    await _owe(database, _dm(CAROL, 3), _dm(CAROL, 4), _dm(CAROL, 5))

    assert await Coalescer(database, policy=DigestPolicy(every=0))() == 0  # all just owed
    assert await Coalescer(database, policy=AT_ONCE)() == 3  # Carol's; Bob's are too few
    assert all(row.digest is None for row in await _rows(database) if row.destination != CAROL)


async def test_a_message_being_sent_is_left_out_of_digests(database):
    await _owe(database, _dm(CAROL, 2), _dm(CAROL, 3), _dm(CAROL, 4))
    [taken] = await outbox.claim_outbox(
        session_factory=database.sessions, now=utcnow(), worker_id="other", limit=1
    )

    told = await Coalescer(database, policy=AT_ONCE)()

    assert told == 0  # two left waiting: too few for a digest
    rows = await _rows(database)
    assert all(row.digest is None and row.state == OutboxState.PENDING for row in rows)
    assert taken.key in {row.key for row in rows}
