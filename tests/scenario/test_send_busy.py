"""`/push send` when PushOps is busy, through the real door: a long read never holds a send up,
a database held by another writer gets a clear "busy, nothing stored" instead of an apology,
Slack is asked about the requester once, a refusal from Slack is not remembered, heavy work
after the ack waits for a place while `/push cancel` never does."""

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from storage.models import Send, SendState
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.busy import held_by_another_writer
from tests.scenario.sendkit import (
    SEGMENT,
    all_sends,
    creates,
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


async def test_a_send_goes_out_while_a_long_read_is_open(app, fake_onesignal, database):
    async with database.sessions() as reader:  # an audit export, a long /push list...
        await reader.execute(sa.select(Send))

        sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

        reply = await sent.reply(timeout=10)
    assert sent.response.status_code == 200
    assert "was sent" in text_of(reply), text_of(reply)
    [send] = await all_sends(database)
    assert send.state == SendState.SENT and len(creates(fake_onesignal)) == 1


async def test_a_send_meeting_a_busy_database_is_refused_and_nothing_is_stored(
    app, fake_onesignal, database
):
    async with held_by_another_writer(database):
        sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

        reply = await sent.reply(timeout=10)

    assert sent.response.status_code == 200
    assert "PushOps is busy" in reply["text"] and "nothing was stored" in reply["text"]
    assert "Sorry, something went wrong" not in reply["text"]
    assert await all_sends(database) == []
    assert creates(fake_onesignal) == []


async def test_slack_is_asked_once_about_a_new_requester(app, fake_slack, database):
    sent = await app.post_command(f'send --segment "{SEGMENT}" Hello')

    await sent.reply()
    assert len(fake_slack.calls_to("users.info")) == 1  # the admin flag and the zone at once


async def test_a_zone_slack_would_not_give_is_asked_again_next_time(app, fake_slack, database):
    fake_slack.fail("users.info", "ratelimited")
    first = await app.post_command(f'send --at "tomorrow 9am" --segment "{SEGMENT}" One')
    await first.reply()

    second = await app.post_command(f'send --at "tomorrow 9am" --segment "{SEGMENT}" Two')

    await second.reply()
    assert [send.timezone for send in await all_sends(database)] == ["UTC", "Europe/Berlin"]


async def test_previews_wait_for_a_place_and_cancel_never_does(app, fake_onesignal, database):
    app.services.admission.limit = 2
    estimates = fake_onesignal.faults.hold(method="POST", path="/notifications/count-unsaved")
    first = [await app.post_command(f'send --segment "{SEGMENT}" P{n}') for n in (1, 2)]
    for _ in range(500):  # until both places are taken, waiting for OneSignal
        if estimates.arrivals >= 2:
            break
        await asyncio.sleep(0.01)
    third = await app.post_command(f'send --segment "{SEGMENT}" P3')
    drafts = await all_sends(database)

    brake = await app.post_command(f"cancel {drafts[0].short_id}")

    stopped = await brake.reply()
    assert "before it was sent" in stopped["text"]
    assert estimates.arrivals == 2  # the third preview still waits for a place
    estimates.release()
    previews = [await sent.reply() for sent in (*first, third)]
    assert all("Preview of" in text_of(preview) for preview in previews)
    assert (await wait_for_state(database, drafts[0].short_id, SendState.CANCELLED)).id


async def test_a_sender_role_given_in_setup_counts_at_once(app, fake_slack, database):
    fake_slack.add_user("U0BOB")
    fake_slack.add_user("U0CAROL")
    before = await app.post_command(f'send --segment "{SEGMENT}" Hi', user="U0BOB")
    assert "Preview of" in text_of(await before.reply())  # nobody is a sender yet: anyone may

    await _give_role(app, fake_slack, "sender", "U0CAROL")

    refused = await app.post_command(f'send --segment "{SEGMENT}" Hi', user="U0BOB")
    assert "Only PushOps senders can send" in (await refused.reply())["text"]
    allowed = await app.post_command(f'send --segment "{SEGMENT}" Hi', user="U0CAROL")
    assert "Preview of" in text_of(await allowed.reply())


async def _give_role(app, fake_slack, role, user):
    """Alice gives `role` to `user` in the setup form, as Slack drives it."""
    await app.post_command("setup")
    opened = await fake_slack.wait_for("views.open")
    field = const.ACTION_SETUP_FIELD
    values: dict[str, dict[str, Any]] = {
        const.BLOCK_SETUP_ROLE_CHANGE: {
            field: {"type": "radio_buttons", "selected_option": {"value": "give"}}
        },
        const.BLOCK_SETUP_ROLE: {
            field: {"type": "static_select", "selected_option": {"value": role}}
        },
        const.BLOCK_SETUP_ROLE_USERS: {
            field: {"type": "multi_users_select", "selected_users": [user]}
        },
        const.BLOCK_SETUP_ROLE_GROUPS: {field: {"type": "plain_text_input", "value": ""}},
    }
    payload = signing.view_submission(
        callback_id=const.CALLBACK_SETUP_ROLES,
        user_id="U0ALICE",
        team_id=DEFAULT_TEAM_ID,
        values=values,
        view_id=str(opened.args.get("view_id") or "V0SETUP"),
    )
    saved = await app.post_action(payload)
    assert "now holds the" in str(saved.json()), saved.text
