"""`/push help` and unknown subcommands through the real /slack/events door."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot import const
from bot.policy import Role
from commands.send import grammar
from storage import workspaces
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID, RESPONSE_URL
from tests.scenario.sendkit import buttons
from tests.scenario.workspace import onesignal_settings, serve_with_storage

ADMIN = "U0ALICE"  # a Slack workspace admin in the fake
F = const.ACTION_SETUP_FIELD
README = Path(__file__).resolve().parents[2] / "README.md"
FIRST_OPTIONS = {"--yes", "--test", "--app", "--title", "--url", "--image", "--at", "--in"}
FIRST_OPTIONS |= {"--segment", "--exclude", "--user"}  # shown by their placeholders alone


@pytest.fixture
async def stored(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    """PushOps with a database, where admins can name senders."""
    fake_slack.add_user("U0BOB")  # no admin
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_with_storage(serve_pushops, settings, database, keyring) as running:
        yield running


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


def _send_options() -> list[str]:
    """Every option of the send grammar; `--text-XX` and `--title-XX` for the languages."""
    named = [*grammar.FLAGS, *grammar.SINGLE, *grammar.REPEATABLE]
    plain = [o for o in named if not o.startswith(grammar.LANGUAGE_PREFIXES)]
    return plain + [prefix + "XX" for prefix in grammar.LANGUAGE_PREFIXES]


def _unlisted_or_without_example(text: str) -> list[str]:
    """The send options `text` does not list, or (those added since the first release, other
    than flags) lists without an example of their use beside the syntax entry."""
    problems = []
    for option in _send_options():
        if option not in text:
            problems.append(f"{option} is not listed")
            continue
        if option in FIRST_OPTIONS or option in grammar.FLAGS:
            continue
        if option.endswith("XX"):  # --text-de "Neue Version"
            used = re.search(re.escape(option[:-2]) + r"[a-z]{2} \S", text)
        else:  # the syntax entry (`    --ttl DURATION`) is not an example
            rest = re.sub(rf"^\s+{re.escape(option)} \S+", "", text, flags=re.M)
            used = re.search(rf"{re.escape(option)} [^\s]", rest)
        if used is None:
            problems.append(f"{option} has no example")
    return problems


async def test_help_lists_every_send_option_with_an_example(pushops):
    sent = await pushops.post_command("help")

    shown = _reply_text(await sent.reply())
    assert _unlisted_or_without_example(shown) == []
    assert "--when-active" in shown and "--every monday --at 09:00" in shown


def test_the_readme_lists_every_send_option_with_an_example():
    assert _unlisted_or_without_example(README.read_text()) == []


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


async def test_an_admin_reads_first_that_everyone_may_send_with_the_button_to_name_senders(
    stored,
):
    reply = await (await stored.post_command("help", user=ADMIN)).reply()

    first = reply["blocks"][0]
    assert first["text"]["text"].startswith(
        ":warning: *Everyone in this workspace may send pushes* (guests excepted), because "
        "nobody is named a sender yet; each may cancel their own. That suits a small team; "
        "name senders"
    )
    assert first["accessory"]["action_id"] == const.ACTION_HELP_NAME_SENDERS
    assert first["accessory"]["text"]["text"] == "Name senders"
    assert reply["text"].startswith("Everyone in this workspace may send pushes (guests excepted)")
    assert "/push send" in _reply_text(reply)


async def test_someone_not_an_admin_reads_only_the_help(stored):
    reply = await (await stored.post_command("help", user="U0BOB")).reply()

    assert "Everyone in this workspace may send" not in _reply_text(reply)
    assert const.ACTION_HELP_NAME_SENDERS not in buttons(reply.get("blocks") or [])


async def test_once_senders_are_named_an_admin_reads_only_the_help(stored, database):
    async with database.sessions.begin() as session:
        await workspaces.add_member(
            session=session, team_id=DEFAULT_TEAM_ID, subject_id="S0TEAM", role=Role.SENDER,
            actor=ADMIN,
        )  # fmt: skip

    reply = await (await stored.post_command("help", user=ADMIN)).reply()

    assert "Everyone in this workspace may send" not in _reply_text(reply)
    assert const.ACTION_HELP_NAME_SENDERS not in buttons(reply.get("blocks") or [])


def _click_name_senders(user: str, response_url: str) -> dict[str, Any]:
    """A click on the help's "Name senders" (an ephemeral message, with a trigger id)."""
    return signing.block_actions(
        action_id=const.ACTION_HELP_NAME_SENDERS,
        user_id=user,
        team_id=DEFAULT_TEAM_ID,
        response_url=response_url,
    )


async def test_name_senders_in_the_help_opens_the_roles_form_and_the_warning_goes(
    stored, fake_slack, database
):
    await (await stored.post_command("help", user=ADMIN)).reply()

    clicked = await stored.post_action(_click_name_senders(ADMIN, fake_slack.new_response_url()))

    assert clicked.status_code == 200
    opened = await fake_slack.wait_for("views.open")
    form = opened.args["view"]
    assert form["callback_id"] == const.CALLBACK_SETUP_ROLES
    role = next(b for b in form["blocks"] if b.get("block_id") == const.BLOCK_SETUP_ROLE)
    assert role["element"]["initial_option"]["value"] == "sender"
    values: dict[str, dict[str, Any]] = {
        const.BLOCK_SETUP_ROLE_CHANGE: {
            F: {"type": "radio_buttons", "selected_option": {"value": "give"}}
        },
        const.BLOCK_SETUP_ROLE: {
            F: {"type": "static_select", "selected_option": {"value": "sender"}}
        },
        const.BLOCK_SETUP_ROLE_USERS: {
            F: {"type": "multi_users_select", "selected_users": ["U0BOB"]}
        },
        const.BLOCK_SETUP_ROLE_GROUPS: {F: {"type": "plain_text_input", "value": None}},
    }
    saved = await stored.post_action(
        signing.view_submission(
            callback_id=const.CALLBACK_SETUP_ROLES, user_id=ADMIN, team_id=DEFAULT_TEAM_ID,
            values=values,
        )
    )  # fmt: skip
    assert "<@U0BOB> now holds the sender role." in json.dumps(saved.json()["view"])
    again = await (await stored.post_command("help", user=ADMIN)).reply()

    assert "Everyone in this workspace may send" not in _reply_text(again)
    async with database.sessions() as session:
        members = await workspaces.list_members(session=session, team_id=DEFAULT_TEAM_ID)
    assert [(m.subject_id, m.role) for m in members] == [("U0BOB", Role.SENDER)]


async def test_name_senders_clicked_by_someone_not_an_admin_is_refused(stored, fake_slack):
    url = fake_slack.new_response_url()

    await stored.post_action(_click_name_senders("U0BOB", url))

    refusal = await fake_slack.wait_for_reply(url)
    assert refusal["text"].startswith("Only PushOps admins can set PushOps up")
    assert refusal["replace_original"] is False
    assert fake_slack.calls_to("views.open") == []
