"""A change made with `pushops roles|policy|import-settings` while PushOps serves is in force
for the next signed `/push send`: the command line writes what /push setup writes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.workspaces import TEAM_TTL
from storage.models import SendState
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    SEGMENT,
    all_sends,
    creates,
    ensure_workspace,
    only_send,
    serve_sending,
    settings,
    text_of,
)

TEAM = DEFAULT_TEAM_ID
SENDER = "U0SENDER"
MEMBER = "U0MEMBER"
CUSTOMER = "cust-1"


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        fake_onesignal.add_user(fake_onesignal.app.id, CUSTOMER)
        fake_slack.add_user(SENDER)
        fake_slack.add_user(MEMBER)
        await ensure_workspace(database)  # as the app's start makes it, before its hook ran
        yield running


async def _command(app: Any, text: str, user: str = ALICE) -> dict[str, Any]:
    return await (await app.post_command(text, user=user)).reply()


async def test_a_policy_set_on_the_command_line_holds_the_next_send_for_approval(
    app, run_cli, database, fake_onesignal
):
    policy = ["--mode", "segments", "--channel", APPROVALS_CHANNEL, "--actor", "ops"]
    changed = await run_cli("policy", "set", "--team", TEAM, *policy)

    reply = await _command(app, f'send --yes --segment "{SEGMENT}" "Big news"')

    assert changed.code == 0, changed.stderr
    assert "waiting for approval" in text_of(reply)
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(reply)
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL
    assert creates(fake_onesignal) == []


async def test_a_sender_named_on_the_command_line_closes_sending_to_everyone_else(
    app, run_cli, database
):
    named = await run_cli("roles", "add", "--team", TEAM, "--role", "sender", "--user", SENDER)

    refused = await _command(app, f'send --yes --user {CUSTOMER} "Hi"', MEMBER)
    allowed = await _command(app, f'send --yes --in 1h --user {CUSTOMER} "Hi"', SENDER)

    assert named.code == 0, named.stderr
    assert "Only PushOps senders can send notifications in this workspace" in refused["text"]
    assert "is scheduled" in allowed["text"]
    assert [s.requester_id for s in await all_sends(database)] == [SENDER]


async def test_a_sender_removed_by_an_imported_file_can_no_longer_send(
    app, run_cli, database, tmp_path
):
    for who in (SENDER, MEMBER):
        given = await run_cli("roles", "add", "--team", TEAM, "--role", "sender", "--user", who)
        assert given.code == 0, given.stderr
    path = tmp_path / "settings.yaml"
    path.write_text(f"team: {TEAM}\nroles:\n  sender: [{SENDER}]\n")

    imported = await run_cli("import-settings", str(path))
    refused = await _command(app, f'send --yes --user {CUSTOMER} "Hi"', MEMBER)

    assert imported.stdout.splitlines()[1] == f"  - role sender: {MEMBER}"
    assert "Only PushOps senders can send notifications in this workspace" in refused["text"]
    assert await all_sends(database) == []


async def test_a_sender_removed_while_pushops_serves_is_refused_once_its_roles_are_read_again(
    app, run_cli, database
):
    for who in (SENDER, MEMBER):
        given = await run_cli("roles", "add", "--team", TEAM, "--role", "sender", "--user", who)
        assert given.code == 0, given.stderr
    first = await _command(app, f'send --yes --in 1h --user {CUSTOMER} "Before"', SENDER)
    assert "is scheduled" in first["text"]  # the serving app now keeps the roles it read

    removed = await run_cli("roles", "remove", "--team", TEAM, "--role", "sender", "--user", SENDER)
    deadline = time.monotonic() + TEAM_TTL + 5
    while True:
        later = await _command(app, f'send --yes --in 1h --user {CUSTOMER} "After"', SENDER)
        if "Only PushOps senders" in later["text"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)

    assert removed.stdout == f"{SENDER} no longer holds the sender role in {TEAM}.\n"
    assert "Only PushOps senders can send notifications in this workspace" in later["text"]
