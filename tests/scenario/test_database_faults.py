"""A database that refuses writes, through the real door: a send it refused to store says that
nothing was stored and nothing will be sent; a send OneSignal accepted whose result it refused
is told as it is ("OneSignal has it; recording it"), never as failed, and ends `sent` once the
database takes writes again; `/readyz` answers 503 meanwhile.

The database refuses for real (triggers on every table, see `tests.scenario.busy`), on SQLite
and on PostgreSQL alike.
"""

import asyncio
from dataclasses import replace

import pytest

from storage.models import SendState
from tests.scenario.busy import refusing_writes
from tests.scenario.sendkit import (
    ALICE,
    FAST,
    SEGMENT,
    all_sends,
    creates,
    dm_to,
    only_send,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)

# A lease longer than the outage, so the send stays this process's own throughout.
POLICY = replace(FAST, lease=10.0)

UNTRUE_WHEN_SENT = ("try again", "failed", "not sent", "sorry", "nothing was sent")


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring, policy=POLICY) as running:
        yield running


async def test_readyz_is_503_while_the_database_refuses_writes_and_200_after(app, database):
    before = await app.http.get("/readyz")
    async with refusing_writes(database):
        during = await app.http.get("/readyz")
    after = await app.http.get("/readyz")

    assert before.status_code == 200
    assert during.status_code == 503
    assert during.json() == {"status": "unavailable", "reason": "WriteRefused"}
    assert after.status_code == 200 and after.json() == {"status": "ready"}


async def test_a_send_the_database_refuses_to_store_says_nothing_was_stored(
    app, fake_onesignal, database
):
    async with refusing_writes(database):
        sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')
        reply = await sent.reply(timeout=10)

    assert sent.response.status_code == 200
    text = text_of(reply)
    assert "nothing was stored" in text and "nothing will be sent" in text, text
    assert "Sorry, something went wrong" not in text
    assert await all_sends(database) == []
    assert creates(fake_onesignal) == []


async def test_a_series_the_database_refuses_to_store_says_nothing_was_stored(
    app, fake_onesignal, database
):
    async with refusing_writes(database):
        sent = await app.post_command(f'send --yes --every day --at 09:00 --segment "{SEGMENT}" Hi')
        reply = await sent.reply(timeout=10)

    text = text_of(reply)
    assert "nothing was stored" in text and "nothing will be sent" in text, text
    assert "Sorry, something went wrong" not in text
    assert await all_sends(database) == []
    assert creates(fake_onesignal) == []


async def test_a_result_the_database_refuses_is_told_as_it_is_and_recorded_once_it_is_back(
    app, fake_onesignal, fake_slack, database
):
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')
    assert await asyncio.to_thread(hold.arrived.wait, 5)
    send = await only_send(database)

    async with refusing_writes(database):
        hold.release()  # OneSignal creates the notification; its id cannot be written down
        interim = await sent.reply(timeout=10)
        (notification,) = fake_onesignal.notifications.values()
        await asyncio.sleep(0.5)  # the result is kept and tried again meanwhile
        assert (await only_send(database)).state == SendState.SENDING
        assert len(sent.replies()) == 1

    final = await sent.reply(count=2, timeout=10)
    row = await wait_for_state(database, send.short_id, SendState.SENT)
    told = text_of(interim)
    assert f"OneSignal has `{send.short_id}` (notification {notification['id']})" in told, told
    assert "recording it" in told
    assert not [word for word in UNTRUE_WHEN_SENT if word in told.lower()], told
    assert f"`{send.short_id}`" in text_of(final) and "was sent" in text_of(final)
    assert row.notification_id == notification["id"]
    assert len(creates(fake_onesignal)) == 1 and len(fake_onesignal.notifications) == 1
    # Answered in place, so no DM; and nobody was told it failed anywhere.
    assert fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE)) == []
    assert len(sent.replies()) == 2
