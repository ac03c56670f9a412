"""Every refusal of someone Slack vouched for is in the audit log (`<area>.denied`: who, what,
why), and a loop of refusals writes one event per person and action per window, the next one
counting those held back. (The rights themselves: test_rights.py, test_setup.py.)"""

from typing import Any

import pytest

from bot import const
from bot.throttle import Throttle
from storage.models import SendState
from tests.denials import denials, wait_for_denials
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import OTHER_TEAM
from tests.scenario.sendkit import (
    ALICE,
    BOB,
    CAROL,
    SEGMENT,
    click,
    only_send,
    require_approvals,
    serve_sending,
    settings,
    wait_for_state,
)

TEAM = DEFAULT_TEAM_ID


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await require_approvals(database, fake_slack)  # BOB approves, CAROL holds no role
        yield running


async def _pending(app: Any, database: Any) -> Any:
    await (await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')).reply()
    send = await only_send(database)
    assert send.state == SendState.PENDING_APPROVAL
    return send


async def test_a_member_running_setup_or_audit_is_refused_and_audited(app, database):
    setup = await (await app.post_command("setup", user=CAROL)).reply()
    audit = await (await app.post_command("audit", user=CAROL)).reply()

    assert "Only PushOps admins can set PushOps up" in setup["text"]
    assert "Only PushOps admins can read the audit log" in audit["text"]
    events = await wait_for_denials(database, 2)
    assert sorted((e.team_id, e.actor, e.action, e.outcome, e.details["what"]) for e in events) == [
        (TEAM, CAROL, "audit.denied", "denied", "read the audit log"),
        (TEAM, CAROL, "setup.denied", "denied", "open setup"),
    ]
    assert all(e.details["why"] == "not_admin" for e in events)


async def test_approving_ones_own_send_is_refused_and_audited(app, database):
    send = await _pending(app, database)

    clicked = await click(app, const.ACTION_APPROVE, str(send.id), user=ALICE)

    assert "someone else has to approve it" in (await app.fake.wait_for_reply(clicked))["text"]
    [event] = await wait_for_denials(database, 1)
    assert (event.actor, event.action, event.target) == (
        ALICE,
        "approval.denied",
        f"send {send.short_id}",
    )
    assert event.details == {"what": "approve", "why": "own_send"}


async def test_a_click_by_someone_of_another_workspace_is_audited_in_the_requests_workspace(
    app, database
):
    send = await _pending(app, database)

    clicked = await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, user_team="T0GUEST")

    assert "Only people of this workspace" in (await app.fake.wait_for_reply(clicked))["text"]
    [event] = await wait_for_denials(database, 1)
    assert (event.team_id, event.actor, event.action) == (TEAM, BOB, "approval.denied")
    assert event.details == {"what": "act from another workspace", "why": "other_workspace"}


async def test_a_button_naming_another_workspaces_send_is_refused_and_audited(
    app, database, storage_factory
):
    elsewhere = await storage_factory.send(
        await storage_factory.app(OTHER_TEAM), state=SendState.PENDING_APPROVAL
    )

    approve = await click(app, const.ACTION_APPROVE, str(elsewhere.id), user=BOB)
    cancel = await click(app, const.ACTION_LIST_CANCEL, str(elsewhere.id), user=BOB)

    for url in (approve, cancel):
        assert "not known" in (await app.fake.wait_for_reply(url))["text"]
    events = await wait_for_denials(database, 2)
    assert sorted((e.team_id, e.action, e.details["why"]) for e in events) == [
        (TEAM, "approval.denied", "unknown_send"),
        (TEAM, "cancel.denied", "unknown_send"),
    ]
    assert await wait_for_state(
        database, elsewhere.short_id, SendState.PENDING_APPROVAL, team_id=OTHER_TEAM
    )


async def test_answering_someone_elses_preview_is_refused_and_audited(app, fake_slack, database):
    await (await app.post_command(f'send --segment "{SEGMENT}" "Draft"')).reply()
    draft = await only_send(database)

    clicked = await click(app, const.ACTION_SEND_CONFIRM, str(draft.id), user=BOB)

    assert "who wrote this send, can answer it" in (await app.fake.wait_for_reply(clicked))["text"]
    [event] = await wait_for_denials(database, 1)
    assert (event.action, event.details["why"]) == ("send.denied", "not_requester")
    assert (await only_send(database)).state == SendState.DRAFT


async def test_a_loop_of_refusals_writes_one_event_and_the_next_counts_the_rest(app, database):
    # The throttle's clock moves only when the test says so: however slow the round trips,
    # the loop stays inside one window, and the window then ends without a sleep.
    now = [0.0]
    app.services.denials = Throttle(60.0, clock=lambda: now[0])

    for _ in range(5):
        await (await app.post_command("setup", user=CAROL)).reply()
    [first] = await wait_for_denials(database, 1)
    await (await app.post_command("audit", user=CAROL)).reply()  # another action: its own
    await wait_for_denials(database, 1, "audit.denied")
    assert len(await denials(database, "setup.denied")) == 1

    now[0] += app.services.denials.window  # the window ends
    await (await app.post_command("setup", user=CAROL)).reply()

    _, second = await wait_for_denials(database, 2, "setup.denied")
    assert "suppressed" not in first.details
    assert second.details == {"what": "open setup", "why": "not_admin", "suppressed": 4}
