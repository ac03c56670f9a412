"""The send engine (state machine, deliverer, recall) against the fake OneSignal over loopback
and a real database.

What a user would see: the requests OneSignal received (one per send, its UUID as
idempotency key), the row's state and error, the audit trail, and the notifier's calls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.admission import Admission
from bot.delivery import (
    Audience,
    DecisionRefused,
    DeliveryPolicy,
    NoLongerPending,
    SendContent,
    SendNotFound,
    SendRejected,
    StoreBusy,
    notification_ids,
    notification_name,
)
from bot.onesignal.batching import batch_key
from storage import claims, queries
from storage.models import SendState, utcnow
from tests.bot.deliverykit import FAST, SEGMENT, audit_chain_ok, kit, seeded_app
from tests.plugins.database import OTHER_TEAM
from tests.scenario.busy import held_by_another_writer, refusing_to_change, refusing_writes


@pytest.fixture
async def app(storage_factory, fake_onesignal):
    return await seeded_app(storage_factory, fake_onesignal)


@pytest.fixture
async def env(database, keyring, fake_onesignal, app):
    async with kit(database, keyring, fake_onesignal, app) as ready:
        yield ready


# --- creating ---------------------------------------------------------------------------------


async def test_create_stores_a_draft_scheduled_or_pending_send(env):
    draft = await env.create(confirm=False)
    scheduled = await env.create(due_in=3600)
    pending = await env.create(approvals=2)

    assert (draft.state, scheduled.state, pending.state) == (
        SendState.DRAFT,
        SendState.SCHEDULED,
        SendState.PENDING_APPROVAL,
    )
    stored = await env.row(scheduled)
    assert stored.content == {"message": "Hello"}
    assert stored.audience == {"segments": [SEGMENT], "excluded_segments": [], "external_ids": []}
    assert stored.app_name == "main" and stored.timezone == "Europe/Berlin"
    assert pending.approvals_required == 2
    assert await env.actions(scheduled) == ["send.created"]
    assert env.posted() == []  # creating never calls OneSignal


async def test_a_send_claimed_as_it_is_created_is_left_to_its_creator(env):
    await env.start()
    send = await env.create(claim=True)
    later = await env.create(due_in=3600, claim=True)  # only a send due now is claimed

    await asyncio.sleep(1.0)  # two sweeps of the running scheduler
    assert env.posted() == []
    assert (send.state, later.state) == (SendState.SENDING, SendState.SCHEDULED)

    await env.deliverer.dispatch(send)

    assert [r.json["idempotency_key"] for r in env.posted()] == [str(send.id)]
    assert (await env.row(send)).state == SendState.SENT
    assert await env.actions(send) == ["send.created", "send.sending", "send.sent"]


async def test_a_delivery_lets_a_slack_request_awaiting_its_ack_go_first(
    database, keyring, fake_onesignal, app
):
    admission = Admission()  # as serve's services wire it (bot.services.build_services)
    async with kit(database, keyring, fake_onesignal, app, yield_to=admission.acks_first) as env:
        send = await env.create(claim=True)
        with admission.acking():
            delivering = asyncio.create_task(env.deliverer.dispatch(send))
            await asyncio.sleep(0.3)  # less than ACKS_FIRST_WAIT: held all along
            assert env.posted() == []
        await delivering

        assert [r.json["idempotency_key"] for r in env.posted()] == [str(send.id)]
        assert (await env.row(send)).state == SendState.SENT


async def test_a_create_kept_waiting_past_its_lock_wait_is_busy_and_stores_nothing(env, database):
    async with held_by_another_writer(database, env.app.team_id):
        started = time.monotonic()
        with pytest.raises(StoreBusy):
            await env.sends.create(
                team_id=env.app.team_id,
                requester_id="U0ALICE",
                app_name=None,
                content=SendContent(message="Hello"),
                audience=Audience(segments=(SEGMENT,)),
                due_at=None,
                timezone="Europe/Berlin",
                confirm=True,
                lock_wait=0.2,
            )
        waited = time.monotonic() - started

    assert waited < 5  # it gave up on the lock, not on a default timeout
    assert await env.recall.recent(team_id=env.app.team_id, limit=5) == ([], [])


async def test_a_create_that_was_busy_leaves_the_next_one_of_its_app_working(env, database):
    # The busy create read the app's row in the transaction it then rolled back; the row kept
    # for the next sends must not be the one that rollback expired.
    async with held_by_another_writer(database, env.app.team_id):
        with pytest.raises(StoreBusy):
            await env.sends.create(
                team_id=env.app.team_id,
                requester_id="U0ALICE",
                app_name="main",
                content=SendContent(message="Hello"),
                audience=Audience(segments=(SEGMENT,)),
                due_at=None,
                timezone="Europe/Berlin",
                confirm=True,
                lock_wait=0.2,
            )

    send = await env.sends.create(
        team_id=env.app.team_id,
        requester_id="U0ALICE",
        app_name="main",
        content=SendContent(message="Hello again"),
        audience=Audience(segments=(SEGMENT,)),
        due_at=None,
        timezone="Europe/Berlin",
        confirm=True,
    )

    assert (await env.row(send)).app_name == "main"


async def _create_submitted(env, submission: str, message: str = "Hello"):
    return await env.sends.create(
        team_id=env.app.team_id,
        requester_id="U0ALICE",
        app_name=None,
        content=SendContent(message=message),
        audience=Audience(segments=(SEGMENT,)),
        due_at=None,
        timezone="Europe/Berlin",
        confirm=True,
        claim=True,
        submission=submission,
    )


async def test_a_submission_repeated_in_another_process_gets_the_first_send_and_sends_once(
    env, database, keyring, fake_onesignal, app
):
    async with kit(database, keyring, fake_onesignal, app, worker_id="replica-2") as other:
        send = await _create_submitted(env, "V0FORM")
        again = await _create_submitted(other, "V0FORM", message="pressed again")

        assert (again.id, again.short_id, again.replayed) == (send.id, send.short_id, True)
        assert again.claimed_by == env.deliverer.worker_id  # still its first process's to deliver
        assert await other.deliverer.deliver(again) is None
        await other.deliverer.dispatch(again)
        await env.deliverer.dispatch(send)

    assert [r.json["idempotency_key"] for r in env.posted()] == [str(send.id)]
    assert (await env.row(send)).state == SendState.SENT
    assert await env.actions(send) == ["send.created", "send.sending", "send.sent"]


async def test_a_send_claimed_by_a_process_that_died_is_taken_over_after_its_lease(
    env, database, app
):
    # Stored claimed by a process that died before sending it (and so never handed it back).
    async with database.sessions.begin() as session:
        send = await queries.create_send(
            session=session,
            team_id=app.team_id,
            requester_id="U0ALICE",
            app=app,
            content={"message": "Hello"},
            audience={"segments": [SEGMENT]},
            state=SendState.SCHEDULED,
            claim=claims.Claim("dies", timedelta(seconds=FAST.lease)),
        )
    await env.start()

    sent = await env.wait_state(send, SendState.SENT, seconds=10)

    assert [r.json["idempotency_key"] for r in env.posted()] == [str(send.id)]
    assert sent.attempts == 2
    assert await env.actions(send) == [
        "send.created",
        "send.sending",
        "send.reclaimed",
        "send.sent",
    ]


async def test_an_unknown_app_is_refused_naming_the_configured_ones(env, storage_factory):
    await storage_factory.app(name="staging")

    with pytest.raises(SendRejected) as caught:
        await env.sends.create(
            team_id=env.app.team_id,
            requester_id="U0ALICE",
            app_name="prod",
            content=SendContent(message="Hi"),
            audience=Audience(segments=[SEGMENT]),
            due_at=None,
            timezone="UTC",
            confirm=True,
        )

    assert caught.value.field == "app"
    assert "main, staging" in str(caught.value)


async def test_a_workspace_without_apps_is_told_how_to_add_one(env, storage_factory):
    await storage_factory.workspace(OTHER_TEAM)

    with pytest.raises(SendRejected, match="/push setup") as caught:
        await env.create(team_id=OTHER_TEAM)

    assert caught.value.field == "app"


@pytest.mark.parametrize(
    ("due_at", "words"),
    [
        (lambda: utcnow() - timedelta(minutes=5), "That time has passed"),
        (lambda: utcnow() + timedelta(days=31), "more than 30 days ahead"),
        (lambda: utcnow().replace(tzinfo=None), "no time zone"),
    ],
)
async def test_a_bad_time_is_refused(env, due_at, words):
    with pytest.raises(SendRejected, match=words) as caught:
        await env.sends.create(
            team_id=env.app.team_id,
            requester_id="U0ALICE",
            app_name=None,
            content=SendContent(message="Hi"),
            audience=Audience(segments=[SEGMENT]),
            due_at=due_at(),
            timezone="UTC",
            confirm=True,
        )

    assert caught.value.field == "when"


async def test_a_draft_is_confirmed_once_however_often_it_is_clicked(env):
    draft = await env.create(confirm=False)

    first, second = await asyncio.gather(
        env.sends.confirm(team_id=env.app.team_id, send_id=draft.id, actor="U0ALICE"),
        env.sends.confirm(team_id=env.app.team_id, send_id=draft.id, actor="U0ALICE"),
    )

    confirmed = [send for send in (first, second) if send is not None]
    assert len(confirmed) == 1
    assert confirmed[0].state == SendState.SCHEDULED and confirmed[0].due_at is not None
    assert await env.sends.discard(team_id=env.app.team_id, send_id=draft.id, actor="U0A") is False


async def test_a_discarded_draft_is_cancelled(env):
    draft = await env.create(confirm=False)

    assert await env.sends.discard(team_id=env.app.team_id, send_id=draft.id, actor="U0ALICE")

    assert (await env.row(draft)).state == SendState.CANCELLED


async def _missed(env, **create):
    send = await env.create(due_in=3600, **create)
    async with env.database.sessions.begin() as session:
        await queries.transition_send(
            session=session,
            team_id=send.team_id,
            send_id=send.id,
            expected=SendState.SCHEDULED,
            new=SendState.MISSED,
            actor="scheduler",
        )
    return send


async def test_a_missed_send_is_sent_again_once_however_often_it_is_clicked(env):
    send = await _missed(env)

    first, second = await asyncio.gather(
        env.sends.resend_missed(team_id=env.app.team_id, send_id=send.id, actor="U0ALICE"),
        env.sends.resend_missed(team_id=env.app.team_id, send_id=send.id, actor="U0ALICE"),
    )

    (resent,) = [s for s in (first, second) if s is not None]
    assert resent.state == SendState.SCHEDULED and resent.due_at <= utcnow()
    assert (await env.actions(send))[-1] == "send.scheduled"
    await env.deliverer.dispatch(resent)
    (request,) = env.posted()
    assert request.json["idempotency_key"] == str(send.id)


async def test_a_missed_send_sent_now_is_this_workers_before_any_sweep_sees_it(env):
    send = await _missed(env)

    resent = await env.sends.resend_missed(
        team_id=env.app.team_id, send_id=send.id, actor="U0ALICE", claim=True
    )

    assert (resent.state, resent.claimed_by) == (SendState.SENDING, env.deliverer.worker_id)
    swept = await claims.claim_due_sends(
        session_factory=env.database.sessions, now=utcnow(), worker_id="replica-2"
    )
    assert swept == []
    assert (await env.actions(send))[-2:] == ["send.scheduled", "send.sending"]
    delivered = await env.deliverer.deliver(resent)
    assert delivered.state == SendState.SENT and len(env.posted()) == 1


async def test_a_missed_send_waiting_for_approval_is_not_claimed(env):
    send = await _missed(env)

    resent = await env.sends.resend_missed(
        team_id=env.app.team_id,
        send_id=send.id,
        actor="U0ALICE",
        approvals_required=1,
        claim=True,
    )

    assert (resent.state, resent.claimed_by) == (SendState.PENDING_APPROVAL, None)


async def test_a_missed_send_asks_for_the_approvals_the_policy_now_requires(env):
    send = await _missed(env)

    resent = await env.sends.resend_missed(
        team_id=env.app.team_id, send_id=send.id, actor="U0ALICE", approvals_required=1
    )

    assert resent.state == SendState.PENDING_APPROVAL and resent.approvals_required == 1
    assert resent.due_at is None  # as soon as it is approved
    await env.deliverer.dispatch(resent)
    (notice,) = env.notifier.of("approval_requested")
    assert notice.send.id == send.id and env.posted() == []
    approved = await env.sends.approve(team_id=env.app.team_id, send_id=send.id, approver_id="U0B")
    assert approved.state == SendState.SENT


async def test_only_a_missed_send_is_sent_again(env):
    send = await env.create(due_in=3600)

    again = await env.sends.resend_missed(team_id=env.app.team_id, send_id=send.id, actor="U0A")

    assert again is None and (await env.row(send)).state == SendState.SCHEDULED


# --- delivering ---------------------------------------------------------------------------


async def test_a_send_due_now_reaches_onesignal_once_with_its_uuid_as_key(env):
    send = await env.create("Release 2.0 is out")

    await env.deliverer.dispatch(send)

    (request,) = env.posted()
    assert request.json["idempotency_key"] == str(send.id)
    assert request.json["contents"] == {"en": "Release 2.0 is out"}
    assert request.json["included_segments"] == [SEGMENT]
    assert request.json["app_id"] == env.fake.app.id
    row = await env.row(send)
    (created,) = env.created()
    assert row.state == SendState.SENT
    assert row.notification_id == created["id"]
    assert row.batches[0]["recipients"] == 1000
    assert row.finished_at is not None and row.lease_until is None
    assert await env.actions(send) == ["send.created", "send.sending", "send.sent"]
    (notice,) = env.notifier.of("send_delivered")
    assert notice.send.id == send.id and notice.send.notification_id == created["id"]
    assert await audit_chain_ok(env.database)


async def test_delivering_twice_sends_once(env):
    send = await env.create()

    results = await asyncio.gather(env.deliverer.deliver(send), env.deliverer.deliver(send))

    assert sum(result is not None for result in results) == 1
    assert len(env.posted()) == 1


async def test_a_send_already_on_its_way_is_not_attempted_again(env):
    hold = env.fake.faults.hold(method="POST", path="/notifications")
    send = await env.create()
    first = asyncio.create_task(env.deliverer.deliver(send))
    await asyncio.to_thread(hold.arrived.wait, 10)

    again = await env.deliverer.deliver(await env.row(send))  # claimed by this very process
    hold.release()
    await first

    assert again is None
    assert len(env.posted()) == 1
    assert (await env.row(send)).state == SendState.SENT


async def test_two_503s_then_success_make_one_notification(env):
    env.fake.faults.statuses([503, 503], path="/notifications")
    send = await env.create()

    await env.deliverer.deliver(send)

    posted = env.posted()
    assert len(posted) == 3
    assert {r.json["idempotency_key"] for r in posted} == {str(send.id)}
    assert len(env.created()) == 1
    assert (await env.row(send)).state == SendState.SENT


async def test_a_429_with_retry_after_is_waited_for(env):
    env.fake.faults.statuses([429], path="/notifications", retry_after=1)
    send = await env.create()

    await env.deliverer.deliver(send)

    first, second = env.posted()
    assert second.time - first.time >= 1.0
    assert second.json["idempotency_key"] == first.json["idempotency_key"] == str(send.id)
    assert len(env.created()) == 1
    assert (await env.row(send)).state == SendState.SENT


async def test_a_retry_after_beyond_the_grace_is_not_waited_for(env):
    env.fake.faults.statuses([429] * 5, path="/notifications", retry_after=3600)
    send = await env.create()

    row = await env.deliverer.deliver(send)

    assert len(env.posted()) == 1  # the client does not wait an hour either
    assert row.state == SendState.FAILED and row.lease_until is None
    assert row.last_error == (
        "OneSignal's rate limit was reached (HTTP 429). Not tried again: the next try (1 h "
        "later) would be more than 10 min after its due time."
    )
    (notice,) = env.notifier.of("send_failed")
    assert notice.reason == row.last_error
    assert env.created() == []


async def test_a_retry_is_planned_only_within_the_grace(database, keyring, fake_onesignal, app):
    async with kit(database, keyring, fake_onesignal, app, misfire_grace=30) as env:
        env.fake.faults.statuses([503] * 10, path="/notifications")
        send = await env.create()

        first = await env.deliverer.deliver(send)
        assert first is not None and first.state == SendState.SENDING  # 0.2 s: within 30 s
        assert first.lease_until is not None and first.due_at is not None
        assert first.lease_until <= first.due_at + timedelta(seconds=30)


async def test_a_400_fails_at_once_with_onesignals_message(env):
    env.fake.faults.statuses([400], path="/notifications")
    send = await env.create()

    await env.deliverer.deliver(send)

    assert len(env.posted()) == 1
    row = await env.row(send)
    assert row.state == SendState.FAILED
    assert row.last_error == "OneSignal refused it (HTTP 400): Bad Request."
    (notice,) = env.notifier.of("send_failed")
    assert notice.reason == row.last_error
    assert await env.actions(send) == ["send.created", "send.sending", "send.failed"]


async def test_nobody_to_send_to_fails_with_onesignals_reason(env):
    send = await env.create(segments=["Nobody Here"])

    await env.deliverer.deliver(send)

    row = await env.row(send)
    assert row.state == SendState.FAILED
    assert row.last_error == "OneSignal sent it to nobody: All included players are not subscribed."
    assert env.created() == []


async def test_users_onesignal_does_not_know_fail_at_once_with_its_reason(env):
    # OneSignal answers 200 without any id: nothing was sent, and asking again cannot help.
    send = await env.create(external_ids=["ghost-1", "ghost-2"])

    await env.deliverer.deliver(send)

    row = await env.row(send)
    assert row.state == SendState.FAILED
    assert row.last_error == (
        "OneSignal sent it to nobody: invalid_aliases: external_id: ghost-1, ghost-2."
    )
    assert len(env.posted()) == 1
    assert env.created() == []
    (notice,) = env.notifier.of("send_failed")
    assert notice.reason == row.last_error


async def test_a_passing_failure_keeps_the_send_for_a_later_attempt(env):
    env.fake.faults.statuses([503] * 4, path="/notifications")
    send = await env.create()
    tried_at = utcnow()

    row = await env.deliverer.deliver(send)

    assert row is not None and row.state == SendState.SENDING
    assert row.last_error == "OneSignal failed (HTTP 503): Service Unavailable."
    # held until the next attempt, a backoff after this one (which a busy machine may outlast)
    assert row.lease_until is not None and row.lease_until > tried_at
    assert row.attempts == 1
    assert "send.retry" in await env.actions(send)
    assert env.notifier.notices == []


async def test_5000_users_go_out_in_three_batches_with_three_keys(env):
    users = [f"user-{i}" for i in range(5000)]
    for user in users:
        env.fake.add_user(env.fake.app.id, user)
    send = await env.create(external_ids=users)

    await env.deliverer.deliver(send)

    posted = env.posted()
    keys = [r.json["idempotency_key"] for r in posted]
    assert keys == [batch_key(str(send.id), i, 3) for i in range(3)]
    assert [len(r.json["include_aliases"]["external_id"]) for r in posted] == [2000, 2000, 1000]
    assert all(r.json["target_channel"] == "push" for r in posted)
    row = await env.row(send)
    assert row.state == SendState.SENT and row.last_error is None
    assert [b["recipients"] for b in row.batches] == [2000, 2000, 1000]
    assert notification_ids(row) == [b["notification_id"] for b in row.batches]
    assert set(notification_ids(row)) == {n["id"] for n in env.created()}


async def test_one_failing_batch_is_reported_beside_the_two_that_went_out(env):
    users = [f"user-{i}" for i in range(5000)]
    for user in users:
        env.fake.add_user(env.fake.app.id, user)
    env.fake.faults.statuses([200, 400], path="/notifications")
    send = await env.create(external_ids=users)

    await env.deliverer.deliver(send)

    row = await env.row(send)
    first, second, third = row.batches
    assert row.state == SendState.SENT  # what went out can still be cancelled
    assert first["notification_id"] and third["notification_id"]
    assert second["notification_id"] is None and second["status"] == 400
    assert second["error"] == "OneSignal refused it (HTTP 400): Bad Request."
    (notice,) = env.notifier.of("send_failed")
    assert notice.reason == row.last_error
    assert "1 of 3 batches (2,000 users) failed" in notice.reason
    assert "batch 2 of 3 (2,000 users): OneSignal refused it (HTTP 400)" in notice.reason
    assert f"batch 1 ({first['notification_id']})" in notice.reason
    assert f"batch 3 ({third['notification_id']})" in notice.reason
    assert len(env.created()) == 2


async def test_a_create_answered_after_the_timeout_is_found_at_onesignal_and_sent(
    database, keyring, fake_onesignal, app
):
    policy = replace(FAST, client_retries=1)
    async with kit(database, keyring, fake_onesignal, app, policy=policy, http_timeout=0.3) as env:
        env.fake.faults.answer_late(2.0, method="POST", path="/notifications")
        send = await env.create()
        started = time.monotonic()

        row = await env.deliverer.deliver(send)

        took = time.monotonic() - started
    (created,) = env.created()
    assert row is not None and row.state == SendState.SENT
    assert row.notification_id == created["id"] and row.last_error is None
    # two tries of the pool's 0.3 s each (never 30 s a try), then OneSignal's list is read
    assert [r.json["idempotency_key"] for r in env.posted()] == [str(send.id)] * 2
    assert len(env.fake.requests_to("GET", "/notifications")) == 1
    assert took < 1.5
    assert len(env.notifier.of("send_delivered")) == 1
    assert await env.actions(send) == ["send.created", "send.sending", "send.sent"]


async def test_batches_answered_after_the_timeout_are_each_found_under_their_own_name(
    database, keyring, fake_onesignal, app
):
    users = [f"user-{i}" for i in range(5000)]
    for user in users:
        fake_onesignal.add_user(fake_onesignal.app.id, user)
    policy = replace(FAST, client_retries=0)
    async with kit(database, keyring, fake_onesignal, app, policy=policy, http_timeout=0.3) as env:
        env.fake.faults.answer_late(2.0, method="POST", path="/notifications")
        send = await env.create(external_ids=users)

        row = await env.deliverer.deliver(send)

    assert row is not None and row.state == SendState.SENT and row.last_error is None
    by_first_user = {n["include_aliases"]["external_id"][0]: n for n in env.created()}
    batches = [by_first_user[user] for user in ("user-0", "user-2000", "user-4000")]
    assert notification_ids(row) == [n["id"] for n in batches]
    assert [n["name"] for n in batches] == [f"{notification_name(send)} {i}/3" for i in (1, 2, 3)]


async def test_a_removed_app_fails_the_send_with_a_way_out(env):
    send = await env.create()
    async with env.database.sessions.begin() as session:
        stored = await session.get(type(send), send.id)
        stored.app_ref = None

    await env.deliverer.deliver(send)

    row = await env.row(send)
    assert row.state == SendState.FAILED
    assert "was removed from PushOps" in row.last_error
    assert env.posted() == []


async def test_a_failing_notifier_does_not_undo_a_delivery(env, caplog):
    class Broken:
        async def send_delivered(self, send):
            raise RuntimeError("Slack is down")

    env.deliverer.notifier.target = Broken()
    send = await env.create()

    await env.deliverer.dispatch(send)

    assert (await env.row(send)).state == SendState.SENT
    assert "could not tell Slack about send" in caplog.text


# --- approvals ----------------------------------------------------------------------------


async def test_dispatching_a_send_pending_approval_asks_the_approvers(env):
    send = await env.create(approvals=1)

    await env.deliverer.dispatch(send)

    (notice,) = env.notifier.of("approval_requested")
    assert notice.send.id == send.id
    assert env.posted() == []


async def test_the_requester_cannot_approve_their_own_send(env):
    send = await env.create(approvals=1)

    with pytest.raises(DecisionRefused):
        await env.sends.approve(team_id=env.app.team_id, send_id=send.id, approver_id="U0ALICE")

    assert (await env.row(send)).state == SendState.PENDING_APPROVAL


async def test_a_second_answer_and_a_decision_on_a_cancelled_send_are_refused_in_its_own_words(
    env,
):
    send = await env.create(approvals=2)
    team = env.app.team_id
    await env.sends.approve(team_id=team, send_id=send.id, approver_id="U0BOB")

    with pytest.raises(DecisionRefused, match=f"already answered for send {send.short_id}"):
        await env.sends.approve(team_id=team, send_id=send.id, approver_id="U0BOB")
    await env.recall.cancel(team_id=team, ref=send.short_id, actor="U0ALICE")
    with pytest.raises(NoLongerPending):
        await env.sends.reject(team_id=team, send_id=send.id, approver_id="U0CAROL", reason=None)

    row = await env.row(send)
    assert (row.state, row.approvals_received) == (SendState.CANCELLED, 1)


async def test_enough_approvals_schedule_and_deliver_the_send(env):
    send = await env.create(approvals=2)
    team = env.app.team_id

    once = await env.sends.approve(team_id=team, send_id=send.id, approver_id="U0BOB")
    twice = await env.sends.approve(team_id=team, send_id=send.id, approver_id="U0CAROL")

    assert once.state == SendState.PENDING_APPROVAL and once.approvals_received == 1
    assert twice.state == SendState.SENT
    assert len(env.posted()) == 1
    actions = await env.actions(send)
    assert actions[-4:] == ["approval.approve", "send.scheduled", "send.sending", "send.sent"]


async def test_a_rejected_send_is_never_sent(env):
    send = await env.create(approvals=1)

    rejected = await env.sends.reject(
        team_id=env.app.team_id, send_id=send.id, approver_id="U0BOB", reason="typo"
    )

    assert rejected.state == SendState.REJECTED
    assert env.posted() == []
    [notice] = env.notifier.of("send_rejected")
    assert (notice.send.id, notice.send.state, notice.actor) == (
        send.id,
        SendState.REJECTED,
        "U0BOB",
    )


async def test_approving_an_unknown_send_is_not_found(env):
    with pytest.raises(SendNotFound):
        await env.sends.approve(team_id=env.app.team_id, send_id=uuid.uuid4(), approver_id="U0B")


# --- cancelling -----------------------------------------------------------------------------


async def test_cancelling_a_scheduled_send_stops_it_before_it_leaves(env):
    send = await env.create(due_in=3600)

    outcome = await env.recall.cancel(team_id=env.app.team_id, ref=send.short_id, actor="U0BOB")

    assert outcome.kind == "stopped_before_sending"
    assert outcome.message == f"Stopped `{send.short_id}` before it was sent: nobody received it."
    assert outcome.send.state == SendState.CANCELLED
    assert env.fake.requests == []
    [notice] = env.notifier.notices
    assert (notice.kind, notice.actor, notice.reason) == (
        "send_cancelled",
        "U0BOB",
        outcome.message,
    )
    assert notice.send.state == SendState.CANCELLED and notice.send.finished_at is not None


async def test_cancelling_a_sent_send_asks_onesignal_and_says_what_that_means(env):
    send = await env.create()
    await env.deliverer.deliver(send)
    nid = (await env.row(send)).notification_id

    outcome = await env.recall.cancel(team_id=env.app.team_id, ref=nid, actor="U0BOB")

    assert outcome.kind == "cancelled_at_onesignal"
    assert "A notification already sending may still reach some users." in outcome.message
    assert env.fake.notifications[nid]["canceled"] is True
    assert (await env.row(send)).state == SendState.CANCELLED
    assert "send.cancel_at_onesignal" in await env.actions(send)


async def test_a_send_delivered_to_everyone_cannot_be_recalled(env):
    send = await env.create()
    await env.deliverer.deliver(send)
    env.fake.complete_delivery()

    outcome = await env.recall.cancel(team_id=env.app.team_id, ref=send.short_id, actor="U0BOB")

    assert outcome.kind == "already_finished"
    assert "already delivered to everyone" in outcome.message
    assert (await env.row(send)).state == SendState.SENT
    assert env.notifier.of("send_cancelled") == []  # nothing was stopped: nothing to tell


async def test_a_send_cancelled_while_going_out_is_stopped_at_onesignal_too(env):
    hold = env.fake.faults.hold(method="POST", path="/notifications")
    send = await env.create()
    delivery = asyncio.create_task(env.deliverer.deliver(send))
    await asyncio.to_thread(hold.arrived.wait, 10)

    outcome = await env.recall.cancel(team_id=env.app.team_id, ref=send.short_id, actor="U0BOB")
    hold.release()
    await delivery

    assert outcome.kind == "cancelled_at_onesignal"
    assert "may still reach some users" in outcome.message
    row = await env.row(send)
    (created,) = env.created()
    assert row.state == SendState.CANCELLED
    assert row.notification_id == created["id"]
    assert env.fake.notifications[created["id"]]["canceled"] is True
    # Told as cancelled by whom, never as "delivered", though OneSignal had accepted it.
    [notice] = env.notifier.notices
    assert (notice.kind, notice.actor, notice.reason) == (
        "send_cancelled",
        "U0BOB",
        outcome.message,
    )
    assert "send.cancel_at_onesignal" in await env.actions(send)


async def test_a_bare_onesignal_id_is_cancelled_in_the_app_that_has_it(env):
    from bot.onesignal import OneSignalClient

    async with OneSignalClient(
        rest_api_key=env.fake.app.rest_api_key, base_url=env.fake.url
    ) as client:
        created = await client.create_notification(
            {"app_id": env.fake.app.id, "contents": {"en": "x"}, "included_segments": [SEGMENT]}
        )

    outcome = await env.recall.cancel(team_id=env.app.team_id, ref=created.id, actor="U0BOB")

    assert outcome.send is None and outcome.kind == "cancelled_at_onesignal"
    assert "may still reach some users" in outcome.message
    assert env.fake.notifications[created.id]["canceled"] is True


@pytest.mark.parametrize("ref", ["ZZZZZZ", "4b506679-ece5-4b08-a6f2-867ea8367e7c", "not an id"])
async def test_an_unknown_reference_is_not_found(env, ref):
    with pytest.raises(SendNotFound, match="/push list"):
        await env.recall.cancel(team_id=env.app.team_id, ref=ref, actor="U0BOB")


async def test_another_workspaces_send_is_not_found(env, storage_factory):
    send = await env.create()
    await storage_factory.workspace(OTHER_TEAM)

    with pytest.raises(SendNotFound):
        await env.recall.find(team_id=OTHER_TEAM, ref=send.short_id)
    with pytest.raises(SendNotFound):
        await env.recall.cancel(team_id=OTHER_TEAM, ref=send.short_id, actor="U0EVE")

    assert (await env.row(send)).state == SendState.SCHEDULED


# --- status and estimates -------------------------------------------------------------------


async def test_status_sums_onesignals_counters_over_the_batches(env):
    users = [f"user-{i}" for i in range(3000)]
    for user in users:
        env.fake.add_user(env.fake.app.id, user)
    send = await env.create(external_ids=users)
    await env.deliverer.deliver(send)
    env.fake.complete_delivery()

    report = await env.recall.status(team_id=env.app.team_id, ref=send.short_id)

    assert len(report.notification_ids) == 2
    assert report.counters["successful"] + report.counters["failed"] == 3000
    assert report.counters["remaining"] == 0
    assert report.per_platform["android"]["successful"] == report.counters["successful"]
    assert report.completed_at is not None and report.note is None


async def test_status_of_a_send_not_yet_sent_says_so(env):
    send = await env.create(due_in=3600)

    report = await env.recall.status(team_id=env.app.team_id, ref=send.short_id)

    assert report.notification_ids == [] and report.note == "Not sent yet (scheduled)."
    assert env.fake.requests == []


async def test_estimate_asks_onesignal_for_the_audience(env):
    estimate = await env.recall.estimate(
        team_id=env.app.team_id, app_name=None, audience=Audience(segments=[SEGMENT])
    )

    assert estimate.count == 1000 and estimate.note is None


async def test_an_estimate_onesignal_cannot_give_says_why(env):
    env.fake.faults.statuses([401], path="/notifications/count-unsaved")

    estimate = await env.recall.estimate(
        team_id=env.app.team_id, app_name=None, audience=Audience(segments=[SEGMENT])
    )

    assert estimate.count is None
    assert estimate.note.startswith("estimate unavailable: OneSignal refused it (HTTP 401)")


async def test_recent_lists_upcoming_sends_by_due_time_then_finished_ones(env):
    later = await env.create(due_in=7200)
    sooner = await env.create(due_in=3600)
    created_first = await env.create()
    done = await env.create()
    await env.deliverer.deliver(done)
    await env.deliverer.deliver(created_first)  # finished last: listed first

    upcoming, finished = await env.recall.recent(team_id=env.app.team_id)

    assert [s.id for s in upcoming] == [sooner.id, later.id]
    assert [s.id for s in finished] == [created_first.id, done.id]


async def test_recent_keeps_the_soonest_of_many_and_one_apps_only(env, storage_factory):
    soonest = await env.create(due_in=600)  # created first
    for i in range(3):
        await env.create(due_in=3600 + i)
    other = await storage_factory.app(name="shop")
    await env.sends.create(
        team_id=env.app.team_id,
        requester_id="U0ALICE",
        app_name="shop",
        content=SendContent(message="shop"),
        audience=Audience(segments=(SEGMENT,)),
        due_at=utcnow() + timedelta(seconds=60),
        timezone="UTC",
        confirm=True,
    )

    upcoming, _ = await env.recall.recent(team_id=env.app.team_id, limit=2, app_name="main")
    (of_shop,), _ = await env.recall.recent(team_id=env.app.team_id, app_name=other.name)

    assert [s.id for s in upcoming][:1] == [soonest.id] and len(upcoming) == 2
    assert {s.app_name for s in upcoming} == {"main"} and of_shop.app_name == "shop"


async def test_the_policy_refuses_nonsense():
    with pytest.raises(ValueError):
        DeliveryPolicy(max_attempts=0)
    assert FAST.wait_before(1) == 0.2 and FAST.wait_before(3, retry_after=4) == 4


# --- a database that refuses writes -------------------------------------------------------------


async def test_a_result_the_database_refuses_is_kept_and_recorded_once_it_takes_writes(
    database, keyring, fake_onesignal, app
):
    policy = replace(FAST, lease=10.0, record_backoff=0.05, record_max_backoff=0.2)
    async with kit(database, keyring, fake_onesignal, app, policy=policy) as env:
        hold = env.fake.faults.hold(method="POST", path="/notifications")
        await env.start()
        send = await env.create()
        env.scheduler.timers.arm(send.id, utcnow())
        await asyncio.to_thread(hold.arrived.wait, 10)
        async with refusing_writes(database):
            hold.release()
            await asyncio.to_thread(lambda: _until(lambda: len(env.created()) == 1))
            await asyncio.sleep(0.5)  # several refused tries
            held = await env.row(send)
            told_meanwhile = list(env.notifier.notices)
        row = await env.wait_state(send, SendState.SENT)
        (delivered,) = await env.notifier.wait_for("send_delivered")

    (created,) = env.created()
    assert (held.state, held.claimed_by) == (SendState.SENDING, env.deliverer.worker_id)
    assert told_meanwhile == []  # nobody hears "failed" while it is being recorded
    assert row.notification_id == created["id"] == delivered.send.notification_id
    assert env.notifier.of("send_failed") == [] and len(env.posted()) == 1
    assert await env.actions(send) == ["send.created", "send.sending", "send.sent"]
    assert await audit_chain_ok(database)


async def test_one_result_the_database_refuses_never_holds_up_the_others(
    database, keyring, fake_onesignal, app
):
    policy = replace(FAST, lease=10.0, record_backoff=0.05, record_max_backoff=0.2)
    async with kit(database, keyring, fake_onesignal, app, policy=policy) as env:
        hold = env.fake.faults.hold(method="POST", path="/notifications")
        refused, taken = await env.create("Refused"), await env.create("Taken")
        deliveries = [asyncio.create_task(env.deliverer.deliver(s)) for s in (refused, taken)]
        await asyncio.to_thread(lambda: _until(lambda: hold.arrivals == 2))
        async with refusing_to_change(database, refused.short_id):
            hold.release()  # both answers come back together
            recorded = await asyncio.wait_for(deliveries[1], 10)
            await asyncio.sleep(0.3)  # the refused one is tried again meanwhile
            held = await env.row(refused)
        await asyncio.wait_for(deliveries[0], 10)
        row = await env.row(refused)

    assert recorded is not None and recorded.state == SendState.SENT
    assert held.state == SendState.SENDING and held.notification_id is None
    assert row.state == SendState.SENT and row.notification_id is not None
    assert [n.send.short_id for n in env.notifier.of("send_delivered")] == [
        taken.short_id,
        refused.short_id,
    ]
    assert len(env.created()) == 2 and len(env.posted()) == 2


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
