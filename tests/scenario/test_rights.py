"""Least privilege, as people meet it through signed requests: a guest, a plain member and a
responder each get exactly their rights, and every refusal is in the audit log.

- a guest (Slack's restricted or single-channel user): nothing without a role given by name;
- a plain member: sees sends, sends until a sender is named, cancels only their own, looks
  nobody up, approves nothing;
- a responder (on call, here through their user group): cancels any send, sees status, looks
  users up; does not send (once senders are named) and does not approve.
"""

from typing import Any

import pytest

from bot import const
from commands.access import forget_team
from storage import workspaces
from storage.models import MemberRole, SendState
from tests.denials import wait_for_denials
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    SEGMENT,
    all_sends,
    click,
    require_approvals,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)

TEAM = DEFAULT_TEAM_ID
GUEST = "U0GUEST"
MEMBER = "U0MEMBER"
RESPONDER = "U0ONCALL"
SENDER = "U0SENDER"
ONCALL_GROUP = "S0ONCALL"
CUSTOMER = "cust-1"


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        fake_onesignal.add_user(fake_onesignal.app.id, CUSTOMER, properties={"language": "de"})
        fake_slack.add_user(MEMBER)
        fake_slack.add_user(RESPONDER)
        fake_slack.add_user(SENDER)
        yield running


async def _give(app: Any, database: Any, subject: str, role: MemberRole) -> None:
    """A role given as `/push setup` gives it: stored, and the serving app told."""
    async with database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=TEAM)
        await workspaces.add_member(
            session=session, team_id=TEAM, subject_id=subject, role=role, actor=ALICE
        )
    forget_team(app.services, TEAM)


async def _command(app: Any, text: str, user: str) -> dict[str, Any]:
    return await (await app.post_command(text, user=user)).reply()


async def _alices_send(app: Any, database: Any, *, pending: bool = False) -> Any:
    """A send of Alice's to a segment, due in an hour (waiting for approval with `pending`)."""
    await _command(app, f'send --yes --in 1h --segment "{SEGMENT}" Later', ALICE)
    [send] = [s for s in await all_sends(database) if s.requester_id == ALICE]
    assert send.state == (SendState.PENDING_APPROVAL if pending else SendState.SCHEDULED)
    return send


def _lookups(fake_onesignal: Any) -> list[Any]:
    return fake_onesignal.requests_to("GET", "/apps/")


async def _approve(app: Any, send: Any, user: str) -> dict[str, Any]:
    url = await click(app, const.ACTION_APPROVE, str(send.id), user=user, channel=APPROVALS_CHANNEL)
    return await app.fake.wait_for_reply(url)


# --- a guest ------------------------------------------------------------------------------------


@pytest.mark.parametrize("single_channel", [False, True], ids=["guest", "single-channel guest"])
async def test_a_guest_may_not_send_cancel_look_up_see_or_approve(
    app, fake_slack, fake_onesignal, database, single_channel
):
    fake_slack.add_guest(GUEST, single_channel=single_channel)
    await require_approvals(database, fake_slack)  # nobody is named a sender: open to members
    send = await _alices_send(app, database, pending=True)

    sent = await _command(app, f'send --yes --user {CUSTOMER} "Hi from a guest"', GUEST)
    form = await _command(app, "send", GUEST)
    cancel = await _command(app, f"cancel {send.short_id}", GUEST)
    lookup = await _command(app, f"user {CUSTOMER}", GUEST)
    status = await _command(app, f"status {send.short_id}", GUEST)
    listed = await _command(app, "list", GUEST)
    approve = await _approve(app, send, GUEST)

    assert "Guests of this workspace can send notifications only once" in sent["text"]
    assert "Guests of this workspace can send notifications only once" in form["text"]
    assert fake_slack.calls_to("views.open") == []
    assert "Guests of this workspace can cancel only their own sends" in cancel["text"]
    assert "guests of this workspace may use it once" in lookup["text"]
    assert _lookups(fake_onesignal) == []
    for seen in (status, listed):
        assert "Guests of this workspace see PushOps sends only once" in seen["text"]
    assert "Only PushOps approvers can approve or reject sends" in approve["text"]
    assert [s.short_id for s in await all_sends(database)] == [send.short_id]
    assert (await wait_for_state(database, send.short_id, SendState.PENDING_APPROVAL)).id
    events = await wait_for_denials(database, 7)
    assert sorted((e.action, e.details["what"], e.details["why"]) for e in events) == [
        ("approval.denied", "approve", "guest"),
        ("cancel.denied", "cancel", "guest"),
        ("list.denied", "list", "guest"),
        ("send.denied", "open the compose form", "guest"),
        ("send.denied", "send", "guest"),
        ("status.denied", "status", "guest"),
        ("user.denied", "look up a user", "guest"),
    ]
    assert {e.actor for e in events} == {GUEST}


async def test_a_guest_holds_a_role_given_by_name_never_one_given_to_their_group(
    app, fake_slack, fake_onesignal, database
):
    fake_slack.add_guest(GUEST)
    fake_slack.add_usergroup(ONCALL_GROUP, [GUEST, RESPONDER])
    await _give(app, database, ONCALL_GROUP, MemberRole.RESPONDER)
    send = await _alices_send(app, database)

    through_group = await _command(app, f"cancel {send.short_id}", GUEST)
    assert "Guests of this workspace can cancel only their own sends" in through_group["text"]
    assert (await wait_for_state(database, send.short_id, SendState.SCHEDULED)).id

    await _give(app, database, GUEST, MemberRole.RESPONDER)
    by_name = await _command(app, f"cancel {send.short_id}", GUEST)
    lookup = await _command(app, f"user {CUSTOMER}", GUEST)

    assert f"Stopped `{send.short_id}` before it was sent" in by_name["text"]
    assert f"User `{CUSTOMER}` in app *default*" in lookup["text"]
    await wait_for_state(database, send.short_id, SendState.CANCELLED)


# --- a plain member -------------------------------------------------------------------------------


async def test_a_plain_member_sends_while_nobody_is_named_and_cancels_only_their_own(
    app, fake_slack, fake_onesignal, database
):
    alices = await _alices_send(app, database)
    await _command(app, f'send --yes --in 1h --user {CUSTOMER} "Mine"', MEMBER)
    [mine] = [s for s in await all_sends(database) if s.requester_id == MEMBER]

    others = await _command(app, f"cancel {alices.short_id}", MEMBER)
    bare = await _command(app, "cancel 3f2b1c9e-0000-4000-8000-000000000000", MEMBER)
    own = await _command(app, f"cancel {mine.short_id}", MEMBER)
    lookup = await _command(app, f"user {CUSTOMER}", MEMBER)
    status = await _command(app, f"status {alices.short_id}", MEMBER)
    listed = await _command(app, "list", MEMBER)

    assert "You can cancel only your own sends." in others["text"]
    assert "or a notification PushOps did not send" in bare["text"]
    assert f"Stopped `{mine.short_id}` before it was sent" in own["text"]
    assert "it is for PushOps senders, responders and admins" in lookup["text"]
    assert _lookups(fake_onesignal) == []
    assert alices.short_id in status["text"] and alices.short_id in text_of(listed)
    assert (await wait_for_state(database, alices.short_id, SendState.SCHEDULED)).id
    await wait_for_state(database, mine.short_id, SendState.CANCELLED)
    # one event per person and action per window: the refused bare id is counted, not written
    events = await wait_for_denials(database, 2)
    assert sorted((e.action, e.target, e.details["why"]) for e in events) == [
        ("cancel.denied", f"send {alices.short_id}", "not_own_send"),
        ("user.denied", CUSTOMER, "no_role"),
    ]


async def test_once_senders_are_named_a_plain_member_neither_sends_nor_gets_the_form(
    app, fake_slack, database
):
    await _give(app, database, SENDER, MemberRole.SENDER)

    sent = await _command(app, f'send --yes --user {CUSTOMER} "Hi"', MEMBER)
    form = await _command(app, "send", MEMBER)
    by_a_sender = await _command(app, f'send --yes --in 1h --user {CUSTOMER} "Hi"', SENDER)

    for refused in (sent, form):
        assert "Only PushOps senders can send notifications in this workspace" in refused["text"]
    assert fake_slack.calls_to("views.open") == []
    assert "is scheduled" in by_a_sender["text"]
    assert [s.requester_id for s in await all_sends(database)] == [SENDER]
    events = await wait_for_denials(database, 2, "send.denied")
    assert {e.details["why"] for e in events} == {"not_sender"}


async def test_a_plain_member_may_not_approve(app, fake_slack, database):
    await require_approvals(database, fake_slack)
    send = await _alices_send(app, database, pending=True)

    answer = await _approve(app, send, MEMBER)

    assert "Only PushOps approvers can approve or reject sends" in answer["text"]
    [event] = await wait_for_denials(database, 1)
    assert (event.action, event.target, event.details["why"]) == (
        "approval.denied",
        f"send {send.short_id}",
        "not_approver",
    )


# --- a responder ----------------------------------------------------------------------------------


async def test_a_responder_cancels_any_send_sees_status_and_looks_up_but_neither_sends_nor_approves(
    app, fake_slack, fake_onesignal, database
):
    fake_slack.add_usergroup(ONCALL_GROUP, [RESPONDER])
    await _give(app, database, ONCALL_GROUP, MemberRole.RESPONDER)
    await _give(app, database, SENDER, MemberRole.SENDER)
    await require_approvals(database, fake_slack)
    pending = await _alices_send(app, database, pending=True)

    status = await _command(app, f"status {pending.short_id}", RESPONDER)
    lookup = await _command(app, f"user {CUSTOMER}", RESPONDER)
    sent = await _command(app, f'send --yes --user {CUSTOMER} "From on call"', RESPONDER)
    approve = await _approve(app, pending, RESPONDER)
    cancel = await _command(app, f"cancel {pending.short_id}", RESPONDER)

    assert pending.short_id in status["text"]
    assert f"User `{CUSTOMER}` in app *default*" in lookup["text"]
    assert len(_lookups(fake_onesignal)) == 1
    assert "Only PushOps senders can send notifications" in sent["text"]
    assert "Only PushOps approvers can approve or reject sends" in approve["text"]
    assert f"Stopped `{pending.short_id}` before it was sent" in cancel["text"]
    await wait_for_state(database, pending.short_id, SendState.CANCELLED)
    assert len(await all_sends(database)) == 1
    events = await wait_for_denials(database, 2)
    assert sorted((e.action, e.details["why"]) for e in events) == [
        ("approval.denied", "not_approver"),
        ("send.denied", "not_sender"),
    ]
