"""`SendService`: the send state machine between the Slack surface and OneSignal.

The Slack side calls it; the scheduler feeds it due sends. Fast methods
(`create`, `confirm`, `discard`, `find`, `recent`) touch only the database and may run
before Slack's ack; the others talk to OneSignal and run after it. Outcomes that happen
later (sent, failed, missed, expired) and every cancel or rejection reach people through
the `Notifier`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cache import Expiring
from bot.delivery import recall as recalling
from bot.delivery.answers import explain
from bot.delivery.apps import AppClient, AppClients, AppUnavailable
from bot.delivery.attempt import (
    Attempt,
    attempt_delivery,
    earliest_call,
    may_attempt,
    notification_ids,
    notification_name,
    settle,
)
from bot.delivery.content import Audience, SendContent, SendRejected
from bot.delivery.holds import ApprovalGate
from bot.delivery.options import DeliveryOptions
from bot.delivery.outcomes import (
    MAY_STILL_REACH,
    CancelOutcome,
    DecisionRefused,
    DeliveryPolicy,
    Estimate,
    NoLongerPending,
    SendNotFound,
    StatusReport,
    StoreBusy,
    StoreInterrupted,
    StoreRefused,
)
from bot.delivery.templates import Templates
from bot.delivery.writer import ResultWriter, WriteGate, Written
from bot.notifier import Notifier, NotifierRelay
from bot.onesignal import (
    MAX_IDS_PER_REQUEST,
    EstimateRecipientsRequest,
    OneSignalError,
    SegmentPage,
)
from bot.onesignal_clients import OneSignalClients
from bot.outcome_log import OutcomeLog
from bot.settings import Settings
from bot.timeparse import MAX_AHEAD, too_far_ahead
from storage import claims, queries
from storage.crypto import KeyRing
from storage.db import Database, WriteBusy, is_lock_timeout, limited_lock_wait
from storage.deliveries import apply_result
from storage.errors import AlreadyDecided, AppNotFound, IllegalTransition, SelfApproval
from storage.errors import SendNotFound as StoredSendNotFound
from storage.models import Decision, OneSignalApp, Send, SendState, utcnow

log = logging.getLogger(__name__)

PAST_TOLERANCE: Final = timedelta(seconds=60)
"""How far in the past a due time may be (a slow form) before it is refused as passed."""

APP_TTL: Final = 5.0
"""Seconds an app's row found by name is kept for new sends (see `SendService._resolve_app`)."""

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


Unrecorded = Callable[[Attempt], Awaitable[None]]
"""Told once when the database refused to record an attempt (`SendService.deliver`)."""


class Timers(Protocol):
    """What the service needs of the scheduler: in-memory timers keyed by send id."""

    def arm(self, send_id: uuid.UUID, due_at: datetime, *, retry: bool = False) -> None:
        """Act on the send at `due_at` (replacing an earlier timer of it); `retry`: the send
        is held in `sending` until then, and is taken over for another attempt."""

    def disarm(self, send_id: uuid.UUID) -> None:
        """Forget the send's timer, if any."""


def default_worker_id() -> str:
    """host:pid:random, unique per process, for `claimed_by`."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SendService:
    """Creates, confirms, approves, delivers, cancels and reports sends (one per process).

    Wire it with `bot.services.build_services`; tests build it directly. `notifier` may be
    replaced at any time (`service.notifier.target = ...`); `timers` is set by the
    `Scheduler` that uses this service.

    Args:
        database: where the sends are (every state change a compare-and-set there).
        keyring: decrypts the apps' OneSignal keys.
        clients: builds each app's OneSignal client (`Services.onesignal`).
        settings: the OneSignal base URL and PUSHOPS_MISFIRE_GRACE.
        notifier: who hears of outcomes (default: a logging `NullNotifier`).
        outcomes: where each outcome is logged and counted (default: logged only).
        policy: attempts, waits, leases and concurrency of delivery.
        worker_id: who claims sends (default: host:pid:random).
        clock: the current time (UTC).
    """

    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        clients: OneSignalClients,
        settings: Settings,
        notifier: Notifier | None = None,
        outcomes: OutcomeLog | None = None,
        policy: DeliveryPolicy | None = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.outcomes = outcomes or OutcomeLog()
        self.settings = settings
        self.policy = policy or DeliveryPolicy()
        self.notifier = notifier if isinstance(notifier, NotifierRelay) else NotifierRelay(notifier)
        self.worker_id = worker_id or default_worker_id()
        self.timers: Timers | None = None
        self.clock = clock
        self.apps = AppClients(
            database=database,
            keyring=keyring,
            clients=clients,
            policy=self.policy,
        )
        self.templates = Templates(self.apps)  # OneSignal's templates, for sends to use
        self.writes = WriteGate(database)
        self.approvals = ApprovalGate(database)
        # (team, app name or None for the default) -> the app's row; see _resolve_app
        self._app_rows: Expiring[tuple[str, str | None], OneSignalApp] = Expiring()
        self._writer = ResultWriter(
            database=database,
            worker_id=self.worker_id,
            batch=self.policy.record_batch,
            gate=self.writes,
            backoff=self.policy.record_backoff,
            max_backoff=self.policy.record_max_backoff,
        )
        self._slots = asyncio.Semaphore(self.policy.max_in_flight)
        self._delivering: set[uuid.UUID] = set()
        # Claimed here, their attempt's result not written yet; and of those, the ones whose
        # OneSignal call may have started. Shutdown hands them back (`aclose`).
        self._claims: set[uuid.UUID] = set()
        self._called: set[uuid.UUID] = set()
        self._closing = False
        # Sends claimed here as they were stored, waiting for a place to be delivered (see
        # `renewing`). Those that waited too long move to `_let_go`, so that their claim is
        # checked before they are delivered.
        self._queued: dict[uuid.UUID, _Queued] = {}
        self._let_go: dict[uuid.UUID, _Queued] = {}

    @property
    def grace(self) -> timedelta:
        """PUSHOPS_MISFIRE_GRACE: a send later than this is not sent blindly."""
        return timedelta(seconds=self.settings.misfire_grace)

    @property
    def lease(self) -> timedelta:
        """How long a claim holds (`DeliveryPolicy.lease`)."""
        return timedelta(seconds=self.policy.lease)

    def renewing(self) -> frozenset[uuid.UUID]:
        """The claims this process keeps renewing: the sends it is delivering, and those it
        claimed as it stored them, still waiting for a place to be delivered
        (`Admission.heavy_work`), for `DeliveryPolicy.max_queued` seconds at most: a claim
        that waited longer is let go here, and any scheduler may take the send over."""
        now = time.monotonic()
        for send_id, queued in list(self._queued.items()):
            if now - queued.since > self.policy.max_queued:
                self._let_go[send_id] = self._queued.pop(send_id)
                log.warning("send %s waited too long; its claim is let go", queued.short_id)
        return frozenset(self._delivering | self._queued.keys())

    def claimed(self, send_ids: Collection[uuid.UUID]) -> None:
        """Note sends claimed for this process elsewhere (the scheduler's batch claims), so
        that shutdown hands them back if they were never delivered."""
        self._claims.update(send_ids)

    def stop_calling(self) -> None:
        """Start no more OneSignal calls (at shutdown): a delivery waiting for its turn ends
        without calling, and `aclose` hands its send back."""
        self._closing = True

    async def aclose(self, *, within: float = 10.0) -> None:
        """At shutdown, once the deliveries ended: write the results still queued (trying
        those the database refuses for up to `within` s), then hand back the claims this
        process will not finish, so another worker takes them at once, not after the lease.

        A send whose OneSignal call never started goes back to `scheduled`, as if never
        claimed; one whose call may have started keeps its claim and key, its lease ended
        now, for the next worker to take over and ask OneSignal with the same key.
        """
        self._closing = True
        await self._writer.aclose(within=within)
        await self._hand_back()

    async def _hand_back(self) -> None:
        if not self._claims:
            return
        try:
            async with self.writes:
                handed = await claims.release_claims(
                    session_factory=self.database.sessions,
                    worker_id=self.worker_id,
                    send_ids=frozenset(self._claims),
                    untried=self._claims - self._called,
                    now=self.clock(),
                )
        except SQLAlchemyError as error:
            log.warning(
                "could not hand back %d claimed sends (%s); they are taken over when their "
                "lease ends", len(self._claims), type(error).__name__,
            )  # fmt: skip
            return
        self._claims.clear()
        self._called.clear()
        if handed.rescheduled or handed.handed_over:
            log.info(
                "handed back %d sends never sent to OneSignal (scheduled again) and %d whose "
                "OneSignal call may have started (taken over at once, same key)",
                len(handed.rescheduled), len(handed.handed_over),
            )  # fmt: skip

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
        taken = claims.Claim(self.worker_id, self.lease) if claim and now else None
        committing = False
        waiting = limited_lock_wait(lock_wait) if lock_wait is not None else nullcontext()
        try:
            with waiting:
                async with self.database.sessions.begin() as session:
                    app = await self._resolve_app(session, team_id, app_name)
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
                    committing = True
        except WriteBusy:
            raise StoreBusy("other writers held the database; nothing was stored") from None
        except AppNotFound:  # removed while the send was being stored
            raise SendRejected("app", f"There is no app {app_name!r} here any more.") from None
        except DBAPIError as error:
            if is_lock_timeout(error):
                raise  # no `lock_wait`: the caller's own `limited_lock_wait` says busy
            # Only a failure of the commit itself leaves it open whether the row was stored.
            failed = StoreInterrupted if committing else StoreRefused
            raise failed(f"the database failed ({type(error).__name__})") from error
        if taken is not None and self.claimed_here(send) and not send.replayed:
            self._claims.add(send.id)
            self._queued[send.id] = _Queued(time.monotonic(), send.short_id, send.attempts)
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

    async def _resolve_app(
        self, session: AsyncSession, team_id: str, app_name: str | None
    ) -> OneSignalApp:
        # Kept a few seconds: every send asks, before its ack, and apps rarely change. /push
        # setup forgets them at once (`forget_apps`); another replica's change shows within
        # APP_TTL, and a send to an app removed meanwhile fails at delivery, saying why.
        # The read is in the caller's transaction, so it is not an `Expiring.get` load (a task
        # of its own, which could outlive the session).
        found, kept = self._app_rows.peek((team_id, app_name))
        if found and kept is not None:
            return kept
        app = await queries.get_app(session=session, team_id=team_id, name=app_name)
        if app is not None:
            self._app_rows.put((team_id, app_name), app, APP_TTL)
            return app
        names = [a.name for a in await queries.list_apps(session=session, team_id=team_id)]
        if not names:
            raise SendRejected(
                "app",
                "No OneSignal app is set up in this workspace yet; an admin can add one "
                "with /push setup.",
            )
        if app_name is None:
            raise SendRejected(
                "app",
                f"This workspace has no default app; add --app with one of: {', '.join(names)}.",
            )
        raise SendRejected(
            "app", f"There is no app {app_name!r} here; use --app with one of: {', '.join(names)}."
        )

    def forget_policy(self, team_id: str) -> None:
        """The workspace's approval policy changed: due sends are checked against the new one."""
        self.approvals.forget(team_id)

    def forget_apps(self, team_id: str) -> None:
        """The workspace's apps changed (added, replaced, removed, a new default)."""
        self._app_rows.forget_where(lambda key: key[0] == team_id)
        self.apps.forget_team(team_id)
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
        self, *, team_id: str, send_id: uuid.UUID, actor: str, approvals_required: int = 0
    ) -> Send | None:
        """A missed send's "Send now": missed -> scheduled, due now (compare-and-set, audited).

        `approvals_required` is what the workspace's policy asks now; a send with fewer
        approvals goes to pending_approval instead, due as soon as it is approved. Approvals
        already given to it still count: its content and audience are the ones approved.
        The caller checks the actor's right to send first. None when the send is no longer
        missed (a second click, a Drop). Fast, database only; call `dispatch(send)` after.
        """
        if approvals_required < 0:
            raise ValueError("approvals_required must not be negative")
        async with self.database.sessions.begin() as session:
            send = await queries.get_send(session=session, team_id=team_id, send_id=send_id)
            if send is None or send.state != SendState.MISSED:
                return None
            new = SendState.SCHEDULED
            # A fresh start: its attempts count again from the first.
            values: dict[str, object] = {"due_at": self.clock(), "last_error": None}
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
            )
        return await self._get(team_id, send_id) if moved else None

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
            await self.dispatch(approved)
            return await self._get(team_id, send_id)
        return approved

    async def reject(
        self, *, team_id: str, send_id: uuid.UUID, approver_id: str, reason: str | None
    ) -> Send | None:
        """Record a rejection: pending_approval -> rejected. Raises as `approve`."""
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
            )
            _require_moved(moved, send)
        self.outcomes.ended(send, state=SendState.REJECTED, by=approver_id, reason=reason)
        rejected = await self._get(team_id, send_id)
        if rejected is not None and rejected.state == SendState.REJECTED:
            await self.notifier.send_rejected(rejected, approver=approver_id)
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
        except StoredSendNotFound:
            raise SendNotFound(str(send_id)) from None
        except (SelfApproval, AlreadyDecided) as error:
            raise DecisionRefused(str(error)) from None
        except IllegalTransition as error:
            raise NoLongerPending(str(error)) from None

    # --- delivering ----------------------------------------------------------------------

    async def dispatch(self, send: Send) -> None:
        """After the ack: deliver a scheduled send that is due (or one this process claimed
        as it created it), arm the timer of a later one, and ask approvers about a send
        pending approval. Outcomes go to the notifier."""
        if send.state == SendState.PENDING_APPROVAL:
            await self.notifier.approval_requested(send)
            return
        if self.claimed_here(send):
            await self.deliver(send)
            return
        if send.state != SendState.SCHEDULED:
            return
        due = send.due_at or self.clock()
        if due <= self.clock():
            await self.deliver(send)
        elif self.timers is not None:
            self.timers.arm(send.id, due)
        else:
            log.info("send %s is due at %s; no scheduler runs in this process", send.short_id, due)

    def claimed_here(self, send: Send) -> bool:
        """Whether `send` is held in `sending` by this process (to deliver, or retry)."""
        return send.state == SendState.SENDING and send.claimed_by == self.worker_id

    async def deliver(self, send: Send, *, unrecorded: Unrecorded | None = None) -> Send | None:
        """Deliver one send now and record the outcome; the send's row afterwards.

        A scheduled send is claimed first (scheduled -> sending; None when another worker
        claimed it, it is not due, or it is later than the grace). A claimed send keeps its
        UUID as idempotency key, so a retry reaches OneSignal with the same key. The send
        ends `sent`, `failed`, `missed`, or held in `sending` for another round at its
        lease's end. No attempt starts later than its due time plus the grace, nor after
        `max_attempts`: a held send found then only asks OneSignal what it has (`settle`).
        An outcome the database refuses to record is kept and tried again until it is
        recorded, the send still claimed; `unrecorded` hears of that at once, with what is
        known. None too when the process is shutting down before the call (`stop_calling`),
        and when a claim this process took as it stored the send was let go while it waited
        and another worker has it now.
        """
        if send.state == SendState.SCHEDULED:
            if self._closing:
                return None  # left for a worker that is not shutting down
            async with self.writes:
                claimed = await claims.claim_send(
                    session_factory=self.database.sessions,
                    send_id=send.id,
                    now=self.clock(),
                    worker_id=self.worker_id,
                    lease=self.lease,
                    grace=self.grace,
                )
            if claimed is None:
                return None
            send = claimed
        elif not self.claimed_here(send):
            return None
        if send.id in self._delivering:
            return None  # already on its way from this process
        self._delivering.add(send.id)
        if not await self._still_ours(send):
            self._delivering.discard(send.id)
            self._claims.discard(send.id)
            log.info("send %s waited too long; another worker took it", send.short_id)
            return None
        self._claims.add(send.id)
        try:
            held_back = await self._held_back(send)
            if held_back is not None:
                self._claims.discard(send.id)  # its claim was given up: nothing to hand back
                return held_back
            attempt = await self._attempt(send)
            if attempt is None:
                return None
            written = await self._writer.write(
                attempt.result, refused=lambda: self._unrecorded(send, attempt, unrecorded)
            )
            self._claims.discard(send.id)
            self._called.discard(send.id)
            if written.status == "recorded" and written.at is not None:
                written = Written("recorded", apply_result(send, attempt.result, written.at))
            await self._after(send, attempt, written)
            return written.send
        finally:
            self._delivering.discard(send.id)

    async def _attempt(self, send: Send) -> Attempt | None:
        """Call OneSignal for the send, or (it may not be attempted any more) only ask it
        what it has (`settle`); None when shutting down before any call."""
        async with self._slots:
            if self._closing:
                return None
            if not may_attempt(send, policy=self.policy, now=self.clock(), grace=self.grace):
                return await settle(
                    send, apps=self.apps, policy=self.policy, clock=self.clock, grace=self.grace
                )
            self._called.add(send.id)
            self.outcomes.attempting(send, self.clock())
            return await attempt_delivery(
                send, apps=self.apps, policy=self.policy, clock=self.clock, grace=self.grace
            )

    async def _still_ours(self, send: Send) -> bool:
        """Whether a send claimed here as it was stored is still this process's to deliver.

        One that waited for a place longer than a heartbeat may have been let go (or its
        renewals failed) and taken over meanwhile, by another worker or by this process's
        own scheduler: that claim is confirmed, and its lease extended, in the database
        first, so OneSignal is never called for one send by two deliveries at once.
        """
        queued = self._queued.get(send.id) or self._let_go.get(send.id)
        if queued is None or queued.attempt != send.attempts:
            return True  # a claim just taken (by the scheduler), not the one stored with it
        self._queued.pop(send.id, None)
        self._let_go.pop(send.id, None)
        if time.monotonic() - queued.since < self.policy.lease / 3:
            return True
        async with self.writes:
            return await claims.confirm_claim(
                session_factory=self.database.sessions,
                send_id=send.id,
                worker_id=self.worker_id,
                attempt=send.attempts,
                lease_until=self.clock() + self.lease,
            )

    async def _unrecorded(self, send: Send, attempt: Attempt, tell: Unrecorded | None) -> None:
        """The database refused the outcome: log it, and tell whoever waits for it."""
        ids = ", ".join(attempt.notification_ids) or "none"
        log.warning(
            "send %s: the database refused its outcome (%s, notifications: %s); kept and "
            "tried again", send.short_id, attempt.result.state.value, ids,
        )  # fmt: skip
        if tell is None:
            return
        try:
            await tell(attempt)
        except Exception:  # broad: telling must never undo what OneSignal accepted
            log.exception("could not tell about send %s waiting to be recorded", send.short_id)

    async def _held_back(self, send: Send) -> Send | None:
        """The send's row when the approval policy in force holds it back (or fails it, its
        stored policy unreadable) before its first attempt; None when it may go
        (`bot.delivery.holds`)."""
        actor = f"worker:{self.worker_id}"
        row = await self.approvals.check(send, actor=actor, now=self.clock())
        if row is not None and row.state == SendState.PENDING_APPROVAL:
            await self.notifier.send_held(row)
        elif row is not None and row.state == SendState.FAILED:
            await self.notifier.send_failed(row, row.last_error or "Nothing was sent.")
        return row

    async def _after(self, send: Send, attempt: Attempt, written: Written) -> None:
        """Tell people, arm a retry, or stop what OneSignal sent for a send cancelled meanwhile."""
        row = written.send
        if written.status == "lost" and row is not None and row.state == SendState.CANCELLED:
            await self._stop_late(row, attempt.notification_ids, f"worker:{self.worker_id}")
            return
        if written.status != "recorded" or row is None:
            log.info("send %s was taken over by another worker", send.short_id)
            return
        if row.state in (SendState.SENT, SendState.FAILED, SendState.MISSED):
            self.outcomes.ended(row, reason=attempt.reason)
        if row.state == SendState.SENT and attempt.reason is None:
            await self.notifier.send_delivered(row)
        elif row.state == SendState.MISSED:
            await self.notifier.send_missed(row)
        elif row.state in (SendState.SENT, SendState.FAILED):
            await self.notifier.send_failed(row, attempt.reason or "Delivery failed.")
        elif row.lease_until is not None:
            # Its next claim calls OneSignal's create again, or only asks for it by name.
            again = row.attempts < self.policy.max_attempts and may_attempt(
                row, policy=self.policy, now=row.lease_until, grace=self.grace
            )
            self.outcomes.held(row, attempt.reason, retry=again)
            if self.timers is not None:
                self.timers.arm(row.id, row.lease_until, retry=True)

    async def _stop_late(
        self, send: Send, ids: list[str], actor: str, *, look_up: bool = False
    ) -> None:
        """The send was cancelled while going out: ask OneSignal to stop what it accepted.

        `look_up`: with no id recorded, look for notifications OneSignal may have created
        for it anyway (its worker died after the call, before writing the answer down).
        """
        if not ids and not look_up:
            return
        try:
            app = await self.apps.for_app(send.team_id, send.app_ref, send.app_name)
        except AppUnavailable as error:
            log.warning("send %s was cancelled but cannot be stopped: %s", send.short_id, error)
            return
        if not ids:
            # Replaying the create with the same key would find it too, but would send it
            # if the first call never arrived; listing recent notifications never sends.
            # A worker still alive records its ids when its call returns, and stops them
            # then (`_after`); one that died mid-call is found here by name.
            ids = await recalling.find_by_name(
                app, notification_name(send), since=earliest_call(send)
            )
            if not ids:
                return
        await self._audit_recall(send, actor, await recalling.recall(app, ids))

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
            await self.notifier.send_cancelled(outcome.send, actor=actor, outcome=outcome.message)
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

    async def _cancel(self, send: Send, actor: str) -> bool:
        async with self.database.sessions.begin() as session:
            moved = await queries.cancel_send(
                session=session, team_id=send.team_id, send_id=send.id, actor=actor
            )
        if moved:
            self.outcomes.ended(send, state=SendState.CANCELLED, by=actor, before=send.state)
        return moved

    async def _stop_before_sending(self, send: Send, actor: str) -> CancelOutcome | None:
        if not await self._cancel(send, actor):
            return None
        if self.timers is not None:
            self.timers.disarm(send.id)
        return CancelOutcome(
            await self._get(send.team_id, send.id),
            "stopped_before_sending",
            f"Stopped `{send.short_id}` before it was sent: nobody received it.",
        )

    async def _stop_while_sending(self, send: Send, actor: str) -> CancelOutcome | None:
        if not await self._cancel(send, actor):
            return None
        await self._stop_late(send, notification_ids(send), actor, look_up=send.attempts > 0)
        return CancelOutcome(
            await self._get(send.team_id, send.id),
            "cancelled_at_onesignal",
            f"Stopped `{send.short_id}` while it was going out: if OneSignal had already "
            f"accepted it, PushOps asks OneSignal to cancel it. {MAY_STILL_REACH}",
        )

    async def _stop_unconfirmed(self, send: Send, actor: str) -> CancelOutcome:
        """A send that ended without OneSignal saying whether it went out: look for it by
        name now, and ask OneSignal to stop what it finds."""
        try:
            app = await self.apps.for_app(send.team_id, send.app_ref, send.app_name)
        except AppUnavailable as error:
            return CancelOutcome(send, "not_cancellable", f"Cannot stop `{send.short_id}`: {error}")
        name, since = notification_name(send), earliest_call(send)
        ids = await recalling.find_by_name(app, name, since=since)
        if not ids:
            return CancelOutcome(
                send,
                "already_finished",
                f"OneSignal lists no notification of `{send.short_id}`: nothing to stop.",
            )
        answer = await recalling.recall(app, ids)
        await self._audit_recall(send, actor, answer)
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
        answer = await recalling.recall(app, ids)
        await self._audit_recall(send, actor, answer)
        if answer.ids("cancelled"):
            async with self.database.sessions.begin() as session:
                moved = await queries.transition_send(
                    session=session,
                    team_id=send.team_id,
                    send_id=send.id,
                    expected=SendState.SENT,
                    new=SendState.CANCELLED,
                    actor=actor,
                    details={"cancelled_at_onesignal": answer.ids("cancelled")},
                )
            if moved:
                self.outcomes.ended(send, state=SendState.CANCELLED, by=actor, before=send.state)
            return CancelOutcome(
                await self._get(send.team_id, send.id),
                "cancelled_at_onesignal",
                f"Asked OneSignal to stop `{send.short_id}` ({', '.join(ids)}); what had not "
                f"gone out yet will not. {MAY_STILL_REACH}",
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
        found = await recalling.find_notification(await self.apps.all_of(team_id), nid)
        if found is None:
            raise SendNotFound(ref)
        app, _details = found
        answer = await recalling.recall(app, [nid])
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

    async def _audit_recall(self, send: Send, actor: str, answer: recalling.Recall) -> None:
        async with self.database.sessions.begin() as session:
            await queries.append_audit(
                session=session,
                team_id=send.team_id,
                actor=actor,
                action="send.cancel_at_onesignal",
                target=f"send {send.short_id}",
                outcome="ok" if not answer.ids("error") else "error",
                details={"send_id": str(send.id), "answers": answer.answers, **answer.errors},
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
        counters, problems = await recalling.read_counters(app, ids)
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
        found = await recalling.find_notification(await self.apps.all_of(team_id), nid)
        if found is None:
            raise SendNotFound(ref)
        counters = recalling.Counters()
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
            stored = await self._resolve_app(session, team_id, app_name)
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


@dataclass(frozen=True)
class _Queued:
    """A claim taken as its send was stored: when (monotonic), the send's short id, and
    which claim of the send it was (its `attempts` then)."""

    since: float
    short_id: str
    attempt: int


def _require_moved(moved: bool, send: Send) -> None:
    """Undo a decision (by raising inside its transaction) on a send that did not move.

    The row lock taken with the decision makes this unreachable; it stays so that a
    decision is never kept without its effect.
    """
    if not moved:
        raise NoLongerPending(f"Send {send.short_id} is no longer pending approval.")


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
    database: Database, team_id: str, actor: str, nid: str, app: AppClient, answer: recalling.Recall
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
