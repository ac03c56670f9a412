"""The news of a send's change is owed in the transaction that records it: a process that
dies after that commit, before its notifier told anyone, leaves a notice that the next drainer
renders, so the requester, the approvers and the log channel are still told, once.

A process whose notifier never told is the send engine of `tests.bot.deliverykit` (its
notifier only records); the notices it left are then due (their grace passed) when the real
app starts and drains them."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa

from bot.delivery import Audience, SendContent
from storage import claims, deliveries, workspaces
from storage.models import OutboxMessage, OutboxState, Send, SendState, utcnow
from storage.outbox import NOTICE
from tests.bot.deliverykit import kit
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    LOG_CHANNEL,
    SEGMENT,
    dm_to,
    require_approvals,
    serve_sending,
    set_log_channel,
    settings,
)


async def test_an_end_recorded_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    await set_log_channel(database)
    send = await storage_factory.send(
        app,
        due_at=utcnow() - timedelta(seconds=1),
        requester_id=ALICE,
        content={"message": "Doors open at 9"},
        audience={"segments": [SEGMENT]},
    )
    # A worker that is gone by now claimed the send and recorded that it went out; its
    # notifier never ran.
    claimed = await claims.claim_send(
        session_factory=database.sessions, send_id=send.id, now=utcnow(), worker_id="gone"
    )
    assert claimed is not None
    await deliveries.finish_sends(
        session_factory=database.sessions,
        worker_id="gone",
        results=[deliveries.DeliveryResult(send.id, SendState.SENT, "notif-1")],
        notice_grace=timedelta(0),
    )

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        deadline = time.monotonic() + 15
        while not (
            fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))
            and fake_slack.calls_to(
                "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
            )
        ):
            assert time.monotonic() < deadline, "nobody was told"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # a poll of the drainer later: nothing more goes out

    [dm] = fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))
    assert f"`{send.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
    [logged] = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )
    assert f"`{send.short_id}`" in logged.args["text"] and "was sent" in logged.args["text"]
    assert fake_slack.calls_to("chat.update") == []
    async with database.sessions() as session:
        rows = list(await session.scalars(sa.select(OutboxMessage)))
    assert {row.state for row in rows} == {OutboxState.DONE}
    assert sorted(row.purpose for row in rows) == ["delivered", "log", "notice"]


# --- changes told after their commit ----------------------------------------------------------


async def _default_app(storage_factory, fake_onesignal):
    return await storage_factory.app(
        DEFAULT_TEAM_ID,
        "default",
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret(fake_onesignal.app.rest_api_key),
        make_default=True,
    )


async def _grace_passed(database) -> None:
    """The notices pending now are due: their own process had its time to tell them."""
    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.purpose == NOTICE, OutboxMessage.state == OutboxState.PENDING)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def _posted_once(fake_slack, where, what: str):
    """The one message posted `where`, once it came; a drainer's poll later, still one."""
    deadline = time.monotonic() + 15
    while not fake_slack.calls_to("chat.postMessage", where=where):
        assert time.monotonic() < deadline, f"{what} was never posted"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # a poll of the drainer later: nothing more goes out
    [posted] = fake_slack.calls_to("chat.postMessage", where=where)
    return posted


async def _notices_done(database) -> list[str]:
    """The outcomes of the notices written, each checked settled."""
    async with database.sessions() as session:
        rows = list(
            await session.scalars(sa.select(OutboxMessage).where(OutboxMessage.purpose == NOTICE))
        )
    assert {row.state for row in rows} <= {OutboxState.DONE}
    return sorted(str(row.payload["outcome"]) for row in rows)


def _in_log(call) -> bool:
    return call.args["channel"] == LOG_CHANNEL


async def test_a_cancel_committed_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    await set_log_channel(database)
    async with kit(database, keyring, fake_onesignal, app) as gone:
        send = await gone.create(
            "Doors open at 9", team_id=DEFAULT_TEAM_ID, requester_id=ALICE, due_in=3600
        )
        await gone.recall.cancel(team_id=DEFAULT_TEAM_ID, ref=send.short_id, actor=BOB)
    await _grace_passed(database)

    async with serve_sending(
        serve_pushops, settings(fake_slack, fake_onesignal, tmp_path), database, keyring
    ):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")
        logged = await _posted_once(fake_slack, _in_log, "the log message")

    assert (
        dm.args["text"].startswith(f"<@{BOB}> cancelled")
        and f"`{send.short_id}`" in dm.args["text"]
    )
    assert "before it was sent: nobody received it." in str(dm.args["blocks"])
    assert f"Stopped by <@{BOB}>" in str(logged.args["blocks"])
    assert await _notices_done(database) == ["cancelled"]


async def test_a_cancel_told_by_its_own_process_is_not_told_again(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    async with kit(database, keyring, fake_onesignal, app) as engine:
        send = await engine.create(team_id=DEFAULT_TEAM_ID, requester_id=ALICE, due_in=3600)
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await running.services.recall.cancel(team_id=DEFAULT_TEAM_ID, ref=send.short_id, actor=BOB)
        await _grace_passed(database)
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    assert dm.args["text"].startswith(f"<@{BOB}> cancelled")
    assert await _notices_done(database) == ["cancelled"]


async def test_a_rejection_committed_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    async with kit(database, keyring, fake_onesignal, app) as gone:
        send = await gone.create(team_id=DEFAULT_TEAM_ID, requester_id=ALICE, approvals=1)
        await gone.sends.reject(
            team_id=DEFAULT_TEAM_ID, send_id=send.id, approver_id=BOB, reason=None
        )
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    # One DM: the approval request its creation owed too is not told, the send moved on.
    assert dm.args["text"] == f"<@{BOB}> rejected `{send.short_id}`; it will not be sent."
    assert "rejected" in await _notices_done(database)


async def test_a_rejection_told_by_its_own_process_is_not_told_again(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    async with kit(database, keyring, fake_onesignal, app) as engine:
        send = await engine.create(team_id=DEFAULT_TEAM_ID, requester_id=ALICE, approvals=1)
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await running.services.sends.reject(
            team_id=DEFAULT_TEAM_ID, send_id=send.id, approver_id=BOB, reason=None
        )
        await _grace_passed(database)
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    assert dm.args["text"].startswith(f"<@{BOB}> rejected")
    assert "rejected" in await _notices_done(database)


async def test_an_expiry_committed_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    send = await storage_factory.send(app, state=SendState.PENDING_APPROVAL, requester_id=ALICE)
    [expired] = await claims.expire_pending_approvals(
        session_factory=database.sessions, now=utcnow() + timedelta(seconds=1), ttl=timedelta(0)
    )
    assert expired.id == send.id
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    assert f"`{send.short_id}`" in dm.args["text"] and "expired" in dm.args["text"]
    assert await _notices_done(database) == ["expired"]


async def test_an_expiry_told_by_its_own_process_is_not_told_again(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    send = await storage_factory.send(app, state=SendState.PENDING_APPROVAL, requester_id=ALICE)
    config = settings(fake_slack, fake_onesignal, tmp_path).model_copy(update={"approval_ttl": 0.5})
    async with serve_sending(serve_pushops, config, database, keyring):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")
        await _grace_passed(database)
        await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    assert f"`{send.short_id}`" in dm.args["text"] and "expired" in dm.args["text"]
    assert await _notices_done(database) == ["expired"]


async def test_a_miss_found_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    send = await storage_factory.send(app, due_at=utcnow() - timedelta(hours=1), requester_id=ALICE)
    [missed] = await claims.mark_missed_sends(
        session_factory=database.sessions, now=utcnow(), grace=timedelta(minutes=10)
    )
    assert missed.id == send.id
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    assert f"`{send.short_id}`" in dm.args["text"] and "missed" in dm.args["text"]
    assert await _notices_done(database) == ["missed"]


def _in_approvals(call) -> bool:
    return call.args["channel"] == APPROVALS_CHANNEL


async def _made_due(database, send) -> None:
    async with database.sessions.begin() as session:
        await session.execute(sa.update(Send).where(Send.id == send.id).values(due_at=utcnow()))


async def test_a_hold_committed_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    async with kit(database, keyring, fake_onesignal, app) as gone:
        send = await gone.create(team_id=DEFAULT_TEAM_ID, requester_id=ALICE, due_in=3600)
        await require_approvals(database, fake_slack)  # after it was scheduled
        await _made_due(database, send)
        held = await gone.deliverer.deliver(await gone.row(send))
        assert held is not None and held.state == SendState.PENDING_APPROVAL
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")
        asked = await _posted_once(fake_slack, _in_approvals, "the approval request")

    assert f"`{send.short_id}` waits for approval" in dm.args["text"]
    assert "Approve" in str(asked.args["blocks"]) and f"`{send.short_id}`" in asked.args["text"]
    assert await _notices_done(database) == ["held"]


async def test_a_send_failed_for_an_unreadable_policy_by_a_process_that_died_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    async with kit(database, keyring, fake_onesignal, app) as gone:
        send = await gone.create(team_id=DEFAULT_TEAM_ID, requester_id=ALICE)
        async with database.sessions.begin() as session:
            await workspaces.update_workspace(
                session=session,
                team_id=DEFAULT_TEAM_ID,
                actor=ALICE,
                settings={"approvals": {"mode": "sometimes"}},
            )
        failed = await gone.deliverer.deliver(send)
        assert failed is not None and failed.state == SendState.FAILED
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        dm = await _posted_once(fake_slack, dm_to(ALICE), "the requester's DM")

    assert f"`{send.short_id}`" in dm.args["text"] and "failed" in dm.args["text"]
    assert "approval policy stored for this workspace is invalid" in str(dm.args["blocks"])
    assert await _notices_done(database) == ["failed"]


async def test_an_approval_request_stored_by_a_process_that_died_before_asking_is_asked_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    await require_approvals(database, fake_slack)
    async with kit(database, keyring, fake_onesignal, app) as gone:
        send = await gone.create(team_id=DEFAULT_TEAM_ID, requester_id=ALICE, approvals=1)
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        asked = await _posted_once(fake_slack, _in_approvals, "the approval request")

    assert f"`{send.short_id}`" in asked.args["text"] and "Approve" in str(asked.args["blocks"])
    assert await _notices_done(database) == ["approval_requested"]


async def test_an_approval_request_asked_by_its_own_process_is_not_asked_again(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    await _default_app(storage_factory, fake_onesignal)
    await require_approvals(database, fake_slack)
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        send = await running.services.sends.create(
            team_id=DEFAULT_TEAM_ID,
            requester_id=ALICE,
            app_name=None,
            content=SendContent(message="Doors open at 9"),
            audience=Audience(segments=(SEGMENT,)),
            due_at=None,
            timezone="UTC",
            confirm=True,
            approvals_required=1,
        )
        await running.services.deliverer.dispatch(send)
        await _grace_passed(database)
        asked = await _posted_once(fake_slack, _in_approvals, "the approval request")

    assert f"`{send.short_id}`" in asked.args["text"]
    assert await _notices_done(database) == ["approval_requested"]


async def test_an_edit_that_asks_approvers_again_is_asked_once_after_its_process_died(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await _default_app(storage_factory, fake_onesignal)
    await require_approvals(database, fake_slack)
    async with kit(database, keyring, fake_onesignal, app) as gone:
        send = await gone.create(
            "Doors open at 9", team_id=DEFAULT_TEAM_ID, requester_id=ALICE, due_in=3600
        )
        edited = await gone.sends.edit(
            team_id=DEFAULT_TEAM_ID,
            send_id=send.id,
            actor=ALICE,
            app_name=None,
            content=SendContent(message="Doors open at 10"),
            audience=Audience(segments=(SEGMENT,)),
            options=None,
            due_at=send.due_at,
            timezone="UTC",
            approvals_required=1,
        )
        assert edited.send.state == SendState.PENDING_APPROVAL
    await _grace_passed(database)

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        asked = await _posted_once(fake_slack, _in_approvals, "the approval request")

    assert "Doors open at 10" in str(asked.args["blocks"])
    assert f"<@{ALICE}>" in str(asked.args["blocks"])  # who edited it
    assert await _notices_done(database) == ["approval_requested"]
