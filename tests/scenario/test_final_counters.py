"""Once a send went out, its final counters (delivered, confirmed received, clicked, failed,
errored) reach the log-channel message and the requester's DM about it: read from OneSignal
with one request per notification, `counters_after` after it went out (an hour in production),
paced within OneSignal's view limit of one request a second per app, kept in the send's row,
and told even by a process other than the one that sent it."""

import asyncio
import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from storage import workspaces
from storage.models import OutboxMessage, OutboxState, Send, SendState, utcnow
from tests.fakes.blockkit import message_problems
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import DEFAULT_TEAM_ID, FakeSlack
from tests.scenario.sendkit import (
    ALICE,
    FAST,
    LOG_CHANNEL,
    SEGMENT,
    all_sends,
    dm_to,
    ensure_workspace,
    only_send,
    serve_sending,
    set_log_channel,
    settings,
    text_of,
    wait_for_state,
)

AFTER = 2.0  # seconds after it went out that the counters are read (an hour in production)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    policy = dataclasses.replace(FAST, counters_after=AFTER)
    async with serve_sending(serve_pushops, config, database, keyring, policy=policy) as running:
        await ensure_workspace(database)
        await set_log_channel(database)
        fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
        yield running


def _views(fake: FakeOneSignal, nid: str | None) -> list[Any]:
    """The view notification requests the fake received for `nid`."""
    assert nid is not None
    return [r for r in fake.requests_to("GET", f"/notifications/{nid}")]


def _final_line(fake: FakeOneSignal, nid: str | None) -> str:
    """What a person reads of the notification's counters as the fake OneSignal has them."""
    assert nid is not None
    n = fake.notifications[nid]
    return (
        f"delivered {n['successful']:,} · confirmed received {n['received']:,} · "
        f"clicked {n['converted']:,} · failed (unsubscribed) {n['failed']:,} · "
        f"errored {n['errored']:,}"
    )


def _final_block(blocks: list[dict[str, Any]]) -> str:
    [block] = [b for b in blocks if b.get("block_id") == const.BLOCK_FINAL_NUMBERS]
    return str(block["elements"][0]["text"])


async def _log_update_with_numbers(fake_slack: FakeSlack, within: float = AFTER + 10) -> Any:
    return await fake_slack.wait_for(
        "chat.update",
        timeout=within,
        where=lambda c: (
            c.args["channel"] == LOG_CHANNEL
            and any(b.get("block_id") == const.BLOCK_FINAL_NUMBERS for b in c.args["blocks"])
        ),
    )


async def _counters_row(database: Any, send_id: Any) -> OutboxMessage | None:
    """The outbox row owing the send's final counters, once their moment came."""
    async with database.sessions() as session:
        query = sa.select(OutboxMessage).where(OutboxMessage.key == f"counters:{send_id}")
        return (await session.scalars(query)).one_or_none()


def _state(row: OutboxMessage | None) -> OutboxState | None:
    return None if row is None else row.state


async def _sent_now(app: Any, database: Any, text: str) -> Send:
    """ALICE sends `text` to the segment now; the send once it went out (one, the only)."""
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "{text}"')
    assert "was sent" in text_of(await sent.reply())
    return await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)


async def test_a_send_answered_in_place_gets_its_final_counters_in_the_log_and_a_dm(
    app, fake_slack, fake_onesignal, database
):
    send = await _sent_now(app, database, "Release 2.0 is out")
    nid = send.notification_id
    assert send.finished_at is not None and send.counters_due_at is not None  # set with its end
    assert send.counters_due_at - send.finished_at == timedelta(seconds=AFTER)
    assert await _counters_row(database, send.id) is None  # no row until then
    fake_onesignal.complete_delivery(nid)  # OneSignal finishes before the counters are read

    update = await _log_update_with_numbers(fake_slack)

    logged = (await only_send(database)).slack_messages["log"]
    assert update.args["ts"] == logged["ts"]  # the announcement, updated in place
    said = _final_block(update.args["blocks"])
    assert said.startswith("*Final numbers* from OneSignal, read ")
    assert said.endswith(_final_line(fake_onesignal, nid)), said
    assert "delivered 540 · confirmed received 540 · clicked 54" in said  # 600 reachable
    assert message_problems(update.args["text"], update.args["blocks"]) == (None, [])
    dm = await fake_slack.wait_for("chat.postMessage", timeout=5, where=dm_to(ALICE))
    assert dm.args["text"].startswith(f"Final numbers of `{send.short_id}`")
    assert _final_line(fake_onesignal, nid) in dm.args["text"]
    assert _final_line(fake_onesignal, nid) in _final_block(dm.args["blocks"])
    assert len(_views(fake_onesignal, nid)) == 1  # one request for the send
    row = await only_send(database)
    [batch] = row.batches
    assert batch["counters"]["successful"] == 540 and batch["counters"]["converted"] == 54
    assert batch["counters"]["completed_at"] is not None
    assert _state(await _counters_row(database, send.id)) == OutboxState.DONE
    assert row.counters_due_at is None  # owed once
    await asyncio.sleep(0.5)  # nothing reads it again
    assert len(_views(fake_onesignal, nid)) == 1


async def test_the_requesters_went_out_dm_is_updated_in_place_with_the_numbers(
    app, fake_slack, fake_onesignal, database
):
    scheduled = await app.post_command('send --yes --in 1s --user cust-1 "See you"')
    assert "is scheduled" in text_of(await scheduled.reply())
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    fake_onesignal.complete_delivery(send.notification_id)
    went_out = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert "was sent" in went_out.args["text"]

    channel = went_out.args["channel"]
    update = await fake_slack.wait_for(
        "chat.update", timeout=AFTER + 10, where=lambda c: c.args["channel"] == channel
    )

    async with database.sessions() as session:
        query = sa.select(OutboxMessage).where(
            OutboxMessage.send_id == send.id, OutboxMessage.purpose == "delivered"
        )
        told = (await session.scalars(query)).one()
    assert (update.args["channel"], update.args["ts"]) == (told.channel, told.ts)
    assert _final_line(fake_onesignal, send.notification_id) in _final_block(update.args["blocks"])
    assert "was sent" in update.args["text"]  # the DM as it was, with the numbers added
    assert message_problems(update.args["text"], update.args["blocks"]) == (None, [])
    assert len(fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))) == 1
    assert len(_views(fake_onesignal, send.notification_id)) == 1


async def test_counters_of_sends_going_out_together_are_read_a_second_apart(
    app, fake_slack, fake_onesignal, database
):
    for n in range(3):
        sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "Wave {n}"')
        assert "was sent" in text_of(await sent.reply())
    sends = [
        await wait_for_state(database, s.short_id, SendState.SENT)
        for s in await all_sends(database)
    ]
    for send in sends:
        fake_onesignal.complete_delivery(send.notification_id)

    await fake_slack.wait_for(
        "chat.update",
        timeout=AFTER + 15,
        count=3,
        where=lambda c: any(
            b.get("block_id") == const.BLOCK_FINAL_NUMBERS for b in c.args["blocks"]
        ),
    )

    reads = sorted(r.time for s in sends for r in _views(fake_onesignal, s.notification_id))
    assert len(reads) == 3  # one per send
    gaps = [later - earlier for earlier, later in zip(reads, reads[1:], strict=False)]
    assert min(gaps) >= 0.95, gaps  # OneSignal's view limit: one request a second per app


async def test_a_notification_onesignal_no_longer_has_shows_no_numbers(
    app, fake_slack, fake_onesignal, database
):
    send = await _sent_now(app, database, "Gone soon")
    nid = send.notification_id
    fake_onesignal.faults.statuses([404], method="GET", path=f"/notifications/{nid}")

    deadline = time.monotonic() + AFTER + 10
    while _state(await _counters_row(database, send.id)) != OutboxState.DONE:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    assert len(_views(fake_onesignal, send.notification_id)) == 1  # a 404 is not asked again
    assert "counters" not in (await only_send(database)).batches[0]
    updates = fake_slack.calls_to("chat.update", where=lambda c: c.args["channel"] == LOG_CHANNEL)
    assert not any("Final numbers" in text_of(u.args) for u in updates)
    assert not any(
        "Final numbers" in c.args["text"]
        for c in fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))
    )


USERS = [f"cust-{i:04d}" for i in range(2_001)]  # 2,000 ids a call: two notifications


async def test_a_send_in_two_batches_reads_each_notification_once_and_shows_the_sum(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    for user in USERS:
        fake_onesignal.add_user(fake_onesignal.app.id, user)
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID)
    assert default is not None
    stored = await storage_factory.send(
        default,
        requester_id=ALICE,
        audience={"external_ids": USERS},
        due_at=utcnow() + timedelta(milliseconds=200),
    )
    send = await wait_for_state(database, stored.short_id, SendState.SENT)
    first, second = (batch["notification_id"] for batch in send.batches)
    fake_onesignal.complete_delivery(first)
    fake_onesignal.complete_delivery(second)

    dm = await fake_slack.wait_for(
        "chat.update",
        timeout=AFTER + 10,
        where=lambda c: (
            any(b.get("block_id") == const.BLOCK_FINAL_NUMBERS for b in c.args["blocks"])
            and c.args["channel"] != LOG_CHANNEL
        ),
    )

    ones = [fake_onesignal.notifications[nid] for nid in (first, second)]
    delivered = sum(n["successful"] for n in ones)
    assert delivered == 2_001 - sum(n["failed"] for n in ones) and delivered > 1_800
    assert f"delivered {delivered:,} · " in _final_block(dm.args["blocks"])
    assert [len(_views(fake_onesignal, nid)) for nid in (first, second)] == [1, 1]
    batches = (await only_send(database)).batches
    assert [b["counters"]["successful"] for b in batches] == [n["successful"] for n in ones]


async def test_counters_owed_by_a_process_that_stopped_are_read_by_the_next(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    after = 8.0  # longer than a stopping drainer goes on delivering what falls due
    policy = dataclasses.replace(FAST, counters_after=after)
    async with serve_sending(serve_pushops, config, database, keyring, policy=policy) as first:
        await ensure_workspace(database)
        await set_log_channel(database)
        sent = await first.post_command(f'send --yes --segment "{SEGMENT}" "Before a restart"')
        assert "was sent" in text_of(await sent.reply())
        send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    fake_onesignal.complete_delivery(send.notification_id)
    assert _views(fake_onesignal, send.notification_id) == []  # the first process stopped first
    owed = await only_send(database)
    assert owed.counters_due_at is not None and await _counters_row(database, send.id) is None

    async with serve_sending(serve_pushops, config, database, keyring, policy=policy):
        update = await _log_update_with_numbers(fake_slack, within=after + 10)

    assert _final_line(fake_onesignal, send.notification_id) in _final_block(update.args["blocks"])
    assert len(_views(fake_onesignal, send.notification_id)) == 1
    assert _state(await _counters_row(database, send.id)) == OutboxState.DONE
