"""The scheduler: in-memory timers derived from the `sends` table (docs/design.md invariant 4).

The table is the truth and the timers a cache. At start and on every sweep the scheduler
re-derives them from the table: a timer per scheduled send at its due time, and per send
held in `sending` at the end of its lease (a retry waits for it; a crashed worker's send is
taken over after it). A timer only wakes the claimer; the compare-and-set claim in the
database decides who delivers, so a stale timer, a second replica or a lost timer are all
harmless, and a process killed at any point loses nothing.

Due sends are claimed in batches (`claim_due_sends`) and delivered concurrently, bounded by
`DeliveryPolicy.max_in_flight`; a scheduled send later than PUSHOPS_MISFIRE_GRACE is marked
`missed` and reported, never sent. A crashed worker's claim is taken over however late: one
found later than the grace is never sent again, but ended with what OneSignal, asked by the
notification's name, has of it (sent, or missed); approvals older than PUSHOPS_APPROVAL_TTL
expire. A heartbeat renews the leases of every claim this process holds: the sends it is
delivering, and those it claimed as it stored them and has yet to deliver. `stop()` (at
SIGTERM) takes no new work and starts no new OneSignal call, lets deliveries in flight
finish within `drain_timeout`, and cancels any that do not; the service's `aclose` then
hands their claims back (see `SendService.aclose`), so another scheduler takes them at
once instead of after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from bot.delivery import SendService
from bot.delivery.attempt import span
from bot.delivery.service import default_worker_id
from bot.delivery.writer import WriteGate
from bot.notifier import Notifier, NotifierRelay
from bot.outcome_log import OutcomeLog
from bot.recurrence import Rule
from bot.settings import Settings
from storage import claims
from storage import series as stored_series
from storage.claims import DEFAULT_LEASE
from storage.db import Database
from storage.models import Send, SendState, Series, utcnow

log = logging.getLogger(__name__)

Deliver = Callable[[Send], Awaitable[object]]
"""Delivers one claimed send (`SendService.deliver`, or a test's own)."""

SWEEP_JOB: Final = "pushops-sweep"
_BATCH_LIMIT: Final = 500  # rows per missed/expired sweep transaction
_RETRY_PAUSE: Final = 1.0  # seconds before the claimer tries again after a database error
# A timer only wakes the claimer, which then claims every send due by then; so sends due in
# the same 10 ms share one APScheduler job. 10,000 sends due within 10 s are 1,000 jobs, not
# 10,000, and a send waits at most this long past its due time for its wake-up.
_SLOT_SECONDS: Final = 0.01


@dataclass(frozen=True)
class _Slot:
    """The APScheduler job waking the claimer for the sends due in one 10 ms slot."""

    index: int  # the slot's end, in _SLOT_SECONDS since the epoch
    retry: bool  # for sends held in `sending` (taken over at their lease's end)

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.index * _SLOT_SECONDS, UTC)

    @property
    def job_id(self) -> str:
        return f"pushops-{'retry' if self.retry else 'due'}-{self.index}"


class Scheduler:
    """Timers, sweeps and claims for one process (`Services.scheduler`; a `Lifecycle`).

    Args:
        database: where the sends are.
        deliver: the `SendService` (which then arms timers through this scheduler), or any
            async callable taking a claimed send.
        settings: PUSHOPS_MISFIRE_GRACE and PUSHOPS_APPROVAL_TTL.
        worker_id: who claims (default: the service's, else host:pid:random).
        sweep_interval: seconds between sweeps of the table.
        clock: the current time (UTC).
        notifier: for missed sends and expired approvals (default: the service's).
        claim_batch: sends claimed per transaction.
        drain_timeout: seconds `stop()` waits for deliveries in flight.
        series_lead: how long before its time a series' occurrence becomes a send (default:
            four sweeps, at least a minute), so its timer is armed before it is due.
    """

    def __init__(
        self,
        *,
        database: Database,
        deliver: SendService | Deliver,
        settings: Settings,
        worker_id: str | None = None,
        sweep_interval: float = 15.0,
        clock: Callable[[], datetime] = utcnow,
        notifier: Notifier | None = None,
        claim_batch: int = 100,
        drain_timeout: float = 10.0,
        series_lead: timedelta | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.claim_batch = claim_batch
        self.drain_timeout = drain_timeout
        self.series_lead = series_lead or timedelta(seconds=max(60.0, 4 * sweep_interval))
        self._service = deliver if isinstance(deliver, SendService) else None
        if self._service is not None:
            if worker_id is not None and worker_id != self._service.worker_id:
                raise ValueError("a scheduler claims with its SendService's worker_id")
            self._service.timers = self
            self.worker_id = self._service.worker_id
            self.lease = self._service.lease
            self.notifier = self._service.notifier if notifier is None else NotifierRelay(notifier)
            self.outcomes = self._service.outcomes
            self._deliver: Deliver = self._service.deliver
            self._writes = self._service.writes
        else:
            assert not isinstance(deliver, SendService)
            self.worker_id = worker_id or default_worker_id()
            self.lease = DEFAULT_LEASE
            self.notifier = NotifierRelay(notifier)
            self.outcomes = OutcomeLog()
            self._deliver = deliver
            self._writes = WriteGate(database)
        self._aps: AsyncIOScheduler | None = None
        self._armed: dict[uuid.UUID, datetime] = {}  # send -> the moment it needs us
        self._slots: dict[_Slot, set[uuid.UUID]] = {}
        self._slot_of: dict[uuid.UUID, _Slot] = {}
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._reclaim = False
        self._stopping = False
        self._claimer: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._sweeping: asyncio.Task[None] | None = None

    @property
    def grace(self) -> timedelta:
        """PUSHOPS_MISFIRE_GRACE."""
        return timedelta(seconds=self.settings.misfire_grace)

    @property
    def running(self) -> bool:
        """Whether the scheduler was started and not stopped."""
        return self._aps is not None and not self._stopping

    @property
    def armed(self) -> int:
        """How many timers are armed now."""
        return len(self._armed)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Derive every timer from the table, pick up what is due or stuck, then run."""
        if self._aps is not None:
            return
        _quiet_apscheduler()
        self._stopping = False
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            # Late timers still fire: whether a send is too late is the grace's call, below.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._aps.start(paused=True)  # arming thousands of timers is cheaper while paused
        self._claimer = asyncio.get_running_loop().create_task(
            self._claim_loop(), name="pushops-claimer"
        )
        await self.sweep()
        self._aps.resume()
        self._aps.add_job(
            self._start_sweep,
            IntervalTrigger(seconds=self.sweep_interval, timezone=UTC),
            id=SWEEP_JOB,
        )
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._keep_leases(), name="pushops-leases"
        )
        log.info(
            "scheduler started (worker %s): %d timers armed, sweep every %g s",
            self.worker_id, len(self._armed), self.sweep_interval,
        )  # fmt: skip

    async def stop(self) -> None:
        """Take no new work, let deliveries in flight finish (bounded), then stop.

        No OneSignal call starts any more: deliveries still waiting for their turn end at
        once. Deliveries still running after `drain_timeout` are cancelled. Their sends stay
        claimed until `SendService.aclose` hands them back: scheduled again if no call
        started, else left for another scheduler to take over at once, with the same key.
        """
        if self._aps is None or self._stopping:
            return
        self._stopping = True
        if self._service is not None:
            self._service.stop_calling()
        self._aps.shutdown(wait=False)
        self._wake.set()
        await _finish(self._claimer, within=self.drain_timeout)
        in_flight = list(self._in_flight.values())
        if in_flight:
            log.info("waiting up to %g s for %d deliveries", self.drain_timeout, len(in_flight))
            _done, late = await asyncio.wait(in_flight, timeout=self.drain_timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d deliveries did not finish; their sends stay claimed", len(late))
                await asyncio.wait(late)
        await _finish(self._sweeping, within=self.drain_timeout)
        await _finish(self._heartbeat, within=0)
        if self._side_tasks:
            await asyncio.wait(set(self._side_tasks), timeout=self.drain_timeout)
        self._armed.clear()
        self._slots.clear()
        self._slot_of.clear()
        self._aps = None
        log.info("scheduler stopped (worker %s)", self.worker_id)

    # --- timers --------------------------------------------------------------------------

    def arm(self, send_id: uuid.UUID, due_at: datetime, *, retry: bool = False) -> None:
        """Wake the claimer at `due_at` for this send (idempotent; replaces its timer).

        `retry`: the send is held in `sending` until `due_at` (a retry, or a crashed
        worker's lease); it is taken over then. Does nothing when not running.
        """
        if self._aps is None or self._stopping:
            return
        self.disarm(send_id)
        if due_at <= self.clock():
            self._poke(retry)
            return
        self._armed[send_id] = due_at
        slot = _Slot(math.ceil(due_at.timestamp() / _SLOT_SECONDS), retry)
        waiting = self._slots.get(slot)
        if waiting is None:
            waiting = self._slots[slot] = set()
            self._aps.add_job(
                self._fire,
                DateTrigger(run_date=slot.at, timezone=UTC),
                id=slot.job_id,
                kwargs={"slot": slot},
            )
        waiting.add(send_id)
        self._slot_of[send_id] = slot

    def disarm(self, send_id: uuid.UUID) -> None:
        """Forget the send's timer (a stale one would be harmless: the claim decides)."""
        self._armed.pop(send_id, None)
        slot = self._slot_of.pop(send_id, None)
        if slot is None:
            return
        waiting = self._slots.get(slot)
        if waiting is not None:
            waiting.discard(send_id)
            if not waiting and self._aps is not None:
                del self._slots[slot]
                with contextlib.suppress(LookupError):  # it fired meanwhile
                    self._aps.remove_job(slot.job_id)

    async def _fire(self, slot: _Slot) -> None:
        for send_id in self._slots.pop(slot, ()):
            self._armed.pop(send_id, None)
            self._slot_of.pop(send_id, None)
        self._poke(slot.retry)

    def _poke(self, retry: bool) -> None:
        self._reclaim = self._reclaim or retry
        self._wake.set()

    # --- the sweep -----------------------------------------------------------------------

    async def _start_sweep(self) -> None:
        """The interval job: start a sweep as a task of our own, unless one is still running.

        APScheduler's asyncio executor cancels the jobs it runs at shutdown without waiting
        for them; a sweep cancelled in the middle of a query could still be unwinding when
        the database closes, and hang the process's exit. `stop` waits for this task instead.
        """
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.get_running_loop().create_task(
                self.sweep(), name="pushops-sweep"
            )

    async def sweep(self) -> None:
        """Re-derive the timers from the table; pick up due and stuck sends; mark missed
        sends and expire approvals (each reported through the notifier).

        A database error is logged and left to the next sweep, also at start: a database
        that hiccups must not keep the server down; called outside a running scheduler, it
        raises.
        """
        try:
            await self._materialise()
            await self._mark_missed()
            await self._expire_approvals()
            await self._derive_timers()
        except SQLAlchemyError as error:
            if self._aps is None:
                raise
            log.warning("sweep failed (%s); the next one tries again", type(error).__name__)

    async def _materialise(self) -> None:
        """Make the series' occurrences due within `series_lead` into sends; their timers are
        armed with the rest below, and one already too late is marked missed and told."""
        while True:
            async with self._writes:
                made = await stored_series.materialise_due(
                    session_factory=self.database.sessions,
                    now=self.clock(),
                    lead=self.series_lead,
                    next_after=_next_occurrence,
                    worker_id=self.worker_id,
                    limit=_BATCH_LIMIT,
                )
            if len(made) < _BATCH_LIMIT:
                return

    def sweep_soon(self) -> None:
        """Sweep now, aside (a series was just made or resumed: its first occurrence may be
        due before the next periodic sweep)."""
        if self._aps is not None and not self._stopping:
            self._side(self._start_sweep())

    async def _mark_missed(self) -> None:
        while True:
            async with self._writes:
                missed = await claims.mark_missed_sends(
                    session_factory=self.database.sessions,
                    now=self.clock(),
                    grace=self.grace,
                    limit=_BATCH_LIMIT,
                    actor=f"worker:{self.worker_id}",
                )
            why = f"Not sent: found more than {span(self.settings.misfire_grace)} after it was due."
            for send in missed:
                self.disarm(send.id)
                self.outcomes.ended(send, reason=why)
                self._side(self.notifier.send_missed(send))
            if len(missed) < _BATCH_LIMIT:
                return

    async def _expire_approvals(self) -> None:
        while True:
            async with self._writes:
                expired = await claims.expire_pending_approvals(
                    session_factory=self.database.sessions,
                    now=self.clock(),
                    ttl=timedelta(seconds=self.settings.approval_ttl),
                    limit=_BATCH_LIMIT,
                    actor=f"worker:{self.worker_id}",
                )
            undecided = f"Nobody decided within {span(self.settings.approval_ttl)}."
            for send in expired:
                self.outcomes.ended(send, reason=undecided)
                self._side(self.notifier.approval_expired(send))
            if len(expired) < _BATCH_LIMIT:
                return

    async def _derive_timers(self) -> None:
        async with self.database.sessions() as session:
            timers = await claims.list_timers(session=session)
        now = self.clock()
        busy = self._claims()
        wanted: dict[uuid.UUID, tuple[datetime, bool]] = {}
        for timer in timers:
            retry = timer.state == SendState.SENDING
            if retry and timer.send_id in busy:
                continue  # ours, in flight: its lease is being renewed
            if timer.at is None or timer.at <= now:
                self._poke(retry)
            else:
                wanted[timer.send_id] = (timer.at, retry)
        for send_id in [s for s in self._armed if s not in wanted]:
            self.disarm(send_id)  # cancelled or taken elsewhere
        for send_id, (at, retry) in wanted.items():
            if self._armed.get(send_id) != at:
                self.arm(send_id, at, retry=retry)

    # --- claiming and delivering ---------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._claim_all()
            except SQLAlchemyError as error:
                log.warning("claiming failed (%s); trying again", type(error).__name__)
                await asyncio.sleep(_RETRY_PAUSE)
                self._wake.set()

    async def _claim_all(self) -> None:
        if self._reclaim:
            self._reclaim = False
            # Held sends are taken over however late: the service retries them with the same
            # key, or (too late, or out of attempts) asks OneSignal what it has of them.
            await self._take_batches(claims.reclaim_stale_sends)
        await self._take_batches(functools.partial(claims.claim_due_sends, grace=self.grace))

    async def _take_batches(self, take: Callable[..., Awaitable[list[Send]]]) -> None:
        """Claim with `take` (due sends, or stale ones) batch after batch, delivering each."""
        while not self._stopping:
            async with self._writes:
                taken = await take(
                    session_factory=self.database.sessions,
                    now=self.clock(),
                    worker_id=self.worker_id,
                    limit=self.claim_batch,
                    lease=self.lease,
                )
            self._start_all(taken)
            if len(taken) < self.claim_batch:
                return

    def _start_all(self, sends: list[Send]) -> None:
        if self._service is not None:
            self._service.claimed([send.id for send in sends])  # handed back if not delivered
        for send in sends:
            self.disarm(send.id)
            task = asyncio.get_running_loop().create_task(
                self._delivery(send), name=f"pushops-deliver-{send.short_id}"
            )
            self._in_flight[send.id] = task
            task.add_done_callback(functools.partial(self._done, send.id))

    def _done(self, send_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(send_id, None)

    async def _delivery(self, send: Send) -> None:
        try:
            await self._deliver(send)
        except Exception:  # broad: the top of a delivery task; the send stays claimed
            log.exception(
                "delivery of send %s failed unexpectedly; it is retried after its lease",
                send.short_id,
            )

    async def _keep_leases(self) -> None:
        """Renew the leases of the claims held here, so no one takes them over meanwhile.

        It runs as long as the scheduler: a renewal that fails is logged and tried again at
        the next beat.
        """
        period = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self._renew_leases()
            except Exception as error:  # broad: the top of the heartbeat task
                # Whatever failed (the database, a driver, a bug), ending this task would let
                # the leases of sends still going out run out, and another worker would take
                # them over mid-delivery: keep beating, the next renewal may succeed. A
                # database error's text is left out (it may name hosts); a bug's is not.
                log.warning(
                    "could not renew leases (%s); trying again in %g s",
                    type(error).__name__, period,
                    exc_info=not isinstance(error, SQLAlchemyError),
                )  # fmt: skip

    async def _renew_leases(self) -> None:
        busy = self._claims()
        if not busy:
            return
        async with self._writes:
            await claims.renew_leases(
                session_factory=self.database.sessions,
                worker_id=self.worker_id,
                send_ids=busy,
                lease_until=self.clock() + self.lease,
            )

    def _claims(self) -> set[uuid.UUID]:
        """Every claim this process keeps renewing: the sends its tasks deliver (waiting for
        a slot too), and the service's (`SendService.renewing()`: send-nows waiting for a
        place)."""
        return set(self._in_flight) | (self._service.renewing() if self._service else set())

    def _side(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a notification aside, so a slow Slack does not hold up the sweep."""
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


async def _finish(task: asyncio.Task[None] | None, *, within: float) -> None:
    """Wait for `task` up to `within` seconds, then cancel it."""
    if task is None or task.done():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), within)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _next_occurrence(series: Series, moment: datetime) -> datetime:
    return Rule.from_json(series.rule).next_after(moment)


def _quiet_apscheduler() -> None:
    """APScheduler logs every job run at INFO: one line per send would drown the log."""
    for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
