"""Sends: short ids, the state machine's compare-and-set, cancel, approvals, their audit events."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage import claims, deliveries, queries
from storage.db import Database
from storage.deliveries import DeliveryResult
from storage.errors import AlreadyDecided, IllegalTransition, InvalidInput, SelfApproval
from storage.ids import ALPHABET
from storage.models import TRANSITIONS, AuditEvent, Decision, Send, SendState, utcnow
from tests.plugins.database import OTHER_TEAM


async def _audit_actions(database: Database, team_id: str) -> list[str]:
    async with database.sessions() as session:
        events = await queries.list_audit_events(session=session, team_id=team_id, limit=100)
    return [event.action for event in reversed(events)]


async def test_a_new_send_gets_a_short_id_and_a_created_event(database, storage_factory):
    app = await storage_factory.app()
    due = utcnow() + timedelta(hours=1)

    send = await storage_factory.send(app, due_at=due, requester_id="U0ALICE")

    assert len(send.short_id) == 6 and set(send.short_id) <= set(ALPHABET)
    async with database.sessions() as session:
        stored = await queries.get_send(session=session, team_id=app.team_id, send_id=send.id)
        events = await queries.list_audit_events(session=session, team_id=app.team_id, limit=1)
    assert stored is not None
    assert stored.state == SendState.SCHEDULED
    assert stored.due_at == due and stored.due_at.tzinfo is not None
    assert stored.content == {"contents": {"en": "Hello"}}
    assert (events[0].action, events[0].actor, events[0].target) == (
        "send.created",
        "U0ALICE",
        f"send {send.short_id}",
    )
    assert events[0].details["send_id"] == str(send.id)


async def test_a_taken_short_id_is_drawn_again(database, storage_factory):
    app = await storage_factory.app()
    first = await storage_factory.send(app)
    draws = iter([first.short_id, first.short_id, "NEW1D0"])

    async with database.sessions.begin() as session:
        second = await queries.create_send(
            session=session,
            team_id=app.team_id,
            requester_id="U0BOB",
            app=app,
            content={"contents": {"en": "x"}},
            audience={"segments": ["A"]},
            new_short_id=lambda: next(draws),
        )
    assert second.short_id == "NEW1D0"
    async with database.sessions() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(Send))
    assert count == 2


async def test_a_transition_wins_once(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app)

    async def move() -> bool:
        async with database.sessions.begin() as session:
            return await queries.transition_send(
                session=session,
                team_id=app.team_id,
                send_id=send.id,
                expected=SendState.SCHEDULED,
                new=SendState.CANCELLED,
                actor="U0CAROL",
            )

    assert await move() is True
    assert await move() is False
    async with database.sessions() as session:
        stored = await queries.get_send(session=session, team_id=app.team_id, send_id=send.id)
    assert stored is not None and stored.state == SendState.CANCELLED
    assert stored.finished_at is not None
    assert (await _audit_actions(database, app.team_id)).count("send.cancelled") == 1


async def test_a_transition_and_its_event_commit_or_roll_back_together(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app)

    with pytest.raises(RuntimeError):
        async with database.sessions.begin() as session:
            assert await queries.transition_send(
                session=session,
                team_id=app.team_id,
                send_id=send.id,
                expected=SendState.SCHEDULED,
                new=SendState.SENDING,
                actor="worker:a",
            )
            raise RuntimeError("crash before commit")

    async with database.sessions() as session:
        stored = await queries.get_send(session=session, team_id=app.team_id, send_id=send.id)
        sending_events = await session.scalar(
            sa.select(sa.func.count()).where(AuditEvent.action == "send.sending")
        )
    assert stored is not None and stored.state == SendState.SCHEDULED
    assert sending_events == 0


def _illegal_moves() -> list[tuple[SendState, SendState]]:
    return [(old, new) for old in SendState for new in SendState if new not in TRANSITIONS[old]]


@pytest.mark.parametrize(("old", "new"), _illegal_moves()[::7])
async def test_a_move_the_state_machine_lacks_is_refused(database, storage_factory, old, new):
    app = await storage_factory.app()
    send = await storage_factory.send(app, state=old)
    async with database.sessions.begin() as session:
        with pytest.raises(IllegalTransition, match=f"from {old.value} to {new.value}"):
            await queries.transition_send(
                session=session,
                team_id=app.team_id,
                send_id=send.id,
                expected=old,
                new=new,
                actor="U0X",
            )


async def test_a_transition_cannot_rewrite_identity_or_tenancy(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app)
    async with database.sessions.begin() as session:
        with pytest.raises(InvalidInput, match="team_id"):
            await queries.transition_send(
                session=session,
                team_id=app.team_id,
                send_id=send.id,
                expected=SendState.SCHEDULED,
                new=SendState.CANCELLED,
                actor="U0X",
                values={"team_id": "T0000OTHER"},
            )


async def test_a_delivery_result_is_found_by_any_batch_id_in_its_workspace_only(
    database, storage_factory
):
    app = await storage_factory.app()
    send = await storage_factory.send(app, state=SendState.SENDING, claimed_by="w1")
    notification_id = "b7f1c0de-0000-4000-8000-000000000001"
    second_batch = "b7f1c0de-0000-4000-8000-000000000002"
    batches = [
        {"batch": 0, "notification_id": notification_id},
        {"batch": 1, "notification_id": second_batch},
    ]

    lost = await deliveries.finish_sends(
        session_factory=database.sessions,
        worker_id="w2",
        results=[DeliveryResult(send.id, SendState.FAILED, error="x")],
    )
    kept = await deliveries.finish_sends(
        session_factory=database.sessions,
        worker_id="w1",
        results=[DeliveryResult(send.id, SendState.SENT, notification_id, batches)],
    )

    assert (lost.recorded, kept.recorded) == ([], [send.id])

    async with database.sessions() as session:
        found = await queries.find_send(session=session, team_id=app.team_id, ref=notification_id)
        by_second = await queries.find_send(
            session=session, team_id=app.team_id, ref=second_batch.upper()
        )
        elsewhere = await queries.find_send(session=session, team_id="T0000OTHER", ref=second_batch)
    assert by_second is not None and by_second.id == send.id
    assert elsewhere is None
    assert found is not None and found.id == send.id
    assert found.batches == batches and found.last_error is None
    assert found.state == SendState.SENT and found.lease_until is None


@pytest.mark.parametrize(
    ("state", "cancelled"),
    [
        (SendState.DRAFT, True),
        (SendState.PENDING_APPROVAL, True),
        (SendState.SCHEDULED, True),
        (SendState.SENDING, True),
        (SendState.MISSED, True),
        (SendState.SENT, False),
        (SendState.FAILED, False),
        (SendState.CANCELLED, False),
    ],
)
async def test_cancel_stops_what_is_not_delivered_yet(database, storage_factory, state, cancelled):
    app = await storage_factory.app()
    send = await storage_factory.send(app, state=state)
    async with database.sessions.begin() as session:
        result = await queries.cancel_send(
            session=session, team_id=app.team_id, send_id=send.id, actor="U0ONCALL", reason="typo"
        )
    assert result is cancelled
    if cancelled:
        async with database.sessions() as session:
            last = (await queries.list_audit_events(session=session, team_id=app.team_id, limit=1))[
                0
            ]
        assert last.action == "send.cancelled" and last.actor == "U0ONCALL"
        assert last.details["from"] == state.value and last.details["reason"] == "typo"


async def test_find_send_reads_a_short_id_as_typed(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app)
    typed = f"`{send.short_id.lower().replace('0', 'o').replace('1', 'l')}`"
    async with database.sessions() as session:
        found = await queries.find_send(session=session, team_id=app.team_id, ref=typed)
        missing = await queries.find_send(session=session, team_id=app.team_id, ref="ZZZZZZ")
    assert found is not None and found.id == send.id
    assert missing is None


async def test_approvals_count_once_per_approver_never_the_requester(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(
        app, state=SendState.PENDING_APPROVAL, requester_id="U0REQ", approvals_required=2
    )

    async def decide(approver: str, decision: Decision = Decision.APPROVE) -> Send:
        async with database.sessions.begin() as session:
            return await queries.record_approval(
                session=session,
                team_id=app.team_id,
                send_id=send.id,
                approver_id=approver,
                decision=decision,
            )

    with pytest.raises(SelfApproval, match="someone else"):
        await decide("U0REQ")
    assert (await decide("U0APP1")).approvals_received == 1
    with pytest.raises(AlreadyDecided):
        await decide("U0APP1")
    updated = await decide("U0APP2")
    assert updated.approvals_received == updated.approvals_required == 2

    async with database.sessions() as session:
        approvals = await queries.list_approvals(
            session=session, team_id=app.team_id, send_id=send.id
        )
    assert [(a.approver_id, a.decision) for a in approvals] == [
        ("U0APP1", Decision.APPROVE),
        ("U0APP2", Decision.APPROVE),
    ]
    rejected = await decide("U0APP3", Decision.REJECT)
    assert rejected.approvals_received == 2  # a reject counts nothing; the caller moves the send
    actions = await _audit_actions(database, app.team_id)
    assert actions[-3:] == ["approval.approve", "approval.approve", "approval.reject"]


async def test_a_decision_on_a_send_not_pending_is_refused(database, storage_factory):
    app = await storage_factory.app()
    send = await storage_factory.send(app, state=SendState.SCHEDULED)
    async with database.sessions.begin() as session:
        with pytest.raises(IllegalTransition, match="not pending approval"):
            await queries.record_approval(
                session=session,
                team_id=app.team_id,
                send_id=send.id,
                approver_id="U0APP1",
                decision=Decision.REJECT,
            )


async def test_a_new_send_as_returned_matches_its_row_in_every_column(database, storage_factory):
    """`create_send` builds the returned send itself rather than reading it back: it must
    hold what the table holds, column for column (a new column needs its value there)."""
    app = await storage_factory.app()
    async with database.sessions.begin() as session:
        send = await queries.create_send(
            session=session,
            team_id=app.team_id,
            requester_id="U0ALICE",
            app=app,
            content={"contents": {"en": "Hello"}},
            audience={"segments": ["All"]},
            state=SendState.SCHEDULED,
            claim=claims.Claim("w1"),
        )
    columns = [column.key for column in sa.inspect(Send).columns]
    async with database.sessions() as session:
        stored = await session.get(Send, send.id, populate_existing=True)
    assert stored is not None and stored is not send
    assert {c: getattr(send, c) for c in columns} == {c: getattr(stored, c) for c in columns}


async def test_sends_are_counted_by_state_across_workspaces(database, storage_factory):
    ours = await storage_factory.app()
    theirs = await storage_factory.app(OTHER_TEAM, name="theirs")
    later = utcnow() + timedelta(hours=1)
    await storage_factory.send(ours, due_at=later)
    await storage_factory.send(theirs, due_at=later)
    await storage_factory.send(theirs, state=SendState.PENDING_APPROVAL)
    await storage_factory.send(ours, state=SendState.SENT)

    async with database.sessions() as session:
        counts = await queries.count_sends(
            session=session,
            states=(SendState.SCHEDULED, SendState.PENDING_APPROVAL, SendState.MISSED),
        )

    assert counts == {
        SendState.SCHEDULED: 2,
        SendState.PENDING_APPROVAL: 1,
        SendState.MISSED: 0,
    }
