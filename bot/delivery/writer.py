"""Delivery results written many to a transaction, so a burst of sends is not held up by commits.

One commit per delivered send caps a process near 150 sends a second on SQLite (each commit
syncs the file); results that finish close together are written together instead
(`storage.deliveries.finish_sends`), each still a compare-and-set with its audit event.
Each caller awaits its own result, so nothing is reported before it is stored. A result
the database refuses is kept and tried again until it is written (the caller may tell people
what is known meanwhile); if the process dies first, the send stays claimed and is taken
over with its own key.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from storage import deliveries
from storage.db import Database, is_sqlite
from storage.deliveries import DeliveryResult
from storage.models import Send

log = logging.getLogger(__name__)


class WriteGate:
    """One delivery write at a time in this process on SQLite; no gate on PostgreSQL.

    SQLite has a single writer, and a transaction that finds the write lock taken waits in
    SQLite's busy handler, which sleeps 1, 2, 5, 10... ms between tries: a burst of claims
    and results contending that way loses tens of milliseconds per conflict. Queuing here,
    in asyncio, hands the lock over the moment it is free. PostgreSQL locks rows, not the
    database, so its transactions need no gate.
    """

    def __init__(self, database: Database) -> None:
        self._lock = asyncio.Lock() if is_sqlite(database.engine) else None

    async def __aenter__(self) -> None:
        if self._lock is not None:
            await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._lock is not None:
            self._lock.release()


@dataclass(frozen=True)
class Written:
    """What became of one result.

    `recorded` (at `at`; `storage.deliveries.apply_result` gives the row), `lost` with the
    row as it is now (the send was no longer ours: cancelled, or taken over), or `gone`.
    """

    status: Literal["recorded", "lost", "gone"]
    send: Send | None = None
    at: datetime | None = None


@dataclass(eq=False)
class _Pending:
    result: DeliveryResult
    future: asyncio.Future[Written]
    refused: asyncio.Event = field(default_factory=asyncio.Event)


Refused = Callable[[], Awaitable[None]]
"""Told once when the database refused to record a result (it is kept and tried again)."""


class ResultWriter:
    """Collects results and writes them in batches of up to `batch` from one background task.

    A result the database refuses (read-only after a failover, unreachable, locked too long)
    is kept in memory and tried again, alone, after `backoff` seconds, doubling up to
    `max_backoff`, until it is written; meanwhile its send stays claimed, so if this process
    dies the worker that takes it over asks OneSignal with the same key. New results are
    written as they come; kept ones one per transaction, so one result the database cannot
    take never holds up the others.
    """

    def __init__(
        self,
        *,
        database: Database,
        worker_id: str,
        batch: int,
        gate: WriteGate,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        counters_after: timedelta | None = None,
    ) -> None:
        self._database = database
        self._counters_after = counters_after
        self._gate = gate
        self._worker_id = worker_id
        self._batch = batch
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._queue: list[_Pending] = []
        self._kept: collections.deque[_Pending] = collections.deque()
        self._refusals = 0  # in a row, for the backoff
        self._retry_at = 0.0  # loop time of the next try of the kept results
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    async def write(self, result: DeliveryResult, *, refused: Refused | None = None) -> Written:
        """Record `result` (with others waiting at the same time); what became of it.

        Returns only once it is written: a refusal of the database is awaited out (`refused`
        is told of the first one). Raises what any other failure of the write raised.
        """
        pending = _Pending(result, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="pushops-result-writer"
            )
        if refused is not None:
            await _first(pending.future, pending.refused)
            if not pending.future.done():
                await refused()
        return await pending.future

    async def aclose(self, *, within: float = 10.0) -> None:
        """Write what is queued (trying kept results for up to `within` s), then stop.

        A result still unwritten then is given up: its send stays claimed, and the worker
        that takes it over once its lease ends asks OneSignal with the same key.
        """
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._idle.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        left = [*self._queue, *self._kept]
        self._queue, self._kept = [], collections.deque()
        if left:
            log.warning(
                "%d delivery results could not be written before shutdown; their sends stay "
                "claimed, for the worker that takes them over to ask OneSignal with the same key",
                len(left),
            )
        for pending in left:
            if not pending.future.done():
                pending.future.set_exception(ResultNotWritten(pending.result.send_id))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue and not (self._kept and loop.time() >= self._retry_at):
                if not self._kept:
                    self._idle.set()
                    await self._wake.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(self._retry_at):
                            await self._wake.wait()
                self._wake.clear()
                continue
            while self._queue:
                batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
                if not await self._write(batch):
                    self._kept.extend(batch)
            if self._kept and loop.time() >= self._retry_at:
                await self._retry_kept()

    async def _retry_kept(self) -> None:
        """Try the kept results one by one; stop at the first refusal (and wait again)."""
        while self._kept:
            pending = self._kept[0]
            if not await self._write([pending]):
                self._kept.rotate(-1)  # next time the others go first
                return
            self._kept.popleft()

    async def _write(self, batch: list[_Pending]) -> bool:
        """Write `batch` in one transaction; False when the database refused it."""
        try:
            async with self._gate:
                finished = await deliveries.finish_sends(
                    session_factory=self._database.sessions,
                    worker_id=self._worker_id,
                    results=[pending.result for pending in batch],
                    counters_after=self._counters_after,
                )
        except SQLAlchemyError as error:
            self._refused(batch, error)
            return False
        except Exception as error:  # noqa: BLE001 - handed to each waiting delivery, who logs it
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return True
        self._refusals = 0
        self._retry_at = 0.0  # the database takes writes again: kept results go next
        _settle(batch, finished)
        return True

    def _refused(self, batch: list[_Pending], error: SQLAlchemyError) -> None:
        """Put the next try off (backing off), and tell whoever waits for these results."""
        wait = min(self._max_backoff, self._backoff * 2.0**self._refusals)
        self._refusals += 1
        self._retry_at = asyncio.get_running_loop().time() + wait
        for pending in batch:
            pending.refused.set()
        # The error's text may name hosts; its kind says enough.
        log.warning(
            "the database refused %d delivery results (%s); trying again in %g s",
            len(batch), type(error).__name__, wait,
        )  # fmt: skip


class ResultNotWritten(Exception):
    """The process stopped before the database took this send's result."""

    def __init__(self, send_id: uuid.UUID) -> None:
        super().__init__(f"the result of send {send_id} was not written before shutdown")
        self.send_id = send_id


async def _first(future: asyncio.Future[Written], event: asyncio.Event) -> None:
    """Wait until `future` is done or `event` is set, whichever comes first."""
    waiting = asyncio.ensure_future(event.wait())
    either: list[asyncio.Future[Any]] = [future, waiting]
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()


def _settle(batch: list[_Pending], finished: deliveries.FinishedSends) -> None:
    """Give each waiting delivery what became of its result."""
    recorded = set(finished.recorded)
    lost = {send.id: send for send in finished.lost}
    for pending in batch:
        send_id = pending.result.send_id
        if send_id in recorded:
            written = Written("recorded", at=finished.at)
        elif send_id in lost:
            written = Written("lost", lost[send_id])
        else:
            written = Written("gone", None)
        if not pending.future.done():
            pending.future.set_result(written)
