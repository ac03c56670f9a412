"""`/push status ID`: OneSignal's delivery counters per platform, and Refresh asking again."""

from typing import Any

import pytest

from bot import const
from storage.models import SendState
from tests.plugins.database import OTHER_TEAM
from tests.scenario.sendkit import (
    SEGMENT,
    buttons,
    click,
    only_send,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def _sent(app: Any, database: Any) -> Any:
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')
    await sent.reply()
    return await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)


async def test_status_shows_the_counters_per_platform_with_refresh(app, fake_onesignal, database):
    send = await _sent(app, database)
    fake_onesignal.advance_delivery(send.notification_id)

    sent = await app.post_command(f"status {send.short_id}")

    reply = await sent.reply()
    text = text_of(reply)
    assert f"`{send.short_id}`" in text and f"OneSignal `{send.notification_id}`" in text
    assert "*Total*: successful 180, failed 20" in text
    assert "*Android*: successful 180, failed 20" in text
    assert "Delivery still in progress" in text
    refresh = buttons(reply["blocks"])[const.ACTION_STATUS_REFRESH]
    assert refresh["value"] == send.short_id


async def test_refresh_asks_onesignal_again_and_replaces_the_reply(app, fake_onesignal, database):
    send = await _sent(app, database)
    sent = await app.post_command(f"status {send.notification_id}")
    await sent.reply()
    fake_onesignal.complete_delivery(send.notification_id)

    clicked = await click(app, const.ACTION_STATUS_REFRESH, send.notification_id)

    answer = await app.fake.wait_for_reply(clicked)
    assert answer["replace_original"] is True
    assert "successful 540, failed 60" in text_of(answer)
    assert "Delivery completed" in text_of(answer)


async def test_status_of_a_send_not_sent_yet_says_so(app, database):
    scheduled = await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" Later')
    await scheduled.reply()
    send = await only_send(database)

    sent = await app.post_command(f"status {send.short_id}")

    assert "Not sent yet (scheduled)." in text_of(await sent.reply())


async def test_status_of_an_unknown_or_foreign_id_is_refused(app, database, storage_factory):
    other_app = await storage_factory.app(OTHER_TEAM, make_default=True)
    theirs = await storage_factory.send(other_app, state=SendState.SENT)

    for ref in ("ZZZZZZ", theirs.short_id):
        sent = await app.post_command(f"status {ref}")
        reply = await sent.reply()
        assert f"No send `{ref}` in this workspace" in reply["text"]
        assert reply["response_type"] == "ephemeral"
