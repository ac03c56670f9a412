"""`/push send` through the real door: preview and its buttons, `--yes`, `--test`, schedules that
fire once with a DM and an updated log message, the ack never waiting for OneSignal, and one
clear refusal per kind of bad input that writes nothing."""

import asyncio
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import const
from storage.models import SendState
from tests.fakes.slack import RESPONSE_URL
from tests.scenario.sendkit import (
    ALICE,
    LOG_CHANNEL,
    SEGMENT,
    all_sends,
    audit_actions,
    buttons,
    click,
    creates,
    dm_to,
    only_send,
    serve_sending,
    set_log_channel,
    settings,
    text_of,
    wait_for_state,
)
from tests.scenario.workspace import onesignal_settings


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def test_a_send_is_previewed_with_its_reach_and_nothing_goes_out(
    app, fake_onesignal, database
):
    sent = await app.post_command(f'send --segment "{SEGMENT}" --title Release "Version 2 is out"')

    assert sent.response.status_code == 200
    reply = await sent.reply()
    send = await only_send(database)
    assert send.state == SendState.DRAFT
    text = text_of(reply)
    assert f"Preview of `{send.short_id}`" in text
    assert "Reaches about 600 subscriptions now." in text
    assert f"segment {SEGMENT}" in text and "Version 2 is out" in text
    found = buttons(reply["blocks"])
    assert found[const.ACTION_SEND_CONFIRM]["value"] == str(send.id)
    assert found[const.ACTION_SEND_DISCARD]["value"] == str(send.id)
    assert creates(fake_onesignal) == []


async def test_send_on_the_preview_sends_once_and_replaces_it(app, fake_onesignal, database):
    sent = await app.post_command(f'send --segment "{SEGMENT}" "Version 2 is out"')
    await sent.reply()
    send = await only_send(database)

    clicked = await click(app, const.ACTION_SEND_CONFIRM, str(send.id))

    answer = await app.fake.wait_for_reply(clicked)
    [request] = creates(fake_onesignal)
    assert request.json["idempotency_key"] == str(send.id)
    assert request.json["included_segments"] == [SEGMENT]
    assert request.json["contents"] == {"en": "Version 2 is out"}
    assert answer["replace_original"] is True
    done = await wait_for_state(database, send.short_id, SendState.SENT)
    assert f"`{send.short_id}`" in text_of(answer) and "was sent" in text_of(answer)
    assert f"OneSignal `{done.notification_id}`" in text_of(answer)
    assert "(07:" in text_of(answer) or "UTC)" in text_of(answer)  # both zones


async def test_a_second_click_on_send_does_not_send_again(app, fake_onesignal, database):
    sent = await app.post_command(f'send --segment "{SEGMENT}" Hello')
    await sent.reply()
    send = await only_send(database)

    first, second = await asyncio.gather(
        click(app, const.ACTION_SEND_CONFIRM, str(send.id)),
        click(app, const.ACTION_SEND_CONFIRM, str(send.id)),
    )

    await wait_for_state(database, send.short_id, SendState.SENT)
    answers = [await app.fake.wait_for_reply(url) for url in (first, second)]
    assert len(creates(fake_onesignal)) == 1
    assert any("already answered" in text_of(a) for a in answers)


async def test_cancel_on_the_preview_drops_the_draft(app, fake_onesignal, database):
    sent = await app.post_command(f'send --segment "{SEGMENT}" Hello')
    await sent.reply()
    send = await only_send(database)

    clicked = await click(app, const.ACTION_SEND_DISCARD, str(send.id))

    answer = await app.fake.wait_for_reply(clicked)
    assert "nothing was sent" in text_of(answer)
    assert (await only_send(database)).state == SendState.CANCELLED
    assert creates(fake_onesignal) == []


async def test_someone_else_cannot_press_send_on_a_preview(app, fake_slack, database):
    fake_slack.add_user("U0MALLORY", name="mallory")
    sent = await app.post_command(f'send --segment "{SEGMENT}" Hello')
    await sent.reply()
    send = await only_send(database)

    clicked = await click(app, const.ACTION_SEND_CONFIRM, str(send.id), user="U0MALLORY")

    answer = await app.fake.wait_for_reply(clicked)
    assert f"Only <@{ALICE}>" in answer["text"] and answer["replace_original"] is False
    assert (await only_send(database)).state == SendState.DRAFT


async def test_yes_sends_at_once_and_answers_with_both_ids(app, fake_onesignal, database):
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

    reply = await sent.reply()
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    assert f"`{send.short_id}`" in text_of(reply) and "was sent" in text_of(reply)
    assert f"OneSignal `{send.notification_id}`" in text_of(reply)
    assert len(creates(fake_onesignal)) == 1
    # answered in place: no direct message repeats it
    assert app.fake.calls_to("chat.postMessage", where=dm_to(ALICE)) == []


async def test_the_requesters_zone_is_asked_of_slack_once(app, fake_slack, database):
    first = await app.post_command(f'send --segment "{SEGMENT}" One')
    await first.reply()
    asked = len(fake_slack.calls_to("users.info"))

    second = await app.post_command(f'send --segment "{SEGMENT}" Two')

    await second.reply()
    assert asked >= 1 and len(fake_slack.calls_to("users.info")) == asked


async def test_the_ack_does_not_wait_for_onesignal(app, fake_onesignal, database):
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")

    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

    # Slack has its answer while OneSignal still holds the create request, and the row is
    # already stored: a send the user was told about is never lost.
    assert sent.response.status_code == 200
    assert sent.replies() == []
    assert await asyncio.to_thread(hold.arrived.wait, 5)
    stored = await only_send(database)
    assert stored.state in (SendState.SCHEDULED, SendState.SENDING)
    hold.release()
    reply = await sent.reply()
    assert f"`{stored.short_id}`" in text_of(reply) and "was sent" in text_of(reply)


async def test_a_send_that_went_out_is_never_answered_with_try_again(
    app, fake_slack, fake_onesignal, database
):
    fake_slack.fail(RESPONSE_URL, "expired_url", status=404)  # the answer "was sent" is refused

    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

    told = await sent.reply(count=2)
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    text = text_of(told)
    assert f"while handling `{send.short_id}`" in text and f"/push status {send.short_id}" in text
    assert "try again" not in text.lower() and "Reference `" in text
    assert len(creates(fake_onesignal)) == 1


async def test_a_scheduled_send_fires_once_with_a_dm_and_an_updated_log_message(
    app, fake_slack, fake_onesignal, database
):
    await set_log_channel(database)

    sent = await app.post_command(f'send --yes --in 2s --segment "{SEGMENT}" Soon')

    reply = await sent.reply()
    send = await only_send(database)
    assert f"`{send.short_id}` is scheduled" in text_of(reply)
    assert f"/push cancel {send.short_id}" in text_of(reply)
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == LOG_CHANNEL
    )
    assert creates(fake_onesignal) == []
    done = await wait_for_state(database, send.short_id, SendState.SENT)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"`{send.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
    assert done.notification_id in dm.args["text"]
    update = await fake_slack.wait_for(
        "chat.update", where=lambda c: "was sent" in c.args.get("text", "")
    )
    log_message = (await only_send(database)).slack_messages["log"]  # kept once Slack answered
    assert (update.args["channel"], update.args["ts"]) == (LOG_CHANNEL, log_message["ts"])
    assert (
        len(
            fake_slack.calls_to(
                "chat.postMessage", where=lambda c: c.args.get("channel") == LOG_CHANNEL
            )
        )
        == 1
    )
    await asyncio.sleep(0.6)  # a sweep later, still one notification
    assert len(creates(fake_onesignal)) == 1
    assert len(fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))) == 1


# --- bad input: a clear ephemeral answer, nothing written -------------------------------------


async def assert_refused(sent: Any, database: Any, *expected: str) -> Any:
    reply = await sent.reply()
    assert sent.response.status_code == 200
    assert reply["response_type"] == "ephemeral"
    for words in expected:
        assert words in reply["text"], reply["text"]
    assert await all_sends(database) == []
    assert "send.created" not in await audit_actions(database)
    return reply


@pytest.mark.parametrize(
    ("text", "problem", "fix"),
    [
        ("send Hello", "No audience", "add --segment NAME or --user ID"),
        (f'send --segment "{SEGMENT}"', "The message is empty", "Put the text after the options"),
        (
            f'send --app nope --segment "{SEGMENT}" Hi',
            "There is no OneSignal app named `nope` here.",
            "Pick one with `--app NAME`: `default`.",
        ),
        (
            f'send --at "2020-01-01 09:00" --segment "{SEGMENT}" Hi',
            "That time has passed",
            "Pick a later time",
        ),
        (
            f'send --at "2030-01-01 09:00" --segment "{SEGMENT}" Hi',
            "That is more than 30 days ahead: 2030-01-01 09:00.",
            "PushOps schedules sends at most 30 days ahead; the latest you can schedule is ",
        ),
        (f'send --in soon --segment "{SEGMENT}" Hi', "can't read 'soon' as a delay", "10m"),
        (f'send --segment "{SEGMENT}" "Hello', 'a " that is never closed', "Close the quote"),
        (f'send --colour red --segment "{SEGMENT}" Hi', "Unknown option --colour", "Usage"),
        (
            f'send --segment "{SEGMENT}" --title "{"T" * 5000}" Hi',
            "That command is 5",
            "the limit is 4000",
        ),
        (
            f'send --segment "{SEGMENT}" --title "{"T" * 3600}" Hi',
            "The notification is too long",
            "Shorten it",
        ),
        (f'send --segment "{SEGMENT}" --url ftp://x Hi', "is not a web address", "https://"),
    ],
    ids=[
        "no audience",
        "empty message",
        "unknown app",
        "past --at",
        "--at too far ahead",
        "unparseable --in",
        "stray quote",
        "unknown option",
        "5000-character title",
        "too long for a push",
        "bad link",
    ],
)
async def test_bad_send_input_is_answered_and_writes_nothing(
    app, fake_onesignal, database, text, problem, fix
):
    sent = await app.post_command(text)

    await assert_refused(sent, database, problem, fix)
    assert creates(fake_onesignal) == []


async def test_a_send_in_a_workspace_without_apps_says_how_to_add_one(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = onesignal_settings(
        fake_slack, fake_onesignal, tmp_path, onesignal_app_id=None, onesignal_api_key=None
    )
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        sent = await running.post_command(f'send --yes --segment "{SEGMENT}" Hi')

        reply = await assert_refused(sent, database)

    assert reply["text"].startswith(
        "No OneSignal app is set up in this workspace yet: an admin adds one with `/push setup`.\n"
    )
    assert creates(fake_onesignal) == []


async def test_a_test_send_without_a_linked_id_says_how_to_link_one(app, database):
    sent = await app.post_command("send --test --yes Hello me")

    await assert_refused(sent, database, "you have none linked yet", "/push me YOUR_EXTERNAL_ID")


async def test_a_test_send_goes_only_to_the_requesters_linked_id(app, fake_onesignal, database):
    linked = await app.post_command("me ext-alice")
    await linked.reply()

    sent = await app.post_command("send --test --yes Hello me")

    reply = await sent.reply()
    [request] = creates(fake_onesignal)
    assert request.json["include_aliases"] == {"external_id": ["ext-alice"]}
    assert "included_segments" not in request.json
    send = await only_send(database)
    assert send.is_test and "test send" in text_of(reply)


async def test_times_are_read_and_shown_in_the_requesters_zone_and_in_utc(app, database):
    sent = await app.post_command(f'send --yes --at "tomorrow 9am" --segment "{SEGMENT}" Hi')

    reply = await sent.reply()
    send = await only_send(database)
    assert send.timezone == "Europe/Berlin"  # from users.info
    assert send.due_at is not None and send.due_at.astimezone(ZoneInfo("Europe/Berlin")).hour == 9
    assert re.search(r"09:00 CES?T \(0[78]:00 UTC\)", text_of(reply)), text_of(reply)


async def test_a_refused_send_is_answered_with_onesignals_reason(app, fake_onesignal, database):
    fake_onesignal.faults.statuses([400], method="POST", path="/notifications")

    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

    reply = await sent.reply()
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.FAILED)
    assert f"`{send.short_id}`" in text_of(reply) and "failed" in text_of(reply)
    assert "OneSignal refused it (HTTP 400)" in text_of(reply)


async def test_when_slack_is_slow_to_say_who_asks_the_send_is_stored_after_the_ack(
    app, fake_slack, fake_onesignal, database
):
    fake_slack.delay("users.info", 1.1)  # longer than the lookup may take before the ack

    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')

    assert sent.response.status_code == 200
    assert await all_sends(database) == []  # Slack got its ack before the lookup ended
    reply = await sent.reply(timeout=10)
    send = await only_send(database)
    assert f"`{send.short_id}`" in text_of(reply) and "was sent" in text_of(reply)
    assert len(creates(fake_onesignal)) == 1
