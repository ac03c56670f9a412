"""`/push help` and unknown subcommands through the real /slack/events door."""

from typing import Any

from bot import const
from tests.fakes import signing
from tests.fakes.slack import RESPONSE_URL


def _reply_text(reply: dict[str, Any]) -> str:
    """Everything a user would read in a reply: its blocks' texts, or its text."""
    parts = []
    for block in reply.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text["text"])
        for element in block.get("elements") or []:
            if element.get("type") == "mrkdwn":
                parts.append(element["text"])
    return "\n".join(parts) or reply.get("text", "")


async def test_help_is_acked_and_answered_ephemerally_with_every_command(pushops, fake_slack):
    sent = await pushops.post_command("help")

    assert sent.response.status_code == 200
    assert sent.response.text == ""
    reply = await sent.reply()
    assert reply["response_type"] == "ephemeral"
    shown = _reply_text(reply)
    for name in const.SUBCOMMANDS:
        assert f"/push {name}" in shown
    assert "--segment NAME" in shown
    assert "nothing ever goes to everyone" in shown
    assert "(--at and --in: at most 30 days ahead)" in shown


async def test_unknown_subcommand_says_so_and_shows_help(pushops):
    sent = await pushops.post_command("frobnicate now")

    assert sent.response.status_code == 200
    shown = _reply_text(await sent.reply())
    assert "I don't know `/push frobnicate`" in shown
    assert "/push cancel ID" in shown


async def test_empty_command_shows_help(pushops):
    sent = await pushops.post_command("")

    shown = _reply_text(await sent.reply())
    assert "/push send" in shown


async def test_a_stray_quote_gets_a_clear_answer(pushops):
    sent = await pushops.post_command('send --segment Beta "Hello there')

    reply = await sent.reply()
    assert sent.response.status_code == 200
    assert 'has a " that is never closed' in reply["text"]


async def test_dismiss_button_deletes_the_reply(pushops, fake_slack):
    sent = await pushops.post_command("help")
    await sent.reply()
    click_url = fake_slack.new_response_url()
    payload = signing.block_actions(
        action_id=const.ACTION_DISMISS,
        user_id="U0ALICE",
        team_id="T0PUSHOPS",
        response_url=click_url,
        value="dismiss",
    )

    response = await pushops.post_action(payload)

    assert response.status_code == 200
    assert (await fake_slack.wait_for_reply(click_url))["delete_original"] is True
    assert len(fake_slack.calls_to(RESPONSE_URL)) == 2
