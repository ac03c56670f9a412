"""Whatever someone types, every message about a send stays within Slack's Block Kit limits:
long audiences and long failure reasons are summarized in the preview, the approval request,
the log channel, the DMs, `/push status` and `/push list` (the fake Slack refuses anything
Slack would, and a refusal fails the test)."""

import re
from datetime import timedelta
from typing import Any

import pytest

from bot import const
from storage import workspaces
from storage.models import SendState, utcnow
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    LOG_CHANNEL,
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

LONG_NAMES = [f"Segment {i:02d} " + "x" * 89 for i in range(30)]  # 30 names of 100 characters
AMPERSAND_NAMES = [f"{i:02d} " + "&" * 125 for i in range(17)]  # 128 characters, 5 as sent


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await set_log_channel(database)
        yield running


def _in_channel(channel: str) -> Any:
    return lambda call: call.args.get("channel") == channel


def _summarized(text: str, names: list[str]) -> None:
    """`text` names the first segment (shortened if it alone is too long) and counts the ones
    it does not show instead of listing them all."""
    first = names[0].replace("&", "&amp;")[:40]
    found = re.search(rf"{len(names)} segments: {re.escape(first)}[^·]*, … and (\d+) more", text)
    assert found is not None, text[:600]
    assert 0 < int(found.group(1)) < len(names)
    assert names[-1].replace("&", "&amp;")[:40] not in text


@pytest.mark.parametrize("names", [LONG_NAMES, AMPERSAND_NAMES], ids=["30 long", "17 with &"])
async def test_a_send_to_many_long_segments_is_summarized_in_every_message(
    app, fake_slack, fake_onesignal, database, names
):
    for name in names:
        fake_onesignal.add_segment(fake_onesignal.app.id, name, size=10)
    await require_approvals(database, fake_slack)
    flags = " ".join(f'--segment "{name}"' for name in names)

    preview = await (await app.post_command(f"send {flags} Hello")).reply()
    send = await only_send(database)
    clicked = await click(app, const.ACTION_SEND_CONFIRM, str(send.id))
    requested = await app.fake.wait_for_reply(clicked)
    request = await fake_slack.wait_for("chat.postMessage", where=_in_channel(APPROVALS_CHANNEL))
    logged = await fake_slack.wait_for("chat.postMessage", where=_in_channel(LOG_CHANNEL))
    await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)
    await wait_for_state(database, send.short_id, SendState.SENT)
    # "approved" may come first, when the approval is answered before the delivery ends
    dm = await fake_slack.wait_for(
        "chat.postMessage",
        where=lambda call: dm_to(ALICE)(call) and "was sent" in call.args.get("text", ""),
    )
    status = await (await app.post_command(f"status {send.short_id}")).reply()
    listed = await (await app.post_command("list")).reply()

    assert f"Preview of `{send.short_id}`" in text_of(preview)
    assert "is waiting for approval" in text_of(requested)
    assert f"asks to send `{send.short_id}`" in text_of(request.args)
    assert "was sent" in dm.args["text"]
    for body in (preview, requested, request.args, logged.args, dm.args, status, listed):
        _summarized(text_of(body), names)
    [created] = creates(fake_onesignal)
    assert created.json["included_segments"] == names  # the send itself keeps every name


async def test_a_failure_naming_3000_unknown_users_is_summarized(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    ghosts = [f"ghost-{i:04d}" for i in range(3000)]
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID)
    assert default is not None
    send = await storage_factory.send(
        default,
        requester_id=ALICE,
        audience={"external_ids": ghosts},
        due_at=utcnow() + timedelta(seconds=1),
    )

    failed = await wait_for_state(database, send.short_id, SendState.FAILED)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    logged = await fake_slack.wait_for("chat.postMessage", where=_in_channel(LOG_CHANNEL))
    status = await (await app.post_command(f"status {send.short_id}")).reply()

    assert len(creates(fake_onesignal)) == 2  # two batches, both refused: nobody is known
    assert "2,000 ids were not found; first 20: ghost-0000, ghost-0001" in (failed.last_error or "")
    for body in (dm.args, logged.args, status):
        text = text_of(body)
        assert "3,000 users: ghost-0000" in text
        assert "2,000 ids were not found; first 20: ghost-0000" in text
        assert "1,000 ids were not found; first 20: ghost-2000" in text
        assert "ghost-2999" not in text


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("invalid_blocks", "`/push cancel {id}` withdraws it"),
        ("not_in_channel", "Invite me there (`/invite @PushOps`)"),
    ],
)
async def test_an_approval_request_slack_refuses_is_told_to_the_requester_with_slacks_reason(
    app, fake_slack, database, error, advice
):
    await require_approvals(database, fake_slack)
    fake_slack.fail(
        "chat.postMessage", error, where=lambda args: args.get("channel") == APPROVALS_CHANNEL
    )

    reply = await (await app.post_command('send --yes --segment "Active Users" Hello')).reply()
    send = await only_send(database)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))

    assert "is waiting for approval" in text_of(reply)
    assert (
        f"`{send.short_id}` is waiting for approval, but I could not post the approval request "
        f"in <#{APPROVALS_CHANNEL}>: Slack answered {error}."
    ) in dm.args["text"]
    assert advice.format(id=send.short_id) in dm.args["text"]
    assert send.state == SendState.PENDING_APPROVAL
