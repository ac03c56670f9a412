"""What PushOps owes Slack is kept until Slack takes it: a message Slack refuses for good is
recorded with Slack's reason, shown in `/push status`, and not tried again without end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import OutboxMessage, OutboxState
from tests.fakes.slack import FakeSlack
from tests.scenario.sendkit import (
    ALICE,
    ensure_workspace,
    only_send,
    serve_sending,
    set_log_channel,
    settings,
    text_of,
)

GONE = "C0GONE"  # a log channel deleted in Slack after it was chosen


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await ensure_workspace(database)
        fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
        yield running


async def _outbox(database: Database) -> list[OutboxMessage]:
    async with database.sessions() as session:
        query = sa.select(OutboxMessage).order_by(OutboxMessage.created_at)
        return list(await session.scalars(query))


async def _settled(database: Database, purpose: str, seconds: float = 10.0) -> OutboxMessage:
    """The outbox row of `purpose` once it is no longer pending."""
    deadline = time.monotonic() + seconds
    while True:
        rows = [row for row in await _outbox(database) if row.purpose == purpose]
        if rows and rows[0].state != OutboxState.PENDING:
            return rows[0]
        assert time.monotonic() < deadline, f"still pending: {rows}"
        await asyncio.sleep(0.05)


def _posts_to(fake_slack: FakeSlack, channel: str) -> list[Any]:
    return fake_slack.calls_to("chat.postMessage", where=lambda c: c.args["channel"] == channel)


async def test_a_log_channel_slack_no_longer_knows_is_shown_in_status_and_not_retried(
    app, fake_slack, database
):
    await set_log_channel(database, GONE)
    fake_slack.fail(
        "chat.postMessage", "channel_not_found", times=100, where=lambda a: a["channel"] == GONE
    )

    sent = await app.post_command('send --yes --user cust-1 "Doors open at 9"')
    assert "was sent" in text_of(await sent.reply())
    send = await only_send(database)
    refused = await _settled(database, "log")
    tried = len(_posts_to(fake_slack, GONE))
    await asyncio.sleep(2.5)  # two polls of the drainer later
    status = await app.post_command(f"status {send.short_id}")
    reply = text_of(await status.reply())

    assert refused.state == OutboxState.REFUSED and refused.last_error == "channel_not_found"
    assert 1 <= tried <= 2  # the announcement, and the final state once more at most
    assert len(_posts_to(fake_slack, GONE)) == tried  # not tried again since
    assert f"The log channel's message about it in <#{GONE}> was not posted" in reply
    assert "Slack answered `channel_not_found`" in reply
    assert (
        fake_slack.calls_to("chat.postMessage", where=lambda c: c.args["channel"] == "D0ALICE")
        == []
    )
    assert (await _outbox(database))[0].send_id == send.id


async def test_a_dm_slack_rate_limits_is_sent_once_after_retry_after(app, fake_slack, database):
    fake_slack.fail(
        "chat.postMessage",
        "ratelimited",
        status=429,
        headers={"Retry-After": "1"},
        where=lambda a: a["channel"] == "D0ALICE",
    )

    sent = await app.post_command('send --yes --in 1s --user cust-1 "Doors open at 9"')
    assert "is scheduled" in text_of(await sent.reply())
    limited = await fake_slack.wait_for("chat.postMessage", timeout=10)
    at_429 = time.monotonic()
    told = await fake_slack.wait_for("chat.postMessage", count=2, timeout=10)
    waited = time.monotonic() - at_429
    row = await _settled(database, "delivered")

    assert limited.args == told.args and "was sent" in told.args["text"]
    assert waited >= 0.9  # Retry-After: 1, waited out before the same call again
    assert row.state == OutboxState.DONE and row.destination == ALICE
    facts = row.payload["facts"]  # what a digest names the send by, without rendering it again
    send = await only_send(database)
    assert facts["short_id"] == send.short_id and facts["state"] == "sent"
    assert facts["label"] == "Doors open at 9" and facts["requester_id"] == ALICE
    assert send.finished_at is not None and facts["ended_at"] == send.finished_at.isoformat()
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
