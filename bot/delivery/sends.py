"""`Sends`: the send state machine between the Slack surface and the deliverer.

It stores sends (`create`), moves them through their states (`confirm`, `discard`,
`resend_missed`, `approve`, `reject`), each move an audited compare-and-set, changes an
upcoming one (`edit`: not a move of its own, see `storage.edits`), and hands what
may go to the `Deliverer` (`approve` dispatches; a caller dispatches what it created or
confirmed, after Slack's ack). Fast methods touch only the database and may run before the
ack. Storage's errors are answered here in the delivery layer's own (`bot.delivery.outcomes`).
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.content import Audience, SendContent, SendRejected
from bot.delivery.deliverer import Deliverer
from bot.delivery.options import DeliveryOptions
from bot.delivery.outcomes import (
    DecisionRefused,
    NoLongerPending,
    NotEditable,
    SendNotFound,
    store_errors,
)
from bot.delivery.templates import Templates
from bot.timeparse import MAX_AHEAD, too_far_ahead
from storage import claims, edits, outbox, queries
from storage.db import limited_lock_wait
from storage.errors import (
    AlreadyDecided,
    AppNotFound,
    IllegalTransition,
    NoSuchSend,
    SelfApproval,
)
from storage.errors import NotEditable as StoredNotEditable
from storage.models import Decision, Send, SendState

Edit = edits.Edited
"""An edit saved: the send as it is now, what changed (`content`, `due_at`...), its old state."""

PAST_TOLERANCE: Final = timedelta(seconds=60)
"""How far in the past a due time may be (a slow form) before it is refused as passed."""


class Sends:
    """Creates, confirms, approves and rejects sends (one per process, on its `Deliverer`).

    Args:
        deliverer: delivers what may go; its database, clock, apps and approval gate are
            the ones the state machine uses.
    """

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self.database = deliverer.database
        self.clock = deliverer.clock
        self.templates = Templates(deliverer.apps)  # OneSignal's templates, for sends to use

    # --- creating ------------------------------------------------------------------------

    async def create(
        self,
        *,
        team_id: str,
        requester_id: str,
        app_name: str | None,
        content: SendContent,
        audience: Audience,
        due_at: datetime | None,
        timezone: str,
        confirm: bool,
        options: DeliveryOptions | None = None,
        is_test: bool = False,
        approvals_required: int = 0,
        claim: bool = False,
        submission: str | None = None,
        lock_wait: float | None = None,
    ) -> Send:
        """Validate and store a send (fast, database only: it may run before the ack).

        `confirm=False` stores a draft (a preview awaiting its Send button); `confirm=True`
        a scheduled send, or one pending approval when `approvals_required > 0`. `due_at`
        None means now. With `claim`, a send that can go at once (confirmed, due now, no
        approval needed) is claimed for this process as it is stored, so no scheduler takes
        it while the caller gets to `dispatch` it. Call `dispatch(send)` after the ack.
        `submission` (a compose form's view id) stores one send per form, in any process:
        a repeat gets the send stored first, marked `replayed`, to answer with, not to
        dispatch again. Raises `SendRejected` (an app removed meanwhile too); `StoreRefused`
        when the database refused the write (nothing stored), `StoreInterrupted` when it
        failed at the commit (unknown). With `lock_wait`, it waits at most that many seconds
        for other writers' locks, then raises `StoreBusy` having stored nothing; a store that
        got its locks is never cut short, so whoever is told it failed can rely on it.
        """
        self._check_due(due_at, timezone)
        if approvals_required < 0:
            raise ValueError("approvals_required must not be negative")
        state = SendState.DRAFT
        if confirm:
            state = SendState.PENDING_APPROVAL if approvals_required else SendState.SCHEDULED
        now = state == SendState.SCHEDULED and (due_at is None or due_at <= self.clock())
        deliverer = self.deliverer
        taken = claims.Claim(deliverer.worker_id, deliverer.lease) if claim and now else None
        waiting = limited_lock_wait(lock_wait) if lock_wait is not None else nullcontext()
        try:
            with store_errors("send") as storing, waiting:
                async with self.database.sessions.begin() as session:
                    app = await deliverer.apps.resolve(session, team_id, app_name)
                    send = await queries.create_send(
                        session=session,
                        team_id=team_id,
                        requester_id=requester_id,
                        app=app,
                        content=content.stored(),
                        audience=audience.model_dump(mode="json"),
                        options=options.stored() if options is not None else {},
                        state=state,
                        due_at=due_at,
                        timezone=timezone,
                        approvals_required=approvals_required,
                        is_test=is_test,
                        claim=taken,
                        submission=submission,
                    )
                    if state == SendState.PENDING_APPROVAL and not send.replayed:
                        await _owe_request(session, send)
                    storing.committing = True
        except AppNotFound:  # removed while the send was being stored
            raise SendRejected("app", f"There is no app {app_name!r} here any more.") from None
        if taken is not None and deliverer.claimed_here(send) and not send.replayed:
            deliverer.claimed_as_stored(send)
        return send

    def _check_due(self, due_at: datetime | None, timezone: str) -> None:
        if due_at is None:
            return
        if due_at.tzinfo is None:
            raise SendRejected("when", "The time has no time zone; give one, like 09:00 UTC.")
        now = self.clock()
        if due_at < now - PAST_TOLERANCE:
            raise SendRejected(
                "when", "That time has passed. Pick a later time, or leave it out to send now."
            )
        if due_at > now + MAX_AHEAD:  # the form's picker allows any date
            raise SendRejected("when", too_far_ahead(now, timezone))

    def forget_policy(self, team_id: str) -> None:
        """The workspace's approval policy changed: due sends are checked against the new one."""
        self.deliverer.approvals.forget(team_id)

    def forget_apps(self, team_id: str) -> None:
        """The workspace's apps changed (added, replaced, removed, a new default)."""
        self.deliverer.apps.forget_team(team_id)
        self.templates.forget(team_id)

    async def confirm(
        self, *, team_id: str, send_id: uuid.UUID, actor: str, approvals_required: int = 0
    ) -> Send | None:
        """A draft's Send button: draft -> scheduled (or pending_approval); fast, database only.

        None when the draft is gone or already confirmed: two clicks cannot send twice.
        Call `dispatch(send)` after the ack.
        """
        new = SendState.PENDING_APPROVAL if approvals_required > 0 else SendState.SCHEDULED
        async with self.database.sessions.begin() as session:
            send = await queries.get_send(session=session, team_id=team_id, send_id=send_id)
            if send is None or send.state != SendState.DRAFT:
                return None
            values: dict[str, object] = {"approvals_required": approvals_required}
            if send.due_at is None:
                values["due_at"] = self.clock()
            moved = await queries.transition_send(
                session=session,
                team_id=team_id,
                send_id=send_id,
                expected=SendState.DRAFT,
                new=new,
                actor=actor,
                values=values,
                notice=_request_notice(new),
            )
        return await self._get(team_id, send_id) if moved else None

    async def discard(self, *, team_id: str, send_id: uuid.UUID, actor: str) -> bool:
        """A draft's Cancel button: draft -> cancelled; False when it was not a draft any more."""
        async with self.database.sessions.begin() as session:
            return await queries.transition_send(
                session=session,
                team_id=team_id,
                send_id=send_id,
                expected=SendState.DRAFT,
                new=SendState.CANCELLED,
                actor=actor,
            )

    async def resend_missed(
        self,
        *,
        team_id: str,
        send_id: uuid.UUID,
        actor: str,
        approvals_required: int = 0,
        claim: bool = False,
    ) -> Send | None:
        """A missed send's "Send now": missed -> scheduled, due now (compare-and-set, audited).

        `approvals_required` is what the workspace's policy asks now; a send with fewer
        approvals goes to pending_approval instead, due as soon as it is approved. Approvals
        already given to it still count: its content and audience are the ones approved.
        With `claim`, a send that can go at once is claimed for this process in the same
        transaction (as `create(claim=True)`), so no scheduler takes it before the caller
        delivers it. The caller checks the actor's right to send first. None when the send is
        no longer missed (a second click, a Drop). Fast, database only; call `dispatch(send)`
        (or deliver the claimed send) after.
        """
        if approvals_required < 0:
            raise ValueError("approvals_required must not be negative")
        async with self.database.sessions.begin() as session:
            send = await queries.get_send(session=session, team_id=team_id, send_id=send_id)
            if send is None or send.state != SendState.MISSED:
                return None
            new = SendState.SCHEDULED
            now = self.clock()
            # A fresh start: its attempts count again from the first.
            values: dict[str, object] = {"due_at": now, "last_error": None}
            if send.approvals_received < approvals_required:
                new = SendState.PENDING_APPROVAL
                values = {"due_at": None, "last_error": None}
                values["approvals_required"] = approvals_required
            values["attempts"] = 0
            moved = await queries.transition_send(
                session=session,
                team_id=team_id,
                send_id=send_id,
                expected=SendState.MISSED,
                new=new,
                actor=actor,
                values=values,
                details={"resent": True},
                notice=_request_notice(new),
            )
            if moved and claim and new == SendState.SCHEDULED:
                deliverer = self.deliverer
                taken = claims.Claim(deliverer.worker_id, deliverer.lease)
                await claims.claim_in(session=session, send_id=send_id, now=now, claim=taken)
        return await self._get(team_id, send_id) if moved else None

    # --- editing -------------------------------------------------------------------------

    async def edit(
        self,
        *,
        team_id: str,
        send_id: uuid.UUID,
        actor: str,
        app_name: str | None,
        content: SendContent,
        audience: Audience,
        options: DeliveryOptions | None,
        due_at: datetime | None,
        timezone: str,
        approvals_required: int,
    ) -> Edit:
        """Save new content, audience, app, options and time of an upcoming send (fast,
        database only: it may run before the ack). Call `dispatch(edit.send)` after the ack.

        The send keeps its id (its idempotency key) and short id. `approvals_required` is
        what the policy asks of it now: above zero it waits for approval again, approvals
        given before void; else it is scheduled. The caller checks who may edit. Raises
        `SendRejected` (a bad time, an app removed), `SendNotFound`, and `NotEditable` when
        it went out (or is going, or ended) first: then nothing is changed.
        """
        self._check_due(due_at, timezone)
        try:
            async with self.database.sessions.begin() as session:
                change = edits.SendEdit(
                    app=await self.deliverer.apps.resolve(session, team_id, app_name),
                    content=content.stored(),
                    audience=audience.model_dump(mode="json"),
                    options=options.stored() if options is not None else {},
                    due_at=due_at,
                )
                edited = await edits.edit_send(
                    session=session,
                    team_id=team_id,
                    send_id=send_id,
                    edit=change,
                    actor=actor,
                    approvals_required=max(approvals_required, 0),
                )
                if edited.changed and edited.send.state == SendState.PENDING_APPROVAL:
                    await _owe_request(session, edited.send, edited_by=actor)
                return edited
        except AppNotFound:
            raise SendRejected("app", f"There is no app {app_name!r} here any more.") from None
        except NoSuchSend:
            raise SendNotFound(str(send_id)) from None
        except StoredNotEditable as error:
            raise NotEditable(error.short_id, error.state) from None

    # --- approvals -----------------------------------------------------------------------

    async def approve(self, *, team_id: str, send_id: uuid.UUID, approver_id: str) -> Send | None:
        """Record an approval; with enough of them the send is scheduled and dispatched.

        Raises `DecisionRefused` (the requester, or an approver answering twice),
        `NoLongerPending` (cancelled, expired, decided meanwhile), and `SendNotFound` for an
        unknown id; then nothing is recorded. The send's row is locked
        from the check to the commit, so a cancel cannot slip between them. Returns the send
        as it is afterwards.
        """
        async with self.database.sessions.begin() as session:
            send = await self._record_decision(session, team_id, send_id, approver_id, None, True)
            if send.approvals_received >= send.approvals_required:
                values = {} if send.due_at is not None else {"due_at": self.clock()}
                moved = await queries.transition_send(
                    session=session,
                    team_id=team_id,
                    send_id=send_id,
                    expected=SendState.PENDING_APPROVAL,
                    new=SendState.SCHEDULED,
                    actor=approver_id,
                    values=values,
                )
                _require_moved(moved, send)
        approved = await self._get(team_id, send_id)
        if approved is not None and approved.state == SendState.SCHEDULED:
            await self.deliverer.dispatch(approved)
            return await self._get(team_id, send_id)
        return approved

    async def reject(
        self, *, team_id: str, send_id: uuid.UUID, approver_id: str, reason: str | None
    ) -> Send | None:
        """Record a rejection: pending_approval -> rejected, its news owed in the same
        transaction (`storage.outbox.NOTICE`). Raises as `approve`."""
        async with self.database.sessions.begin() as session:
            send = await self._record_decision(
                session, team_id, send_id, approver_id, reason, False
            )
            moved = await queries.transition_send(
                session=session,
                team_id=team_id,
                send_id=send_id,
                expected=SendState.PENDING_APPROVAL,
                new=SendState.REJECTED,
                actor=approver_id,
                details={"reason": reason} if reason else None,
                notice=("rejected", {"approver": approver_id}),
            )
            _require_moved(moved, send)
        self.deliverer.outcomes.ended(send, state=SendState.REJECTED, by=approver_id, reason=reason)
        rejected = await self._get(team_id, send_id)
        if rejected is not None and rejected.state == SendState.REJECTED:
            await self.deliverer.notifier.send_rejected(rejected, approver=approver_id)
        return rejected

    async def _record_decision(
        self,
        session: AsyncSession,
        team_id: str,
        send_id: uuid.UUID,
        approver_id: str,
        reason: str | None,
        approve: bool,
    ) -> Send:
        try:
            return await queries.record_approval(
                session=session,
                team_id=team_id,
                send_id=send_id,
                approver_id=approver_id,
                decision=Decision.APPROVE if approve else Decision.REJECT,
                reason=reason,
            )
        except NoSuchSend:
            raise SendNotFound(str(send_id)) from None
        except (SelfApproval, AlreadyDecided) as error:
            raise DecisionRefused(str(error)) from None
        except IllegalTransition as error:
            raise NoLongerPending(str(error)) from None

    async def _get(self, team_id: str, send_id: uuid.UUID) -> Send | None:
        async with self.database.sessions() as session:
            return await queries.get_send(session=session, team_id=team_id, send_id=send_id)


def _require_moved(moved: bool, send: Send) -> None:
    """Undo a decision (by raising inside its transaction) on a send that did not move.

    The row lock taken with the decision makes this unreachable; it stays so that a
    decision is never kept without its effect.
    """
    if not moved:
        raise NoLongerPending(f"Send {send.short_id} is no longer pending approval.")


def _request_notice(new: SendState) -> queries.Notice | None:
    """The news a move to `new` owes: approvers asked, when it waits for them."""
    return ("approval_requested", {}) if new == SendState.PENDING_APPROVAL else None


async def _owe_request(session: AsyncSession, send: Send, *, edited_by: str | None = None) -> None:
    """Owe the approvers' request for `send` in the transaction that made it wait for them
    (`storage.outbox.NOTICE`): asked even if this process dies before its notifier runs."""
    args = {"edited_by": edited_by} if edited_by else {}
    await outbox.owe_notice(session=session, send=send, outcome="approval_requested", args=args)
