"""Admission after the ack: Slack requests awaiting their ack go first, and heavy work (a
delivery and its answer, a preview's estimate) waits for one of a few places.

One event loop serves the acks and the work after them. Slack waits at most 3 s for an ack;
a delivery's answer can wait. `bot.server` marks each Slack request as awaiting its ack
(`acking`), and heavy work lets those go first (`acks_first`) before and between its steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Final

HEAVY_WORK_LIMIT: Final = 4
"""Heavy jobs after the ack (a delivery and its answer, a preview's estimate) run at once by
default; see `Admission.heavy_work`."""

ACKS_FIRST_WAIT: Final = 0.5
"""Seconds heavy work lets Slack requests awaiting their ack go first before it goes on anyway
(so a steady stream of requests delays it, never stops it)."""


class Admission:
    """Who goes first on the event loop: acks before heavy work, and `limit` heavy jobs at once.

    `limit` may be changed until the first heavy job takes a place. The event and the
    semaphore are made at first use, inside the serving loop.
    """

    def __init__(self, limit: int = HEAVY_WORK_LIMIT) -> None:
        self.limit = limit
        self._heavy: asyncio.Semaphore | None = None
        self._acking = 0
        self._no_acks: asyncio.Event | None = None

    @contextlib.contextmanager
    def acking(self) -> Iterator[None]:
        """Mark a Slack request as awaiting its ack (bot.server wraps each request in this)."""
        self._acking += 1
        self._acks_event().clear()
        try:
            yield
        finally:
            self._acking -= 1
            if self._acking == 0:
                self._acks_event().set()

    async def acks_first(self) -> None:
        """Let the Slack requests awaiting their ack go first (up to ACKS_FIRST_WAIT s).

        Heavy work calls this between its steps; light work never needs to.
        """
        if self._acking == 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ACKS_FIRST_WAIT):
                await self._acks_event().wait()

    def _acks_event(self) -> asyncio.Event:
        if self._no_acks is None:
            self._no_acks = asyncio.Event()
            self._no_acks.set()
        return self._no_acks

    @contextlib.asynccontextmanager
    async def heavy_work(self) -> AsyncIterator[None]:
        """Hold one of `limit` places while doing heavy work after an ack.

        A burst of sends would otherwise start as many deliveries (claims, OneSignal calls,
        results, audit, replies) as requests arrived, and they would take the event loop and
        the database from the acks of the requests still arriving. Waiting here, the extra
        ones cost nothing, and a place is taken only once the requests awaiting their ack
        went first (`acks_first`). Only heavy work queues: `/push cancel`, the emergency
        brake, and every other light answer never wait for a place.
        """
        if self._heavy is None:
            self._heavy = asyncio.Semaphore(max(1, self.limit))
        async with self._heavy:
            await self.acks_first()
            yield
