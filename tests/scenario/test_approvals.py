"""Approvals: a risky send waits in the approvals channel with Approve / Reject; every click is
checked again on the server (who clicked, which workspace, which state); the requester hears
the outcome. Missed sends: the requester is asked by DM to send now or drop."""

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from commands.access import forget_team
from storage import queries, workspaces
from storage.models import MemberRole, SendState, utcnow
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    CAROL,
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
    settings,
    text_of,
    wait_for_state,
)
from tests.scenario.workspace import onesignal_settings


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await require_approvals(database, fake_slack)
        fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
        yield running


async def _requested(app: Any, fake_slack: Any, database: Any) -> Any:
    """ALICE asks for a send to a segment; the request lands in the approvals channel."""
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')
    reply = await sent.reply()
    send = await only_send(database)
    assert send.state == SendState.PENDING_APPROVAL
    assert "waiting for approval" in text_of(reply)
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(reply)
    request = await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    return send, request


async def test_a_risky_send_waits_for_approval_with_buttons(
    app, fake_slack, fake_onesignal, database
):
    send, request = await _requested(app, fake_slack, database)

    found = buttons(request.args["blocks"])
    assert found[const.ACTION_APPROVE]["value"] == str(send.id)
    assert found[const.ACTION_REJECT]["value"] == str(send.id)
    assert f"<@{ALICE}> asks to send `{send.short_id}`" in text_of(request.args)
    assert "Reaches about 600 subscriptions now." in text_of(request.args)
    assert creates(fake_onesignal) == []


async def test_approve_sends_once_and_tells_the_requester(
    app, fake_slack, fake_onesignal, database
):
    send, _ = await _requested(app, fake_slack, database)

    await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)

    done = await wait_for_state(database, send.short_id, SendState.SENT)
    [request] = creates(fake_onesignal)
    assert request.json["idempotency_key"] == str(send.id)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"`{send.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
    closed = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == APPROVALS_CHANNEL
    )
    assert f"Approved by <@{BOB}>" in text_of(closed.args)
    assert buttons(closed.args["blocks"]) == {}
    assert done.approvals_received == 1


async def test_the_requester_cannot_approve_their_own_send(
    app, fake_slack, fake_onesignal, database
):
    send, _ = await _requested(app, fake_slack, database)

    clicked = await click(app, const.ACTION_APPROVE, str(send.id), user=ALICE)

    answer = await app.fake.wait_for_reply(clicked)
    assert "someone else has to approve it" in answer["text"]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL
    assert creates(fake_onesignal) == []


async def test_a_non_approvers_click_is_refused(app, fake_slack, fake_onesignal, database):
    send, _ = await _requested(app, fake_slack, database)

    approve = await click(app, const.ACTION_APPROVE, str(send.id), user=CAROL)
    reject = await click(app, const.ACTION_REJECT, str(send.id), user=CAROL)

    for url in (approve, reject):
        answer = await app.fake.wait_for_reply(url)
        assert "Only PushOps approvers can approve or reject sends" in answer["text"]
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL
    assert creates(fake_onesignal) == []


async def test_a_click_from_another_workspace_is_refused(app, fake_slack, database):
    send, _ = await _requested(app, fake_slack, database)

    clicked = await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, user_team="T0GUEST")

    answer = await app.fake.wait_for_reply(clicked)
    assert "Only people of this workspace can use this." in answer["text"]
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL


async def test_reject_never_sends_and_tells_the_requester(
    app, fake_slack, fake_onesignal, database
):
    send, _ = await _requested(app, fake_slack, database)

    await click(app, const.ACTION_REJECT, str(send.id), user=BOB)

    await wait_for_state(database, send.short_id, SendState.REJECTED)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"<@{BOB}> rejected `{send.short_id}`" in dm.args["text"]
    late = await click(app, const.ACTION_APPROVE, str(send.id), user=BOB)
    answer = await app.fake.wait_for_reply(late)
    assert "was rejected; this button no longer applies" in answer["text"]
    await asyncio.sleep(0.6)  # a sweep later
    assert creates(fake_onesignal) == []


async def test_a_double_click_on_approve_sends_once(app, fake_slack, fake_onesignal, database):
    send, _ = await _requested(app, fake_slack, database)

    urls = await asyncio.gather(
        *(click(app, const.ACTION_APPROVE, str(send.id), user=BOB) for _ in range(3))
    )

    await wait_for_state(database, send.short_id, SendState.SENT)
    await asyncio.sleep(0.3)
    assert len(creates(fake_onesignal)) == 1
    refusals = [r for url in urls for r in app.fake.replies(url)]
    assert len(refusals) >= 2  # the other clicks were told why nothing happened


async def _blocked_by(database: Any, holder: int) -> None:
    """Wait until some database session waits for a lock held by the session `holder`."""
    deadline = time.monotonic() + 10
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    while True:
        async with database.sessions() as session:
            if await session.scalar(query, {"pid": holder}):
                return
        assert time.monotonic() < deadline, "nobody waited for the lock"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("action", [const.ACTION_APPROVE, const.ACTION_REJECT])
async def test_a_decision_racing_a_cancel_is_refused_and_not_recorded(
    app, fake_slack, fake_onesignal, database, action
):
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the race needs row locks; SQLite runs one write at a time")
    send, _ = await _requested(app, fake_slack, database)

    async with database.sessions.begin() as session:  # a cancel, still committing
        assert await queries.cancel_send(
            session=session, team_id=send.team_id, send_id=send.id, actor=ALICE
        )
        holder = await session.scalar(sa.text("SELECT pg_backend_pid()"))
        clicked = await click(app, action, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)
        await _blocked_by(database, holder)

    answer = await app.fake.wait_for_reply(clicked)
    decision = "approval" if action == const.ACTION_APPROVE else "rejection"
    assert answer["text"] == (
        f"`{send.short_id}` was cancelled meanwhile; your {decision} was not recorded."
    )
    assert answer["replace_original"] is False
    after = await only_send(database)
    assert (after.state, after.approvals_received) == (SendState.CANCELLED, 0)
    async with database.sessions() as session:
        assert (
            await queries.list_approvals(session=session, team_id=send.team_id, send_id=send.id)
            == []
        )
    assert not [a for a in await audit_actions(database) if a.startswith("approval.")]
    assert creates(fake_onesignal) == []


async def test_two_approvals_needed_keeps_the_request_open_after_one(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack, approvals=2)
    fake_slack.add_user("U0DAVE", name="dave", is_admin=True)
    send, _ = await _requested_two(app, database)

    first = await click(app, const.ACTION_APPROVE, str(send.id), user=BOB)

    assert "is recorded" in (await app.fake.wait_for_reply(first))["text"]
    update = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == APPROVALS_CHANNEL
    )
    assert "1 more approval needed" in text_of(update.args)
    assert const.ACTION_APPROVE in buttons(update.args["blocks"])
    assert creates(fake_onesignal) == []
    await click(app, const.ACTION_APPROVE, str(send.id), user="U0DAVE")
    await wait_for_state(database, send.short_id, SendState.SENT)
    assert len(creates(fake_onesignal)) == 1


async def _requested_two(app: Any, database: Any) -> Any:
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')
    await sent.reply()
    return await only_send(database), sent


async def test_cancelling_a_pending_send_closes_its_request(app, fake_slack, database):
    send, _ = await _requested(app, fake_slack, database)

    sent = await app.post_command(f"cancel {send.short_id}")

    await sent.reply()
    closed = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == APPROVALS_CHANNEL
    )
    assert f"Cancelled by <@{ALICE}>" in text_of(closed.args)
    assert buttons(closed.args["blocks"]) == {}


async def test_a_send_to_listed_users_needs_no_approval_under_the_segments_policy(
    app, fake_onesignal, database
):
    sent = await app.post_command('send --yes --user cust-1 "Just you"')

    await sent.reply()
    assert (await only_send(database)).state == SendState.SENT
    assert len(creates(fake_onesignal)) == 1


async def test_under_segments_a_send_to_more_listed_users_than_the_threshold_waits(
    app, fake_slack, fake_onesignal, database
):
    few = ",".join(f"cust-{n}" for n in range(100))
    many = ",".join(f"cust-{n}" for n in range(101))

    await (await app.post_command(f'send --yes --user {few} "To a hundred"')).reply()
    reply = await (await app.post_command(f'send --yes --user {many} "To 101"')).reply()

    sends = await all_sends(database)
    assert [len(s.audience["external_ids"]) for s in sends] == [100, 101]
    await wait_for_state(database, sends[0].short_id, SendState.SENT)
    assert sends[1].state == SendState.PENDING_APPROVAL and sends[1].approvals_required == 1
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(reply)
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert len(creates(fake_onesignal)) == 1  # only the hundred went out


async def test_a_send_scheduled_before_approvals_were_switched_on_waits_for_them_when_due(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        sent = await running.post_command(f'send --yes --in 2s --segment "{SEGMENT}" "Soon"')
        await sent.reply()
        send = await only_send(database)
        assert send.state == SendState.SCHEDULED and send.approvals_required == 0
        await require_approvals(database, fake_slack)  # switched on while it waits
        forget_team(running.services, "T0PUSHOPS")  # as /push setup does

        held = await wait_for_state(database, send.short_id, SendState.PENDING_APPROVAL)

        assert creates(fake_onesignal) == []
        assert (held.approvals_required, held.approvals_received, held.attempts) == (1, 0, 0)
        assert held.claimed_by is None and held.due_at is None
        request = await fake_slack.wait_for(
            "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
        )
        assert buttons(request.args["blocks"])[const.ACTION_APPROVE]["value"] == str(send.id)
        dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
        assert f"`{send.short_id}` waits for approval" in dm.args["text"]
        assert "the approval policy now in force asks for 1 approval first" in dm.args["text"]
        actions = await audit_actions(database)
        assert actions[-2:] == ["send.sending", "send.pending_approval"]

        await click(running, const.ACTION_APPROVE, str(send.id), user=BOB)

        await wait_for_state(database, send.short_id, SendState.SENT)
        [request] = creates(fake_onesignal)
        assert request.json["idempotency_key"] == str(send.id)


# --- missed sends -------------------------------------------------------------------------------


async def _missed(
    app: Any,
    fake_slack: Any,
    database: Any,
    storage_factory: Any,
    *,
    requester: str = ALICE,
    audience: dict[str, Any] | None = None,
) -> Any:
    """A send found too late by the scheduler: its requester gets a DM with Send now / Drop."""
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id="T0PUSHOPS", name="default")
    send = await storage_factory.send(
        default,
        state=SendState.SCHEDULED,
        due_at=utcnow() - timedelta(hours=2),
        requester_id=requester,
        content={"message": "Too late"},
        audience=audience or {"external_ids": ["cust-1"]},
    )
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(requester))
    await wait_for_state(database, send.short_id, SendState.MISSED)
    return send, dm


async def test_a_missed_send_is_offered_to_send_now(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    send, dm = await _missed(app, fake_slack, database, storage_factory)
    assert "was missed" in dm.args["text"]
    found = buttons(dm.args["blocks"])
    assert found[const.ACTION_MISSED_SEND_NOW]["value"] == str(send.id)
    assert creates(fake_onesignal) == []

    clicked = await click(app, const.ACTION_MISSED_SEND_NOW, str(send.id), channel="D0ALICE")

    answer = await app.fake.wait_for_reply(clicked)
    assert "was sent" in text_of(answer) and answer["replace_original"] is True
    assert len(creates(fake_onesignal)) == 1
    again = await click(app, const.ACTION_MISSED_SEND_NOW, str(send.id), channel="D0ALICE")
    assert "no longer applies" in (await app.fake.wait_for_reply(again))["text"]
    assert len(creates(fake_onesignal)) == 1


async def test_send_now_on_a_missed_send_checks_the_right_to_send_again(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    send, _ = await _missed(app, fake_slack, database, storage_factory, requester=CAROL)
    async with database.sessions.begin() as session:  # BOB becomes the only sender
        await workspaces.add_member(
            session=session,
            team_id=send.team_id,
            subject_id=BOB,
            role=MemberRole.SENDER,
            actor=ALICE,
        )
    forget_team(app.services, send.team_id)  # as /push setup does when it changes roles

    clicked = await click(app, const.ACTION_MISSED_SEND_NOW, str(send.id), user=CAROL)

    answer = await app.fake.wait_for_reply(clicked)
    assert "Only PushOps senders can send notifications" in answer["text"]
    assert answer["replace_original"] is False
    await asyncio.sleep(0.6)  # a sweep later
    assert (await only_send(database)).state == SendState.MISSED
    assert creates(fake_onesignal) == []


async def test_send_now_on_a_missed_send_asks_for_approval_when_the_policy_now_requires_it(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    send, _ = await _missed(
        app, fake_slack, database, storage_factory, audience={"segments": [SEGMENT]}
    )

    clicked = await click(app, const.ACTION_MISSED_SEND_NOW, str(send.id), channel="D0ALICE")

    answer = await app.fake.wait_for_reply(clicked)
    assert "waiting for approval" in text_of(answer) and answer["replace_original"] is True
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(answer)
    request = await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert buttons(request.args["blocks"])[const.ACTION_APPROVE]["value"] == str(send.id)
    await asyncio.sleep(0.6)  # a sweep later: waiting, neither sent nor expired
    pending = await only_send(database)
    assert (pending.state, pending.approvals_required) == (SendState.PENDING_APPROVAL, 1)
    assert creates(fake_onesignal) == []

    await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)

    await wait_for_state(database, send.short_id, SendState.SENT)
    [create] = creates(fake_onesignal)
    assert create.json["idempotency_key"] == str(send.id)


async def test_a_missed_send_can_be_dropped(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    send, _ = await _missed(app, fake_slack, database, storage_factory)

    clicked = await click(app, const.ACTION_MISSED_DROP, str(send.id), channel="D0ALICE")

    answer = await app.fake.wait_for_reply(clicked)
    assert "Dropped; nothing was sent." in text_of(answer)
    assert (await only_send(database)).state == SendState.CANCELLED
    assert creates(fake_onesignal) == []


async def test_send_on_a_preview_of_a_risky_send_asks_for_approval(app, fake_slack, database):
    sent = await app.post_command(f'send --segment "{SEGMENT}" "Big news"')
    preview = await sent.reply()
    send = await only_send(database)
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(preview)

    clicked = await click(app, const.ACTION_SEND_CONFIRM, str(send.id))

    answer = await app.fake.wait_for_reply(clicked)
    assert "waiting for approval" in text_of(answer)
    assert (await only_send(database)).state == SendState.PENDING_APPROVAL
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )


async def test_an_unanswered_request_expires_and_the_requester_hears_it(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = onesignal_settings(fake_slack, fake_onesignal, tmp_path, approval_ttl=0.5)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await require_approvals(database, fake_slack)
        send, _ = await _requested(running, fake_slack, database)

        await wait_for_state(database, send.short_id, SendState.EXPIRED)

        closed = await fake_slack.wait_for(
            "chat.update", where=lambda c: c.args["channel"] == APPROVALS_CHANNEL
        )
        assert "expired and was not sent" in text_of(closed.args)
        assert buttons(closed.args["blocks"]) == {}
        dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
        assert "expired without enough approvals" in dm.args["text"]
        assert creates(fake_onesignal) == []
