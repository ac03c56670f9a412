"""`Recall`: stopping sends (`cancel`) and reading them back (status, estimate, find, recent).

A send not left yet is cancelled in the database and its timer disarmed; one that left is
asked of OneSignal, and the answer says honestly what that means. Reading is the database's
rows and OneSignal's counters. Storage's errors are answered here in the delivery layer's own.
"""

from __future__ import annotations

import uuid
from typing import Final

from bot.delivery import notifications
from bot.delivery.answers import explain
from bot.delivery.apps import AppClient, AppUnavailable
from bot.delivery.attempt import earliest_call, notification_ids, notification_name
from bot.delivery.content import Audience, SendRejected
from bot.delivery.counters import FinalCounters
from bot.delivery.deliverer import Deliverer, audit_recall
from bot.delivery.outcomes import (
    MAY_STILL_REACH,
    CancelOutcome,
    Estimate,
    SendNotFound,
    StatusReport,
)
from bot.onesignal import (
    MAX_IDS_PER_REQUEST,
    EstimateRecipientsRequest,
    OneSignalError,
    SegmentPage,
)
from storage import queries
from storage.db import Database
from storage.errors import AppNotFound
from storage.models import Send, SendState

UPCOMING: Final = (SendState.PENDING_APPROVAL, SendState.SCHEDULED, SendState.SENDING)
FINISHED: Final = (
    SendState.SENT,
    SendState.FAILED,
    SendState.CANCELLED,
    SendState.REJECTED,
    SendState.EXPIRED,
    SendState.MISSED,
)
_NOT_LEFT: Final = (
    SendState.DRAFT,
    SendState.PENDING_APPROVAL,
    SendState.SCHEDULED,
    SendState.MISSED,
)

_CANCELLING: Final = ("stopped_before_sending", "cancelled_at_onesignal")
"""The kinds of `CancelOutcome` that moved the send to `cancelled`."""


class Recall:
    """Cancels sends and reports on them (one per process, beside its `Deliverer`).

    Args:
        deliverer: stops what OneSignal accepted for a send cancelled while going out;
            its database, apps, timers, notifier and outcome log are the ones used here.

    `counters` reads and records sends' final counters (`bot.delivery.counters`), paced per
    app for the whole process.
    """

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self.database = deliverer.database
        self.apps = deliverer.apps
        self.outcomes = deliverer.outcomes
        self.counters = FinalCounters(database=self.database, apps=self.apps)

    # --- cancelling ----------------------------------------------------------------------

    async def cancel(self, *, team_id: str, ref: str, actor: str) -> CancelOutcome:
        """Stop a send (short id or OneSignal id), or a bare OneSignal notification id.

        Not left yet (draft, pending approval, scheduled, missed): cancelled, its timer
        removed, nobody received it. Left (sending, sent): OneSignal is asked to cancel,
        and the message says honestly what that means. A send this cancelled goes to the
        notifier. Raises `SendNotFound`.
        """
        outcome = await self._cancel_ref(team_id, ref, actor)
        if outcome.send is not None and outcome.kind in _CANCELLING:
            await self.deliverer.notifier.send_cancelled(
                outcome.send, actor=actor, outcome=outcome.message
            )
        return outcome

    async def _cancel_ref(self, team_id: str, ref: str, actor: str) -> CancelOutcome:
        send = await self._lookup(team_id, ref)
        if send is None:
            return await self._cancel_bare(team_id, ref, actor)
        if send.state in _NOT_LEFT:
            outcome = await self._stop_before_sending(send, actor)
            if outcome is not None:
                return outcome
            send = await self._get(team_id, send.id) or send
        if send.state == SendState.SENDING:
            outcome = await self._stop_while_sending(send, actor)
            if outcome is not None:
                return outcome
            send = await self._get(team_id, send.id) or send
        if send.state == SendState.SENT:
            return await self._stop_sent(send, actor)
        if send.state == SendState.FAILED and _unconfirmed(send):
            return await self._stop_unconfirmed(send, actor)
        return CancelOutcome(
            send, "already_finished", f"`{send.short_id}` is {send.state.value}: nothing to stop."
        )

    async def _cancel(self, send: Send, actor: str, outcome: str) -> bool:
        """Cancel `send`, its news (`outcome`, in words for people) owed in the same
        transaction (`storage.outbox.NOTICE`)."""
        notice = _cancel_notice(actor, outcome)
        async with self.database.sessions.begin() as session:
            moved = await queries.cancel_send(
                session=session, team_id=send.team_id, send_id=send.id, actor=actor, notice=notice
            )
        if moved:
            self.outcomes.ended(send, state=SendState.CANCELLED, by=actor, before=send.state)
        return moved

    async def _stop_before_sending(self, send: Send, actor: str) -> CancelOutcome | None:
        message = f"Stopped `{send.short_id}` before it was sent: nobody received it."
        if not await self._cancel(send, actor, message):
            return None
        self.deliverer.timers.disarm(send.id)
        return CancelOutcome(
            await self._get(send.team_id, send.id), "stopped_before_sending", message
        )

    async def _stop_while_sending(self, send: Send, actor: str) -> CancelOutcome | None:
        message = (
            f"Stopped `{send.short_id}` while it was going out: if OneSignal had already "
            f"accepted it, PushOps asks OneSignal to cancel it. {MAY_STILL_REACH}"
        )
        if not await self._cancel(send, actor, message):
            return None
        await self.deliverer.stop_late(
            send, notification_ids(send), actor, look_up=send.attempts > 0
        )
        return CancelOutcome(
            await self._get(send.team_id, send.id), "cancelled_at_onesignal", message
        )

    async def _stop_unconfirmed(self, send: Send, actor: str) -> CancelOutcome:
        """A send that ended without OneSignal saying whether it went out: look for it by
        name now, and ask OneSignal to stop what it finds."""
        try:
            app = await self.apps.for_app(send.team_id, send.app_ref, send.app_name)
        except AppUnavailable as error:
            return CancelOutcome(send, "not_cancellable", f"Cannot stop `{send.short_id}`: {error}")
        name, since = notification_name(send), earliest_call(send)
        ids = await notifications.find_by_name(app, name, since=since)
        if not ids:
            return CancelOutcome(
                send,
                "already_finished",
                f"OneSignal lists no notification of `{send.short_id}`: nothing to stop.",
            )
        answer = await notifications.recall(app, ids)
        await audit_recall(self.database, send, actor, answer)
        return CancelOutcome(
            send,
            "already_finished",
            f"OneSignal had `{send.short_id}` after all ({', '.join(ids)}); PushOps asked "
            f"OneSignal to stop it. {MAY_STILL_REACH}",
        )

    async def _stop_sent(self, send: Send, actor: str) -> CancelOutcome:
        ids = notification_ids(send)
        try:
            app = await self.apps.for_app(send.team_id, send.app_ref, send.app_name)
        except AppUnavailable as error:
            return CancelOutcome(send, "not_cancellable", f"Cannot stop `{send.short_id}`: {error}")
        answer = await notifications.recall(app, ids)
        await audit_recall(self.database, send, actor, answer)
        if answer.ids("cancelled"):
            message = (
                f"Asked OneSignal to stop `{send.short_id}` ({', '.join(ids)}); what had not "
                f"gone out yet will not. {MAY_STILL_REACH}"
            )
            async with self.database.sessions.begin() as session:
                moved = await queries.transition_send(
                    session=session,
                    team_id=send.team_id,
                    send_id=send.id,
                    expected=SendState.SENT,
                    new=SendState.CANCELLED,
                    actor=actor,
                    details={"cancelled_at_onesignal": answer.ids("cancelled")},
                    notice=_cancel_notice(actor, message),
                )
            if moved:
                self.outcomes.ended(send, state=SendState.CANCELLED, by=actor, before=send.state)
            return CancelOutcome(
                await self._get(send.team_id, send.id), "cancelled_at_onesignal", message
            )
        if answer.ids("error"):
            why = " ".join(answer.errors.values())
            return CancelOutcome(
                send,
                "not_cancellable",
                f"Could not stop `{send.short_id}`: {why} Try again in a minute.",
            )
        return CancelOutcome(
            send,
            "already_finished",
            f"`{send.short_id}` was already delivered to everyone; a push cannot be recalled "
            "once it has arrived.",
        )

    async def _cancel_bare(self, team_id: str, ref: str, actor: str) -> CancelOutcome:
        """A OneSignal id PushOps did not send: cancel it in whichever app of ours has it."""
        nid = _notification_id(ref)
        found = await notifications.find_notification(await self.apps.all_of(team_id), nid)
        if found is None:
            raise SendNotFound(ref)
        app, _details = found
        answer = await notifications.recall(app, [nid])
        await _audit_bare_cancel(self.database, team_id, actor, nid, app, answer)
        if answer.answers.get(nid) == "cancelled":
            return CancelOutcome(
                None,
                "cancelled_at_onesignal",
                f"Asked OneSignal to stop notification {nid} (app {app.name}); what had not "
                f"gone out yet will not. {MAY_STILL_REACH}",
            )
        if answer.answers.get(nid) == "finished":
            return CancelOutcome(
                None,
                "already_finished",
                f"Notification {nid} was already delivered to everyone; it cannot be recalled.",
            )
        return CancelOutcome(
            None,
            "not_cancellable",
            f"Could not stop notification {nid}: {' '.join(answer.errors.values())} "
            "Try again in a minute.",
        )

    # --- reading -------------------------------------------------------------------------

    async def status(self, *, team_id: str, ref: str) -> StatusReport:
        """OneSignal's counters for a send (summed over its batches) or a bare notification id.

        Raises `SendNotFound`. When OneSignal cannot answer, the report carries a `note`.
        """
        send = await self._lookup(team_id, ref)
        if send is None:
            return await self._bare_status(team_id, ref)
        ids = notification_ids(send)
        if not ids:
            return StatusReport(send, [], note=_not_sent_note(send))
        try:
            app = await self.apps.for_app(send.team_id, send.app_ref, send.app_name)
        except AppUnavailable as error:
            return StatusReport(send, ids, note=f"Counters unavailable: {error}")
        counters, problems = await notifications.read_counters(app, ids)
        note = f"Counters unavailable for {'; '.join(problems)}" if problems else None
        return StatusReport(
            send,
            ids,
            counters.totals,
            counters.per_platform,
            counters.completed_at,
            counters.canceled,
            note,
        )

    async def _bare_status(self, team_id: str, ref: str) -> StatusReport:
        nid = _notification_id(ref)
        found = await notifications.find_notification(await self.apps.all_of(team_id), nid)
        if found is None:
            raise SendNotFound(ref)
        counters = notifications.Counters()
        counters.add(found[1])
        note = f"Not sent by PushOps; found in app {found[0].name}."
        return StatusReport(
            None,
            [nid],
            counters.totals,
            counters.per_platform,
            counters.completed_at,
            counters.canceled,
            note,
        )

    async def estimate(self, *, team_id: str, app_name: str | None, audience: Audience) -> Estimate:
        """How many people `audience` reaches now (OneSignal's count); a note when unknown.

        Raises `SendRejected(field="app")` for an unknown app.
        """
        async with self.database.sessions() as session:
            stored = await self.apps.resolve(session, team_id, app_name)
        try:
            app = await self.apps.for_app(team_id, stored.id, stored.name)
        except AppUnavailable as error:
            return Estimate(None, f"estimate unavailable: {error}")
        if audience.by_id and len(audience.external_ids) > MAX_IDS_PER_REQUEST:
            return Estimate(
                None,
                f"estimate unavailable: OneSignal counts up to {MAX_IDS_PER_REQUEST:,} users "
                f"at once; this send lists {len(audience.external_ids):,}.",
            )
        return await _estimate(app, audience)

    async def get(self, *, team_id: str, send_id: uuid.UUID) -> Send | None:
        """The send with this UUID in this workspace (another workspace's is not found)."""
        return await self._get(team_id, send_id)

    async def segments(self, *, team_id: str, app_name: str | None, limit: int) -> SegmentPage:
        """The app's segments as OneSignal lists them, oldest first, at most `limit`.

        `SendRejected(field="app")` when the app is not set up (any more); OneSignalError
        when OneSignal does not list them.
        """
        try:
            app = await self.apps.by_name(team_id, app_name)
        except AppNotFound:
            raise SendRejected("app", f"There is no app {app_name!r} here any more.") from None
        return await app.client.get_segments(app.onesignal_app_id, limit=limit)

    async def find(self, *, team_id: str, ref: str) -> Send:
        """The send `ref` names (short id or OneSignal id) in this workspace; `SendNotFound`."""
        send = await self._lookup(team_id, ref)
        if send is None:
            raise SendNotFound(ref)
        return send

    async def recent(
        self, *, team_id: str, limit: int = 20, app_name: str | None = None
    ) -> tuple[list[Send], list[Send]]:
        """(upcoming, recent), at most `limit` of each, optionally of one app only.

        Upcoming: sends yet to go out, the soonest due first (one waiting for approval
        without a time counts from its creation). Recent: finished ones, the latest to end
        first. Both are chosen in the database, so the limit never drops the soonest.
        """
        async with self.database.sessions() as session:
            upcoming = await queries.list_sends(
                session=session,
                team_id=team_id,
                states=UPCOMING,
                app_name=app_name,
                order="due",
                limit=limit,
            )
            finished = await queries.list_sends(
                session=session,
                team_id=team_id,
                states=FINISHED,
                app_name=app_name,
                order="finished",
                limit=limit,
            )
        return upcoming, finished

    async def _lookup(self, team_id: str, ref: str) -> Send | None:
        async with self.database.sessions() as session:
            return await queries.find_send(session=session, team_id=team_id, ref=ref)

    async def _get(self, team_id: str, send_id: uuid.UUID) -> Send | None:
        async with self.database.sessions() as session:
            return await queries.get_send(session=session, team_id=team_id, send_id=send_id)


def _cancel_notice(actor: str, outcome: str) -> queries.Notice:
    """The news of a cancel owed with it: who cancelled, and what the cancel did."""
    return "cancelled", {"actor": actor, "outcome": outcome}


def _notification_id(ref: str) -> str:
    try:
        return str(uuid.UUID(ref.strip().strip("`")))
    except ValueError:
        raise SendNotFound(ref) from None


def _unconfirmed(send: Send) -> bool:
    """Whether the send ended with a batch OneSignal never said anything of."""
    return any(batch.get("unknown") for batch in send.batches or [])


def _not_sent_note(send: Send) -> str:
    if send.state in (SendState.SCHEDULED, SendState.PENDING_APPROVAL, SendState.DRAFT):
        return f"Not sent yet ({send.state.value.replace('_', ' ')})."
    if send.state == SendState.SENDING:
        return "Going out now; OneSignal has not confirmed it yet."
    if _unconfirmed(send):
        return f"Not known whether it was sent: {send.last_error}"
    if send.last_error:
        return f"Nothing was sent: {send.last_error}"
    return f"Nothing was sent ({send.state.value})."


async def _estimate(app: AppClient, audience: Audience) -> Estimate:
    if audience.by_id:
        request = EstimateRecipientsRequest(
            app_id=app.onesignal_app_id,
            include_aliases={"external_id": list(audience.external_ids)},
            target_channel="push",
        )
    else:
        request = EstimateRecipientsRequest(
            app_id=app.onesignal_app_id, **audience.segment_fields()
        )
    try:
        estimate = await app.client.estimate_notification_recipients(request)
    except OneSignalError as error:
        return Estimate(None, f"estimate unavailable: {explain(error)}")
    note = "OneSignal capped this count." if estimate.cap_applied else None
    return Estimate(estimate.count, note)


async def _audit_bare_cancel(
    database: Database,
    team_id: str,
    actor: str,
    nid: str,
    app: AppClient,
    answer: notifications.CancelAnswers,
) -> None:
    """Audit a cancel of a notification PushOps did not send."""
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session,
            team_id=team_id,
            actor=actor,
            action="notification.cancel",
            target=f"notification {nid}",
            outcome="ok" if answer.answers.get(nid) != "error" else "error",
            details={"app": app.name, "answer": answer.answers.get(nid), **answer.errors},
        )
