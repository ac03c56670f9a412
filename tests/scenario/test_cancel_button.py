"""The Cancel button: every message about a send that can still be stopped carries one, behind
Slack's confirm dialog; a click stops the send as `/push cancel` does, for whoever may stop it
(its requester, senders, responders, admins), and the message shows who stopped it and when."""

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from bot import const
from commands.access import forget_team
from storage import workspaces
from storage.models import MemberRole, SendState, utcnow
from tests.denials import wait_for_denials
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import OTHER_TEAM
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    LOG_CHANNEL,
    SEGMENT,
    all_sends,
    audit_actions,
    buttons,
    click,
    creates,
    dm_to,
    only_send,
    require_approvals,
    serve_sending,
    set_log_channel,
    settings,
    text_of,
    wait_for_state,
)

MEMBER = "U0MEMBER"  # a full member holding no role
RESPONDER = "U0ONCALL"  # on call: may stop any send, may not send


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        fake_slack.add_user(MEMBER)
        fake_slack.add_user(RESPONDER)
        await set_log_channel(database)
        yield running


async def _give(app: Any, database: Any, subject: str, role: MemberRole) -> None:
    async with database.sessions.begin() as session:
        await workspaces.add_member(
            session=session, team_id=DEFAULT_TEAM_ID, subject_id=subject, role=role, actor=ALICE
        )
    forget_team(app.services, DEFAULT_TEAM_ID)


async def _scheduled(app: Any, database: Any) -> tuple[Any, dict[str, Any]]:
    """Alice's send due in an hour, and the reply confirming it."""
    sent = await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" Later')
    reply = await sent.reply()
    return await only_send(database), reply


async def _log_post(fake_slack: Any, database: Any, send: Any, words: str) -> dict[str, Any]:
    """The log channel's message about `send` once it says `words` and its place is kept."""
    deadline = time.monotonic() + 30  # the outbox records where it posted after the post
    while time.monotonic() < deadline:
        found = [m for m in fake_slack.messages_in(LOG_CHANNEL) if words in text_of(m)]
        stored = await only_send(database)
        if found and stored.slack_messages.get("log", {}).get("ts") == found[-1]["ts"]:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no log message saying {words!r}: {fake_slack.messages_in(LOG_CHANNEL)}")


def _cancel_of(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return buttons(blocks)[const.ACTION_CANCEL_SEND]


async def test_every_message_about_a_stoppable_send_carries_a_confirmed_cancel(
    app, fake_slack, database
):
    await require_approvals(database, fake_slack)
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')
    reply = await sent.reply()
    send = await only_send(database)
    request = await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    log = await _log_post(fake_slack, database, send, "waiting for approval")
    status = await (await app.post_command(f"status {send.short_id}")).reply()

    for blocks in (reply["blocks"], request.args["blocks"], log["blocks"], status["blocks"]):
        cancel = _cancel_of(blocks)
        assert cancel["value"] == str(send.id)
        assert cancel["style"] == "danger"
        assert cancel["confirm"]["text"]["text"] == (
            f"Stop `{send.short_id}`? It will not go out; nobody receives it."
        )
        assert cancel["confirm"]["confirm"]["text"] == "Stop it"
    assert set(buttons(request.args["blocks"])) == {
        const.ACTION_APPROVE,
        const.ACTION_REJECT,
        const.ACTION_CANCEL_SEND,
    }


async def test_the_requester_stops_a_scheduled_send_from_its_confirmation(
    app, fake_slack, fake_onesignal, database
):
    send, reply = await _scheduled(app, database)
    assert _cancel_of(reply["blocks"])["value"] == str(send.id)

    clicked = await click(app, const.ACTION_CANCEL_SEND, str(send.id), user=ALICE)

    replaced = await app.fake.wait_for_reply(clicked)
    assert replaced["replace_original"] is True
    assert f"Stopped by <@{ALICE}> on " in text_of(replaced)
    assert f"Stopped `{send.short_id}` before it was sent: nobody received it." in text_of(replaced)
    assert const.ACTION_CANCEL_SEND not in buttons(replaced["blocks"])
    stopped = await only_send(database)
    assert stopped.state == SendState.CANCELLED
    assert "send.cancelled" in await audit_actions(database)
    log = await _log_post(fake_slack, database, send, "was cancelled")
    assert f"Stopped by <@{ALICE}> on " in text_of(log)
    assert buttons(log["blocks"]) == {}
    assert creates(fake_onesignal) == []
    assert fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE)) == []  # she was answered


async def test_a_responder_stops_a_send_going_out_from_the_log_channel(
    app, fake_slack, fake_onesignal, database
):
    await _give(app, database, RESPONDER, MemberRole.RESPONDER)
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Oops')
    await sent.reply()
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    log = await _log_post(fake_slack, database, send, "was sent")
    cancel = _cancel_of(log["blocks"])
    assert "OneSignal stops delivering it" in cancel["confirm"]["text"]["text"]

    clicked = await click(
        app, const.ACTION_CANCEL_SEND, cancel["value"], user=RESPONDER, channel=LOG_CHANNEL,
        message=log,
    )  # fmt: skip

    answer = await app.fake.wait_for_reply(clicked)
    assert f"Asked OneSignal to stop `{send.short_id}`" in answer["text"]
    assert answer["replace_original"] is False  # the log post is updated by its own path
    [delete] = fake_onesignal.requests_to("DELETE", f"/notifications/{send.notification_id}")
    assert delete.query["app_id"] == [fake_onesignal.app.id]
    assert fake_onesignal.notifications[send.notification_id]["canceled"] is True
    assert (await only_send(database)).state == SendState.CANCELLED
    updated = await _log_post(fake_slack, database, send, "was cancelled")
    assert updated["ts"] == log["ts"]
    assert f"Stopped by <@{RESPONDER}> on " in text_of(updated)
    assert buttons(updated["blocks"]) == {}
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"<@{RESPONDER}> cancelled `{send.short_id}`" in dm.args["text"]
    actions = await audit_actions(database)
    assert "send.cancel_at_onesignal" in actions and "send.cancelled" in actions


async def test_a_member_without_the_right_is_told_who_may_cancel(
    app, fake_slack, fake_onesignal, database
):
    send, reply = await _scheduled(app, database)

    clicked = await click(app, const.ACTION_CANCEL_SEND, str(send.id), user=MEMBER)

    answer = await app.fake.wait_for_reply(clicked)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert "You can cancel only your own sends" in answer["text"]
    assert "sender, responder or admin role" in answer["text"]
    assert (await only_send(database)).state == SendState.SCHEDULED
    [denied] = await wait_for_denials(database, 1, "cancel.denied")
    assert (denied.actor, denied.target, denied.details["why"]) == (
        MEMBER,
        f"send {send.short_id}",
        "not_own_send",
    )


async def test_a_forged_id_of_another_workspace_is_refused(
    app, fake_slack, database, storage_factory
):
    other_app = await storage_factory.app(OTHER_TEAM, make_default=True)
    later = utcnow() + timedelta(hours=1)  # the scheduler leaves it alone meanwhile
    theirs = await storage_factory.send(other_app, state=SendState.SCHEDULED, due_at=later)

    forged = await click(app, const.ACTION_CANCEL_SEND, str(theirs.id), user=ALICE)
    garbage = await click(app, const.ACTION_CANCEL_SEND, "not-a-send", user=ALICE)
    unknown = await click(app, const.ACTION_CANCEL_SEND, str(uuid.uuid4()), user=ALICE)

    for url in (forged, garbage, unknown):
        answer = await app.fake.wait_for_reply(url)
        assert answer["text"] == "That send is not known in this workspace."
        assert answer["replace_original"] is False
    [still] = await all_sends(database, OTHER_TEAM)
    assert still.state == SendState.SCHEDULED
    [denied] = await wait_for_denials(database, 1, "cancel.denied")  # repeats held back
    assert denied.actor == ALICE and denied.details["why"] == "unknown_send"


async def test_an_approver_who_may_not_cancel_is_refused_on_the_approval_request(
    app, fake_slack, database
):
    await require_approvals(database, fake_slack)  # BOB approves, holds no other role
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')
    await sent.reply()
    send = await only_send(database)

    clicked = await click(
        app, const.ACTION_CANCEL_SEND, str(send.id), user=BOB, channel=APPROVALS_CHANNEL
    )

    answer = await app.fake.wait_for_reply(clicked)
    assert "You can cancel only your own sends" in answer["text"]
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL
