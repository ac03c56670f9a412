"""The scheduler: in-memory timers derived from the `sends` table (docs/design.md invariant 4).

The table is the truth and the timers a cache. At start and on every sweep the scheduler
re-derives them from the table: a timer per scheduled send at its due time, and per send
held in `sending` at the end of its lease (a retry waits for it; a crashed worker's send is
taken over after it), for the sends that need it within the timers' horizon (the others
are armed by the sweep that finds them within it; `bot.timers`). A timer only wakes the
claimer; the compare-and-set claim in the database decides who delivers, so a stale timer,
a second replica or a lost timer are all harmless, and a process killed at any point loses
nothing.

Due sends are claimed in batches (`claim_due_sends`) and delivered concurrently, bounded by
`DeliveryPolicy.max_in_flight`; a scheduled send later than PUSHOPS_MISFIRE_GRACE is marked
`missed` and reported, never sent. A crashed worker's claim is taken over however late: one
found later than the grace is never sent again, but ended with what OneSignal, asked by the
notification's name, has of it (sent, or missed); approvals older than PUSHOPS_APPROVAL_TTL
expire. A heartbeat renews the leases of every claim this process holds: the sends it is
delivering, and those it claimed as it stored them and has yet to deliver. `stop()` (at
SIGTERM) takes no new work and starts no new OneSignal call, lets deliveries in flight
finish within `drain_timeout`, and cancels any that do not; the deliverer's `aclose` then
hands their claims back (see `Deliverer.aclose`), so another scheduler takes them at once
instead of after the lease.

Wiring, all in constructors: the timers (`bot.timers.Timers`) are built first and given to
the `Deliverer`, which arms a send due later and a retry; the scheduler is given the
deliverer, delivers what it claims through it, and starts, stops and waits on its timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from bot.delivery import Deliverer
from bot.delivery.attempt import span
from bot.recurrence import Rule
from bot.settings import Settings
from storage import claims
from storage import series as stored_series
from storage.db import Database
from storage.models import Send, SendState, Series, utcnow

log = logging.getLogger(__name__)

SWEEP_JOB: Final = "pushops-sweep"
_BATCH_LIMIT: Final = 500  # rows per missed/expired sweep transaction
_RETRY_PAUSE: Final = 1.0  # seconds before the claimer tries again after a database error


class Scheduler:
    """Timers, sweeps and claims for one process (`Services.scheduler`; a `Lifecycle`).

    Args:
        database: where the sends are.
        deliverer: delivers what is claimed here, with its worker id, lease, notifier and
            outcome log; its timers are the ones this scheduler starts, stops and waits on.
        settings: PUSHOPS_MISFIRE_GRACE and PUSHOPS_APPROVAL_TTL.
        sweep_interval: seconds between sweeps of the table.
        clock: the current time (UTC).
        claim_batch: sends claimed per transaction.
        drain_timeout: seconds `stop()` waits for deliveries in flight.
        series_lead: how long before its time a series' occurrence becomes a send (default:
            four sweeps, at least a minute), so its timer is armed before it is due.
    """

    def __init__(
        self,
        *,
        database: Database,
        deliverer: Deliverer,
        settings: Settings,
        sweep_interval: float = 15.0,
        clock: Callable[[], datetime] = utcnow,
        claim_batch: int = 100,
        drain_timeout: float = 10.0,
        series_lead: timedelta | None = None,
    ) -> None:
        self.database = database
        self.deliverer = deliverer
        self.timers = deliverer.timers
        self.settings = settings
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.claim_batch = claim_batch
        self.drain_timeout = drain_timeout
        self.series_lead = series_lead or timedelta(seconds=max(60.0, 4 * sweep_interval))
        if self.timers.horizon < timedelta(seconds=2 * sweep_interval):
            # A send entering the horizon just after a sweep is armed by the next one: with
            # less than two sweeps of horizon it could be found only once it is due.
            raise ValueError(
                f"the timers' horizon ({self.timers.horizon}) must span at least two sweeps "
                f"({sweep_interval:g} s each)"
            )
        self.worker_id = deliverer.worker_id
        self.lease = deliverer.lease
        self.notifier = deliverer.notifier
        self.outcomes = deliverer.outcomes
        self._writes = deliverer.writes
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._started = False
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
        return self._started and not self._stopping

    @property
    def armed(self) -> int:
        """How many timers are armed now."""
        return self.timers.armed

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Derive every timer from the table, pick up what is due or stuck, then run."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        self.timers.start()  # paused: arming thousands of timers is cheaper so
        self._claimer = asyncio.get_running_loop().create_task(
            self._claim_loop(), name="pushops-claimer"
        )
        await self.sweep()
        self.timers.resume()
        self.timers.every(self.sweep_interval, self._start_sweep, job_id=SWEEP_JOB)
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._keep_leases(), name="pushops-leases"
        )
        log.info(
            "scheduler started (worker %s): %d timers armed, sweep every %g s",
            self.worker_id, self.timers.armed, self.sweep_interval,
        )  # fmt: skip

    async def stop(self) -> None:
        """Take no new work, let deliveries in flight finish (bounded), then stop.

        No OneSignal call starts any more: deliveries still waiting for their turn end at
        once. Deliveries still running after `drain_timeout` are cancelled. Their sends stay
        claimed until `Deliverer.aclose` hands them back: scheduled again if no call
        started, else left for another scheduler to take over at once, with the same key.
        """
        if not self._started or self._stopping:
            return
        self._stopping = True
        self.deliverer.stop_calling()
        self.timers.stop()  # wakes the claimer, to see it stop
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
        self._started = False
        log.info("scheduler stopped (worker %s)", self.worker_id)

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
            if not self._started:
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
        if self.running:
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
                self.timers.disarm(send.id)
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
        """Arm the sends due within the timers' horizon; forget the timers of the others."""
        async with self.database.sessions() as session:
            timers = await claims.list_timers(
                session=session, until=self.clock() + self.timers.horizon
            )
        now = self.clock()
        busy = self._claims()
        wanted: dict[uuid.UUID, tuple[datetime, bool]] = {}
        for timer in timers:
            retry = timer.state == SendState.SENDING
            if retry and timer.send_id in busy:
                continue  # ours, in flight: its lease is being renewed
            if timer.at is None or timer.at <= now:
                self.timers.poke(retry)
            else:
                wanted[timer.send_id] = (timer.at, retry)
        for send_id in [s for s in self.timers.armed_ids() if s not in wanted]:
            self.timers.disarm(send_id)  # cancelled or taken elsewhere
        for send_id, (at, retry) in wanted.items():
            if self.timers.due_at(send_id) != at:
                self.timers.arm(send_id, at, retry=retry)

    # --- claiming and delivering ---------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            reclaim = await self.timers.woken()
            if self._stopping:
                return
            try:
                await self._claim_all(reclaim)
            except SQLAlchemyError as error:
                log.warning("claiming failed (%s); trying again", type(error).__name__)
                await asyncio.sleep(_RETRY_PAUSE)
                self.timers.poke(False)

    async def _claim_all(self, reclaim: bool) -> None:
        if reclaim:
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
        self.deliverer.claimed([send.id for send in sends])  # handed back if not delivered
        for send in sends:
            self.timers.disarm(send.id)
            task = asyncio.get_running_loop().create_task(
                self._delivery(send), name=f"pushops-deliver-{send.short_id}"
            )
            self._in_flight[send.id] = task
            task.add_done_callback(functools.partial(self._done, send.id))

    def _done(self, send_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(send_id, None)

    async def _delivery(self, send: Send) -> None:
        try:
            await self.deliverer.deliver(send)
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
        a slot too), and the deliverer's (`Deliverer.renewing()`: send-nows waiting for a
        place)."""
        return set(self._in_flight) | self.deliverer.renewing()

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
