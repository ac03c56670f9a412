"""The in-memory timers of one process: APScheduler jobs that wake the claimer when sends are due.

A timer only wakes; the compare-and-set claim in the database decides who delivers (see
`bot.scheduling`). Built first and handed to the `Deliverer` (which arms a send due later,
and a retry at its lease's end) and, through it, to the `Scheduler` (which starts and stops
them, re-derives them from the table, and waits for their wake-ups), so neither is wired
into the other after construction.

Only sends due within the horizon (`DEFAULT_HORIZON`) get a timer: a send due next month is a
row in the table, not a job in memory, until a sweep finds it within the horizon and arms it.
So the memory of the timers follows the sends due soon, never the history or the sends
scheduled far ahead, and a restart re-arms only those. The horizon spans several sweeps
(`Scheduler` checks it), so a send is armed well before it is due, even when a sweep fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from storage.models import utcnow

# A timer only wakes the claimer, which then claims every send due by then; so sends due in
# the same 10 ms share one APScheduler job. 10,000 sends due within 10 s are 1,000 jobs, not
# 10,000, and a send waits at most this long past its due time for its wake-up.
_SLOT_SECONDS: Final = 0.01

# How far ahead timers are armed. Each armed send costs about 1.5 KB (its APScheduler job and
# our maps): 10,000 sends scheduled over the next two months were 15 MB of a process that
# should stay under 100 MB. Five minutes is twenty default sweeps (15 s).
DEFAULT_HORIZON: Final = timedelta(minutes=5)


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


class Timers:
    """Timers keyed by send id, and the wake-up they ring (`woken`); inert until `start`.

    Args:
        clock: the current time (UTC): a timer due by then wakes at once.
        horizon: only a send due within this long from now gets a timer; a later one is
            left to the sweep that finds it within the horizon.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utcnow,
        horizon: timedelta = DEFAULT_HORIZON,
    ) -> None:
        self.clock = clock
        self.horizon = horizon
        self._aps: AsyncIOScheduler | None = None
        self._armed: dict[uuid.UUID, datetime] = {}  # send -> the moment it needs us
        self._slots: dict[_Slot, set[uuid.UUID]] = {}
        self._slot_of: dict[uuid.UUID, _Slot] = {}
        self._wake = asyncio.Event()
        self._reclaim = False

    @property
    def running(self) -> bool:
        """Whether the timers were started and not stopped (arming does nothing otherwise)."""
        return self._aps is not None

    @property
    def armed(self) -> int:
        """How many timers are armed now."""
        return len(self._armed)

    def due_at(self, send_id: uuid.UUID) -> datetime | None:
        """When the send's timer rings; None when it has none."""
        return self._armed.get(send_id)

    def armed_ids(self) -> list[uuid.UUID]:
        """The sends with a timer now."""
        return list(self._armed)

    def start(self) -> None:
        """Start APScheduler, paused (arming thousands of timers is cheaper so); `resume`."""
        _quiet_apscheduler()
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            # Late timers still fire: whether a send is too late is the grace's call.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._aps.start(paused=True)

    def resume(self) -> None:
        """Let the timers armed while paused ring."""
        if self._aps is not None:
            self._aps.resume()

    def every(self, seconds: float, job: Callable[[], Awaitable[None]], *, job_id: str) -> None:
        """Run `job` every `seconds` while running (the scheduler's sweep)."""
        if self._aps is not None:
            self._aps.add_job(job, IntervalTrigger(seconds=seconds, timezone=UTC), id=job_id)

    def stop(self) -> None:
        """Forget every timer, ring no more, and wake whoever waits (to see the stop)."""
        if self._aps is not None:
            self._aps.shutdown(wait=False)
        self._aps = None
        self._armed.clear()
        self._slots.clear()
        self._slot_of.clear()
        self._wake.set()

    def arm(self, send_id: uuid.UUID, due_at: datetime, *, retry: bool = False) -> None:
        """Wake the claimer at `due_at` for this send (idempotent; replaces its timer).

        `retry`: the send is held in `sending` until `due_at` (a retry, or a crashed
        worker's lease); it is taken over then. Does nothing when not running, and nothing
        but forget its timer when `due_at` is beyond the horizon (a sweep arms it later).
        """
        if self._aps is None:
            return
        self.disarm(send_id)
        now = self.clock()
        if due_at <= now:
            self.poke(retry)
            return
        if due_at > now + self.horizon:
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

    def poke(self, retry: bool) -> None:
        """Wake the claimer now; `retry`: sends held in `sending` are due too."""
        self._reclaim = self._reclaim or retry
        self._wake.set()

    async def woken(self) -> bool:
        """Wait for the next wake-up; whether sends held in `sending` are due too."""
        await self._wake.wait()
        self._wake.clear()
        reclaim, self._reclaim = self._reclaim, False
        return reclaim

    async def _fire(self, slot: _Slot) -> None:
        for send_id in self._slots.pop(slot, ()):
            self._armed.pop(send_id, None)
            self._slot_of.pop(send_id, None)
        self.poke(slot.retry)


def _quiet_apscheduler() -> None:
    """APScheduler logs every job run at INFO: one line per send would drown the log."""
    for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
