"""`Deliverer`: takes a due send to OneSignal and records what happened, exactly once.

It delivers what the `Scheduler` claims and what a command stored to go at once
(`dispatch`, after Slack's ack); it calls OneSignal within `DeliveryPolicy.max_in_flight`
slots, writes results many per transaction (`ResultWriter`), arms the timer of a send due
later and of a retry (`bot.timers.Timers`, given in the constructor), and tells the
`Notifier` of every outcome. At shutdown it hands back the claims it will not finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from bot.delivery import notifications
from bot.delivery.apps import AppClients, AppUnavailable
from bot.delivery.attempt import (
    Attempt,
    attempt_delivery,
    earliest_call,
    may_attempt,
    notification_name,
    settle,
)
from bot.delivery.holds import ApprovalGate
from bot.delivery.outcomes import DeliveryPolicy
from bot.delivery.writer import ResultWriter, WriteGate, Written
from bot.notifier import Notifier, NotifierRelay
from bot.onesignal_clients import OneSignalClients
from bot.outcome_log import OutcomeLog
from bot.settings import Settings
from bot.timers import Timers
from storage import claims, queries
from storage.crypto import KeyRing
from storage.db import Database
from storage.deliveries import apply_result
from storage.models import Send, SendState, utcnow

log = logging.getLogger(__name__)

Unrecorded = Callable[[Attempt], Awaitable[None]]
"""Told once when the database refused to record an attempt (`Deliverer.deliver`)."""


def default_worker_id() -> str:
    """host:pid:random, unique per process, for `claimed_by`."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    """Delivers sends and records their outcomes (one per process; see the module).

    Wire it with `bot.services.build_services`; tests build it directly. `notifier` may be
    replaced at any time (`deliverer.notifier.target = ...`).

    Args:
        database: where the sends are (every state change a compare-and-set there).
        keyring: decrypts the apps' OneSignal keys.
        clients: builds each app's OneSignal client (`Services.onesignal`).
        settings: the OneSignal base URL and PUSHOPS_MISFIRE_GRACE.
        timers: where a send due later, and a retry, is armed (the `Scheduler` started
            with this deliverer runs them; unstarted, nothing is armed).
        notifier: who hears of outcomes (default: a logging `NullNotifier`).
        outcomes: where each outcome is logged and counted (default: logged only).
        policy: attempts, waits, leases and concurrency of delivery.
        worker_id: who claims sends (default: host:pid:random).
        clock: the current time (UTC).
        yield_to: awaited before each OneSignal call and before telling an outcome, so that
            more urgent work of the process goes first (`serve`: the Slack requests
            awaiting their ack, `bot.admission.Admission.acks_first`); default: nothing.
    """

    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        clients: OneSignalClients,
        settings: Settings,
        timers: Timers,
        notifier: Notifier | None = None,
        outcomes: OutcomeLog | None = None,
        policy: DeliveryPolicy | None = None,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        yield_to: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.database = database
        self._yield_to = yield_to
        self.outcomes = outcomes or OutcomeLog()
        self.settings = settings
        self.timers = timers
        self.policy = policy or DeliveryPolicy()
        self.notifier = notifier if isinstance(notifier, NotifierRelay) else NotifierRelay(notifier)
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.apps = AppClients(
            database=database,
            keyring=keyring,
            clients=clients,
            policy=self.policy,
        )
        self.writes = WriteGate(database)
        self.approvals = ApprovalGate(database)
        self._writer = ResultWriter(
            database=database,
            worker_id=self.worker_id,
            batch=self.policy.record_batch,
            gate=self.writes,
            backoff=self.policy.record_backoff,
            max_backoff=self.policy.record_max_backoff,
            counters_after=self.policy.counters_wait,
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

    def claimed_as_stored(self, send: Send) -> None:
        """Note a send `Sends.create` claimed for this process as it stored it: its claim is
        renewed while it waits for a place to be delivered (`renewing`), and handed back at
        shutdown if it never was."""
        self._claims.add(send.id)
        self._queued[send.id] = _Queued(time.monotonic(), send.short_id, send.attempts)

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
        elif self.timers.running:
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
            await self._yield()
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
            await self._yield()
            await self._after(send, attempt, written)
            return written.send
        finally:
            self._delivering.discard(send.id)

    async def _yield(self) -> None:
        """Let the process's more urgent work go first (`yield_to`)."""
        if self._yield_to is not None:
            await self._yield_to()

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
            await self.stop_late(row, attempt.notification_ids, f"worker:{self.worker_id}")
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
            self.timers.arm(row.id, row.lease_until, retry=True)

    async def stop_late(
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
            ids = await notifications.find_by_name(
                app, notification_name(send), since=earliest_call(send)
            )
            if not ids:
                return
        await audit_recall(self.database, send, actor, await notifications.recall(app, ids))


async def audit_recall(
    database: Database, send: Send, actor: str, answer: notifications.CancelAnswers
) -> None:
    """Audit asking OneSignal to stop the send's notifications, with its answers."""
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session,
            team_id=send.team_id,
            actor=actor,
            action="send.cancel_at_onesignal",
            target=f"send {send.short_id}",
            outcome="ok" if not answer.ids("error") else "error",
            details={"send_id": str(send.id), "answers": answer.answers, **answer.errors},
        )


@dataclass(frozen=True)
class _Queued:
    """A claim taken as its send was stored: when (monotonic), the send's short id, and
    which claim of the send it was (its `attempts` then)."""

    since: float
    short_id: str
    attempt: int
