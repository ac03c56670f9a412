"""The outbox drainer against the fake Slack: coalesced, urgent first, paced, waiting out
`Retry-After`, and keeping Slack's refusals."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import DrainPolicy, OutboxDrainer, Owing
from bot.slack_clients import client_source
from bot.slack_limits import SLACK_LIMITS, Limit, Paced, Pacer, SlackLimits
from commands.outgoing import OutboxDelivery
from storage import outbox
from storage.db import Database
from storage.models import OutboxKind, OutboxMessage, OutboxState, utcnow
from storage.outbox import OutboxEntry
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID, FakeSlack

LOG = "C0PUSHLOG"


def _log(send_id: uuid.UUID, text: str) -> OutboxEntry:
    return OutboxEntry(
        team_id=DEFAULT_TEAM_ID,
        key=f"log:{send_id}",
        kind=OutboxKind.MESSAGE,
        purpose="log",
        destination=LOG,
        payload={"text": text, "blocks": None},
        priority=2,
    )


def _dm(user: str, text: str, *, priority: int = 1, purpose: str = "delivered") -> OutboxEntry:
    return OutboxEntry(
        team_id=DEFAULT_TEAM_ID,
        key=f"dm:{uuid.uuid4()}",
        kind=OutboxKind.DM,
        purpose=purpose,
        destination=user,
        payload={"text": text, "blocks": None},
        priority=priority,
    )


async def _owe(database: Database, *entries: OutboxEntry, replace: bool) -> None:
    async with database.sessions.begin() as session:
        await outbox.enqueue(session=session, entries=entries, replace=replace)


async def _rows(database: Database) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return list(await session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.key)))


class Kit:
    """A drainer on `database`, writing to the fake Slack's default workspace."""

    def __init__(
        self,
        database: Database,
        fake: FakeSlack,
        *,
        concurrency: int = 8,
        limits: SlackLimits = SLACK_LIMITS,
    ) -> None:
        client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=fake.api_url)
        self.pacer = Pacer(limits)
        self.refused: list[tuple[str, str]] = []

        async def on_refused(message: OutboxMessage, reason: str) -> None:
            self.refused.append((message.key, reason))

        self.delivery = OutboxDelivery(
            client_source(client, None, None), self.pacer, on_refused=on_refused
        )
        self.drainer = OutboxDrainer(
            database=database,
            deliver=self.delivery,
            pacer=self.pacer,
            worker_id="test",
            policy=DrainPolicy(poll=0.1, concurrency=concurrency),
        )


@pytest.fixture
async def kit(database: Database, fake_slack: FakeSlack) -> AsyncIterator[Kit]:
    fake_slack.add_user("U0BOB")
    fake_slack.add_user("U0CAROL")
    made = Kit(database, fake_slack)
    yield made
    await made.drainer.stop(grace=0)


def _to(channel: str) -> Any:
    return lambda call: call.args.get("channel") == channel


async def test_updates_queued_together_are_sent_once_the_latest(kit, database, fake_slack):
    send_id = uuid.uuid4()
    for text in ("`7K3M9Q` is scheduled", "`7K3M9Q` is sending", "`7K3M9Q` was sent"):
        await _owe(database, _log(send_id, text), replace=True)

    await kit.drainer.drain_once()
    await _owe(database, _log(send_id, "`7K3M9Q` was cancelled"), replace=True)
    await kit.drainer.drain_once()

    [posted] = fake_slack.calls_to("chat.postMessage", where=_to(LOG))
    assert posted.args["text"] == "`7K3M9Q` was sent"
    [updated] = fake_slack.calls_to("chat.update")
    assert updated.args["text"] == "`7K3M9Q` was cancelled"
    (row,) = await _rows(database)
    assert row.state == OutboxState.DONE and updated.args["ts"] == row.ts


async def test_the_most_urgent_messages_go_first(database, fake_slack):
    fake_slack.add_user("U0BOB")
    one_at_a_time = Kit(database, fake_slack, concurrency=1)
    await _owe(
        database, *(_dm(f"U0R{n}", f"routine {n}", priority=2) for n in range(3)), replace=False
    )
    await _owe(database, _dm("U0BOB", "approve this", priority=0), replace=False)
    for user in ("U0R0", "U0R1", "U0R2"):
        fake_slack.add_user(user)

    while await one_at_a_time.drainer.drain_once():
        pass

    posted = [call.args["text"] for call in fake_slack.calls_to("chat.postMessage")]
    assert posted[0] == "approve this" and sorted(posted[1:]) == [
        "routine 0",
        "routine 1",
        "routine 2",
    ]


async def test_a_429_is_waited_out_and_the_message_then_sent_once(kit, database, fake_slack):
    fake_slack.fail("chat.postMessage", "ratelimited", status=429, headers={"Retry-After": "1"})
    await _owe(database, _dm("U0BOB", "Your send went out."), replace=False)
    started = time.monotonic()
    await kit.drainer.start()
    kit.drainer.wake()

    await fake_slack.wait_for("chat.postMessage", count=2, timeout=10)
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.3)

    limited, told = fake_slack.calls_to("chat.postMessage")
    assert limited.args == told.args and told.args["text"] == "Your send went out."
    assert elapsed >= 1.0  # not before Retry-After
    assert len(fake_slack.calls_to("conversations.open")) == 1  # its DM channel kept
    (row,) = await _rows(database)
    assert row.state == OutboxState.DONE and row.attempts == 1  # the 429 was not counted


async def test_a_channel_slack_refuses_is_kept_with_the_reason_and_not_tried_again(
    kit, database, fake_slack
):
    fake_slack.fail(
        "chat.postMessage", "channel_not_found", times=50, where=lambda a: a["channel"] == LOG
    )
    await _owe(database, _log(uuid.uuid4(), "`7K3M9Q` was sent"), replace=True)
    await kit.drainer.start()
    kit.drainer.wake()

    await fake_slack.wait_for("chat.postMessage", where=_to(LOG))
    await asyncio.sleep(0.5)  # five polls later

    assert len(fake_slack.calls_to("chat.postMessage", where=_to(LOG))) == 1
    (row,) = await _rows(database)
    assert row.state == OutboxState.REFUSED and row.last_error == "channel_not_found"
    assert kit.refused == [(row.key, "channel_not_found")]


async def test_a_passing_failure_is_tried_again_with_backoff(kit, database, fake_slack):
    fake_slack.fail("chat.postMessage", "internal_error", status=500)
    await _owe(database, _dm("U0BOB", "Your send went out."), replace=False)

    await kit.drainer.drain_once()

    (row,) = await _rows(database)
    assert row.state == OutboxState.PENDING and row.last_error == "internal_error"
    assert row.attempts == 1 and row.next_attempt_at > utcnow()


async def test_posts_to_one_channel_are_paced_and_others_go_meanwhile(database, fake_slack):
    fake_slack.add_user("U0BOB")
    # One post per 0.5 s per channel.
    kit = Kit(database, fake_slack, limits=SLACK_LIMITS.scaled(speed=2))
    await _owe(database, *(_log(uuid.uuid4(), f"send {n}") for n in range(8)), replace=True)
    await _owe(database, _dm("U0BOB", "hello"), replace=False)
    await kit.drainer.start()
    kit.drainer.wake()

    await fake_slack.wait_for("chat.postMessage", where=_to(LOG), count=8, timeout=15)

    await kit.drainer.stop(grace=0)
    calls = fake_slack.calls_to("chat.postMessage")
    assert [c.args["channel"] for c in calls].index("D0BOB") < 4  # not behind the log channel
    assert sorted(c.args["text"] for c in calls if c.args["channel"] == LOG) == [
        f"send {n}" for n in range(8)
    ]


def test_the_pacer_spaces_calls_by_each_limit_and_waits_out_retry_after():
    now = [100.0]
    limits = SlackLimits(
        per_workspace={"chat.update": Limit(2, 10.0), "chat.postMessage": Limit(100, 60.0)},
        per_channel={"chat.postMessage": Limit(1, 1.0)},
    )
    pacer = Pacer(limits, clock=lambda: now[0])

    assert pacer.reserve("T1", "chat.update", None, within=30) == 0
    assert pacer.reserve("T1", "chat.update", None, within=30) == 0
    assert pacer.reserve("T1", "chat.update", None, within=30) == pytest.approx(10.05)
    assert pacer.reserve("T2", "chat.update", None, within=30) == 0  # another workspace
    assert pacer.reserve("T1", "chat.postMessage", "C1", within=5) == 0
    assert pacer.reserve("T1", "chat.postMessage", "C2", within=5) == 0
    assert pacer.reserve("T1", "chat.postMessage", "C1", within=5) == pytest.approx(1.05)
    with pytest.raises(Paced):
        pacer.reserve("T1", "chat.postMessage", "C1", within=1.5)
    assert pacer.busy_channels(within=1.5) == {"C1"}
    pacer.blocked("T1", "chat.postMessage", "C2", 30)
    assert pacer.reserve("T1", "chat.postMessage", "C2", within=60) == pytest.approx(30)
    assert pacer.reserve("T1", "users.info", None, within=0) == 0  # no limit known: no wait


async def test_what_callers_owe_at_once_is_written_and_one_the_database_refuses_fails_alone(
    database,
):
    owing = Owing(database)
    good = [_dm("U0BOB", f"Your send {n} went out.") for n in range(6)]
    unwritable = OutboxEntry(
        team_id=DEFAULT_TEAM_ID,
        key=f"dm:{uuid.uuid4()}",
        kind=OutboxKind.DM,
        purpose="delivered",
        destination="U0BOB",
        payload={"text": object()},  # no JSON: the database's driver refuses it
    )
    owed = [*good[:3], unwritable, *good[3:]]

    answers = await asyncio.gather(
        *(owing.owe([entry], settles=None) for entry in owed), return_exceptions=True
    )

    assert [type(answer) for answer in answers[:3] + answers[4:]] == [type(None)] * 6
    assert isinstance(answers[3], Exception)
    assert {row.key for row in await _rows(database)} == {entry.key for entry in good}
