"""The drainer of the Slack outbox: takes the messages owed to Slack and delivers them, paced.

Every message PushOps owes Slack is a row (`storage.outbox`), written in the transaction that
decided it. `OutboxDrainer` (one per `serve` or `worker` process that can reach Slack) claims
due rows with a lease, most urgent first, hands each to a `Deliverer` (the Slack side,
`commands.outgoing.OutboxDelivery`, which paces its calls with `bot.slack_limits.Pacer`), and
records what became of it: done, refused for good (with Slack's reason), or tried again later
(after Slack's `Retry-After`, or with backoff). It is woken at once when this process owes a
new message (`wake`), and looks for rows of other processes every `poll` seconds. Before each
claim it lets a coalescer (`bot.digest`) turn news piled up for one destination into a digest.
A drainer that dies leaves its rows leased; another takes them over when the lease ends.

Exactly once, as far as Slack allows: a row is marked done (with the posted message's place)
right after Slack answered. A process that dies between Slack's answer and that write leaves
the row to be sent again after its lease: that window, one Web API call wide, is the only way a
message reaches Slack twice (Slack's `chat.postMessage` takes no idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol, TypeAlias

from sqlalchemy.exc import SQLAlchemyError

from bot.slack_limits import Pacer
from storage import outbox
from storage.db import Database
from storage.models import OutboxKind, OutboxMessage, utcnow
from storage.outbox import (
    COUNTERS,
    NOTICE,
    Notice,
    OutboxEntry,
    OutboxResult,
    Refused,
    Retry,
    Sent,
)

__all__ = [
    "COUNTERS",
    "Deliverer",
    "Delivered",
    "DrainPolicy",
    "Failure",
    "NOTICE",
    "Notices",
    "OutboxDrainer",
    "OutboxEntry",
    "OutboxKind",
    "OutboxMessage",
    "Outcome",
    "Owing",
    "Refusal",
    "SlackRefused",
    "Wait",
    "find_owed",
    "find_posted",
    "owe",
    "refusals",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 12
"""Tries of a message Slack keeps failing for a passing reason (timeouts, 5xx) before it is
refused, saying so: about 40 minutes with the backoff below."""

MAX_BACKOFF: Final = 600.0
PRUNE_EVERY: Final = 600.0
KEEP_DONE: Final = timedelta(days=1)


@dataclass(frozen=True)
class Delivered:
    """Slack took the message; where it is (a channel message, to update it later)."""

    channel: str | None = None
    ts: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Slack refused the message for a reason retrying does not mend (`channel_not_found`)."""

    reason: str


@dataclass(frozen=True)
class Failure:
    """A passing failure (timeout, 5xx, connection): try again with backoff."""

    error: str


@dataclass(frozen=True)
class Wait:
    """Slack asked to wait (429 `Retry-After`), or the pacer did: try again in `seconds`,
    without counting an attempt."""

    seconds: float
    why: str


Outcome: TypeAlias = Delivered | Refusal | Failure | Wait


class Deliverer(Protocol):
    """Delivers one owed message to Slack and says what became of it; never raises for
    Slack's trouble."""

    async def __call__(self, message: OutboxMessage) -> Outcome:
        """Deliver `message`."""


Notices: TypeAlias = Callable[[OutboxMessage], Awaitable[Outcome | None]]
"""Renders a row that stands for messages not written yet (the Slack notifier's
`render_notice`): a notice (`storage.outbox.NOTICE`) its own process did not render, or a
send's final counters come due (`storage.outbox.COUNTERS`). It owes the messages and answers
None when done, or what to do with the row (wait, try again, refused)."""

RENDERED: Final = frozenset({NOTICE, COUNTERS})
"""Purposes of the rows the drainer hands to its `notices` instead of delivering them."""


async def owe(
    database: Database,
    entries: Sequence[OutboxEntry],
    drainer: OutboxDrainer | None = None,
    *,
    settles: Notice | None = None,
) -> None:
    """Owe Slack `entries` (channel messages replace their key's queued version, DMs are
    written once), then wake `drainer`. `settles` (team, send, outcome): the notices of that
    outcome are done in the same transaction (its news is owed now). With a drainer, what
    other callers owe meanwhile is written in the same transaction (`Owing`)."""
    if not entries and settles is None:
        return
    if drainer is not None:
        await drainer.owing.owe(entries, settles=settles)
        return
    await _write_owed(database, [(entries, settles)])


async def _write_owed(
    database: Database, owed: Sequence[tuple[Sequence[OutboxEntry], Notice | None]]
) -> None:
    """Write what several callers owe in one transaction: every notice settled in one
    statement, the channel messages (each an upsert), the DMs in one statement."""
    notices = [settles for _, settles in owed if settles is not None]
    entries = [entry for some, _ in owed for entry in some]
    async with database.sessions.begin() as session:
        await outbox.settle_notices(session=session, notices=notices)
        for kind in (OutboxKind.MESSAGE, OutboxKind.DM):
            chosen = [entry for entry in entries if entry.kind == kind]
            if chosen:
                await outbox.enqueue(
                    session=session, entries=chosen, replace=kind == OutboxKind.MESSAGE
                )


@dataclass(eq=False)
class _Owed:
    entries: Sequence[OutboxEntry]
    settles: Notice | None
    future: asyncio.Future[None]


class Owing:
    """What this process owes Slack, written many callers to a transaction.

    A burst's deliveries each owe their news as they end: one transaction each cost more
    CPU than rendering the news (begin, statements, commit). Each caller's entries join a
    queue; one background task writes all that is queued in one transaction, and what is
    queued meanwhile in the next one, so an idle process writes at once and a busy one in
    batches. Each caller awaits its own write, so nothing is announced before it is stored.
    When a transaction fails, its callers' writes are tried again one by one, so each
    caller gets its own answer (a database error, as `owe` always raised). `wake` is called
    after each write (the drainer: messages are due).
    """

    def __init__(
        self, database: Database, *, wake: Callable[[], None] | None = None, batch: int = 200
    ) -> None:
        self._database = database
        self._wake = wake
        self._batch = batch
        self._queue: list[_Owed] = []
        self._task: asyncio.Task[None] | None = None

    async def owe(self, entries: Sequence[OutboxEntry], *, settles: Notice | None) -> None:
        """Write `entries` (and settle `settles`) with whatever else is owed meanwhile."""
        loop = asyncio.get_running_loop()
        owed = _Owed(entries, settles, loop.create_future())
        self._queue.append(owed)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="pushops-outbox-owing")
        await owed.future

    async def aclose(self, *, within: float = 10.0) -> None:
        """Write what is queued (for up to `within` s), then stop; what is left is told
        to its callers as not written."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await asyncio.shield(self._task)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        left, self._queue = self._queue, []
        for owed in left:
            _answer(owed, OwedNotWritten())

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
            await self._write(batch)
            if self._wake is not None:
                self._wake()

    async def _write(self, batch: list[_Owed]) -> None:
        try:
            await _write_owed(self._database, [(owed.entries, owed.settles) for owed in batch])
        except Exception as error:  # noqa: BLE001 - each caller is answered with its own
            if len(batch) == 1:
                _answer(batch[0], error)
                return
            for owed in batch:
                await self._write([owed])
            return
        for owed in batch:
            _answer(owed, None)


class OwedNotWritten(Exception):
    """The process stopped before the database took what was owed."""

    def __init__(self) -> None:
        super().__init__("messages owed to Slack were not written before shutdown")


def _answer(owed: _Owed, error: BaseException | None) -> None:
    if owed.future.done():  # its caller gave up waiting (cancelled)
        return
    if error is None:
        owed.future.set_result(None)
    else:
        owed.future.set_exception(error)


async def find_owed(database: Database, *, team_id: str, key: str) -> OutboxMessage | None:
    """The row of `key`, if it was ever owed (and not pruned)."""
    async with database.sessions() as session:
        return await outbox.get_outbox_message(session=session, team_id=team_id, key=key)


async def find_posted(
    database: Database, *, team_id: str, send_id: uuid.UUID, purpose: str
) -> OutboxMessage | None:
    """The latest message of `purpose` about the send that Slack took, if any (not pruned)."""
    async with database.sessions() as session:
        return await outbox.posted_message(
            session=session, team_id=team_id, send_id=send_id, purpose=purpose
        )


@dataclass(frozen=True)
class SlackRefused:
    """A message Slack refused for good: its purpose, where it was going, Slack's reason."""

    purpose: str
    destination: str
    reason: str


async def refusals(database: Database, *, team_id: str, send_id: uuid.UUID) -> list[SlackRefused]:
    """The messages about a send that Slack refused for good, oldest first."""
    async with database.sessions() as session:
        rows = await outbox.refused_messages(session=session, team_id=team_id, send_id=send_id)
    return [SlackRefused(r.purpose, r.destination, r.last_error or "unknown") for r in rows]


@dataclass(frozen=True)
class DrainPolicy:
    """How the drainer works: its lease, how often it looks for others' rows, how many
    messages it has in flight, how long a call may wait for the pacer in flight, how long
    a stopping drainer goes on delivering what is due, and how often it looks for sends whose
    final counters came due (`storage.outbox.owe_counters`)."""

    lease: timedelta = outbox.DEFAULT_OUTBOX_LEASE
    poll: float = 1.0
    concurrency: int = 8
    max_wait: float = 2.0
    flush: float = 5.0
    counters_every: float = 5.0


class OutboxDrainer:
    """Drains the outbox (see the module's docstring); `start`, `wake`, `stop`."""

    def __init__(
        self,
        *,
        database: Database,
        deliver: Deliverer,
        pacer: Pacer,
        worker_id: str,
        policy: DrainPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        coalesce: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._database = database
        self._coalesce = coalesce
        self._deliver = deliver
        self.pacer = pacer
        self.worker_id = worker_id
        self.policy = policy or DrainPolicy()
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[asyncio.Task[None], OutboxMessage] = {}
        self._stopping = False
        self._pruned_at = 0.0
        self._counted_at = float("-inf")
        self.notices: Notices | None = None
        self.owing = Owing(database, wake=self.wake)

    def wake(self) -> None:
        """Look for due messages now (this process just owed one; `owing` wakes it)."""
        self._wake.set()

    async def start(self) -> None:
        """Begin draining in a task of its own."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self, grace: float | None = None) -> None:
        """Stop: go on delivering what is due for up to `grace` s (`DrainPolicy.flush`), then
        stop claiming, cancel what is still in flight and hand it back for the next drainer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.policy.flush if grace is None else grace)
        await self.owing.aclose(within=max(0.0, deadline - loop.time()))
        while self._task is not None and loop.time() < deadline:
            if not self._inflight and not await self._owed_before(deadline - loop.time()):
                break
            await asyncio.sleep(0.05)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._inflight:
            _, late = await asyncio.wait(set(self._inflight), timeout=0.5)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                rows = [self._inflight.pop(task) for task in late if task in self._inflight]
                now = self._clock()
                await self._finish(
                    [(row, Retry(now, "handed back", counted=False)) for row in rows]
                )

    async def _owed_before(self, seconds: float) -> bool:
        """Whether any message falls due within `seconds` (shutdown waits for those)."""
        try:
            async with self._database.sessions() as session:
                return await outbox.owed_before(
                    session=session, moment=self._clock() + timedelta(seconds=seconds)
                )
        except SQLAlchemyError:
            return False

    async def drain_once(self) -> int:
        """Claim and deliver what is due now, waiting for it; how many were claimed (tests)."""
        await self._owe_counters()
        await self._make_digests()
        rows = await self._claim(self.policy.concurrency)
        await asyncio.gather(*(self._handle(row) for row in rows))
        return len(rows)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.policy.concurrency - len(self._inflight)
            await self._owe_counters()
            await self._make_digests()
            rows = await self._claim(free) if free > 0 else []
            for row in rows:
                task = asyncio.get_running_loop().create_task(self._handle(row))
                self._inflight[task] = row
                task.add_done_callback(self._done)
            await self._maybe_prune()
            if rows and len(rows) == free:
                await self._wake.wait()  # a message done frees a place, and wakes us
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.policy.poll):
                        await self._wake.wait()

    async def _owe_counters(self) -> None:
        """Every `counters_every` s: owe the final counters of the sends whose moment came."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._counted_at < self.policy.counters_every:
            return
        self._counted_at = loop.time()
        try:
            await outbox.owe_counters(session_factory=self._database.sessions, now=self._clock())
        except SQLAlchemyError as error:  # the database hiccups: the next look tries again
            log.warning("could not look for final counters due: %s", type(error).__name__)

    async def _make_digests(self) -> None:
        """Let the coalescer (`bot.digest`) turn what piled up into digests, before a claim."""
        if self._coalesce is None:
            return
        try:
            await self._coalesce()
        except Exception:  # a digest's bug must not stop the messages themselves: logged
            log.exception("could not make digests")

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._wake.set()

    async def _claim(self, limit: int) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        try:
            return await outbox.claim_outbox(
                session_factory=self._database.sessions,
                now=self._clock(),
                worker_id=self.worker_id,
                limit=limit,
                lease=self.policy.lease,
                skip_destinations=sorted(self.pacer.busy_channels(within=self.policy.max_wait)),
            )
        except SQLAlchemyError as error:  # the database hiccups: the next round tries again
            log.warning("could not read the Slack outbox: %s", type(error).__name__)
            return []

    async def _handle(self, row: OutboxMessage) -> None:
        try:
            rendered = row.purpose in RENDERED
            outcome = await (self._notice(row) if rendered else self._deliver(row))
        except Exception as error:  # one message's bug must not stop the rest: logged
            log.exception("could not deliver Slack message %s", row.key)
            outcome = Failure(f"unexpected {type(error).__name__}")
        await self._finish([(row, self._result(row, outcome))])

    async def _notice(self, row: OutboxMessage) -> Outcome:
        """A row standing for messages (a notice its process left unrendered, a send's
        counters come due): owe the messages it stands for now."""
        if self.notices is None:  # no notifier here (yet): another drainer, or later
            return Wait(self.policy.lease.total_seconds(), "no notifier to render it")
        return await self.notices(row) or Delivered()

    def _result(self, row: OutboxMessage, outcome: Outcome) -> OutboxResult:
        now = self._clock()
        if isinstance(outcome, Delivered):
            return Sent(outcome.channel, outcome.ts)
        if isinstance(outcome, Refusal):
            log.warning(
                "Slack refused message %s to %s: %s", row.key, row.destination, outcome.reason
            )
            return Refused(outcome.reason)
        if isinstance(outcome, Wait):
            return Retry(now + timedelta(seconds=outcome.seconds), outcome.why, counted=False)
        if row.attempts >= MAX_ATTEMPTS:
            log.warning("gave up on Slack message %s: %s", row.key, outcome.error)
            return Refused(f"gave up after {row.attempts} tries: {outcome.error}")
        backoff = min(MAX_BACKOFF, 2.0**row.attempts)
        return Retry(now + timedelta(seconds=backoff), outcome.error)

    async def _finish(self, results: list[tuple[OutboxMessage, OutboxResult]]) -> None:
        if not results:
            return
        try:
            await outbox.finish_outbox(
                session_factory=self._database.sessions, worker_id=self.worker_id, results=results
            )
        except SQLAlchemyError as error:
            # The lease runs out and the row is taken again: a message Slack took may then
            # be sent twice, the price of never losing one.
            log.warning("could not record Slack messages sent: %s", type(error).__name__)

    async def _maybe_prune(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = loop.time()
        try:
            await outbox.prune_outbox(
                session_factory=self._database.sessions, before=self._clock() - KEEP_DONE
            )
        except SQLAlchemyError as error:
            log.warning("could not prune the Slack outbox: %s", type(error).__name__)
