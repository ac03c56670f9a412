"""Delivery results written many to a transaction, so a burst of sends is not held up by commits.

One commit per delivered send caps a process near 150 sends a second on SQLite (each commit
syncs the file); results that finish close together are written together instead
(`storage.deliveries.finish_sends`), each still a compare-and-set with its audit event.
Each caller awaits its own result, so nothing is reported before it is stored. If the
process dies before a write, the send stays claimed and is retried with its own key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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


@dataclass
class _Pending:
    result: DeliveryResult
    future: asyncio.Future[Written]


class ResultWriter:
    """Collects results and writes them in batches of up to `batch` from one background task."""

    def __init__(self, *, database: Database, worker_id: str, batch: int, gate: WriteGate) -> None:
        self._database = database
        self._gate = gate
        self._worker_id = worker_id
        self._batch = batch
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    async def write(self, result: DeliveryResult) -> Written:
        """Record `result` (with others waiting at the same time); raises what the write raised."""
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(result, future))
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="pushops-result-writer"
            )
        return await future

    async def aclose(self) -> None:
        """Write what is queued, then stop the background task."""
        if self._task is not None and not self._task.done():
            await self._idle.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
                await self._write(batch)
            self._idle.set()

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with self._gate:
                finished = await deliveries.finish_sends(
                    session_factory=self._database.sessions,
                    worker_id=self._worker_id,
                    results=[pending.result for pending in batch],
                )
        except Exception as error:  # noqa: BLE001 - handed to each waiting delivery, who logs it
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
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
