"""The Slack outbox: messages PushOps owes Slack, written with what they report, drained later.

Storage knows nothing of Slack: a row (`OutboxMessage`) is a generic owed message with a
destination, a priority and a JSON payload. `enqueue` writes one in the caller's transaction;
the drainer (`bot.outbox`) takes due rows with a lease (`claim_outbox`, safe with several
processes as `claim_due_sends` is), and records what Slack answered (`finish_outbox`). Same
conventions as `storage.queries`: keyword-only; functions taking a `session_factory` open
their own short transactions.

Coalescing: a keyed channel message (`replace=True`) queued again before it was sent keeps one
row, its payload replaced and its `version` bumped, so only the latest is sent. A row being
sent meanwhile keeps its lease: the new version waits for the first to finish (so a message is
never posted twice by two drainers at once) and is then sent as an update of it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, TypeAlias, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import OutboxKind, OutboxMessage, OutboxState, Send, utcnow

__all__ = [
    "COUNTERS",
    "DEFAULT_OUTBOX_LEASE",
    "NOTICE",
    "NOTICE_GRACE",
    "OutboxEntry",
    "OutboxResult",
    "Refused",
    "Retry",
    "Notice",
    "NoticeOf",
    "Sent",
    "Changed",
    "claim_outbox",
    "counters_entry",
    "owe_counters",
    "enqueue",
    "finish_outbox",
    "notice_entry",
    "owe_notice",
    "outbox_counts",
    "owed_before",
    "prune_outbox",
    "refused_messages",
    "settle_notices",
]

DEFAULT_OUTBOX_LEASE: Final = timedelta(seconds=60)
"""How long a claimed row belongs to its drainer before another may take it over."""

REMEMBERED_PURPOSES: Final = frozenset({"log", "approval"})
"""Channel messages whose place is also kept in `sends.slack_messages[purpose]`."""

NOTICE: Final = "notice"
"""The purpose of a row that says people are owed news of a change of a send, written in the
transaction of that change, before anyone rendered the news: `payload` holds the `outcome`
(`delivered`, `failed`, `missed`, `cancelled`, `rejected`, `expired`, `held`,
`approval_requested`) and what telling it needs (`args`, e.g. who cancelled and what the
cancel did). The notifier renders the news right after the commit and settles the notice
(`settle_notices`) in the transaction that owes the messages; a notice still pending after
`NOTICE_GRACE` (its process died in between) is rendered by a drainer."""

NOTICE_GRACE: Final = timedelta(seconds=10)
"""How long a notice waits for the notifier of its own process before a drainer renders it."""

COUNTERS: Final = "counters"
"""The purpose of a row that says a send's final delivery counters are owed now: made from
the send's `counters_due_at` (written with its result) once that moment came (`owe_counters`).
The drainer that claims it (with a lease, as any row: one process reads them) hands it to its
notifier, which reads OneSignal once per notification and updates the messages about the
send."""


@dataclass(frozen=True)
class OutboxEntry:
    """A message to owe Slack (see `OutboxMessage` for the fields)."""

    team_id: str
    key: str
    kind: OutboxKind
    purpose: str
    destination: str
    payload: Mapping[str, Any]
    priority: int = 1
    send_id: uuid.UUID | None = None
    channel: str | None = None  # a channel message already posted (before the outbox)
    ts: str | None = None
    due_at: datetime | None = None  # not before (a notice waits for its own notifier)


def notice_entry(
    send: NoticeOf, outcome: str, args: Mapping[str, Any], *, grace: timedelta = NOTICE_GRACE
) -> OutboxEntry:
    """The notice that the people concerned are owed news of `send`'s `outcome` (`NOTICE`),
    to write in the transaction of the change; `send` as that transaction left it."""
    moment = send.updated_at or utcnow()
    return OutboxEntry(
        team_id=send.team_id,
        key=f"{NOTICE}:{send.id}:{outcome}:{int(moment.timestamp() * 1_000_000)}",
        kind=OutboxKind.DM,
        purpose=NOTICE,
        destination=send.requester_id,
        payload={"outcome": outcome, "args": dict(args)},
        priority=0,
        send_id=send.id,
        due_at=utcnow() + grace,
    )


async def owe_notice(
    *,
    session: AsyncSession,
    send: NoticeOf,
    outcome: str,
    args: Mapping[str, Any],
    grace: timedelta = NOTICE_GRACE,
) -> None:
    """Write the notice of `send`'s `outcome` (`notice_entry`) in the caller's transaction,
    the one that makes the change."""
    await _insert_new(session, [notice_entry(send, outcome, args, grace=grace)], utcnow())


def counters_entry(send: NoticeOf, *, due_at: datetime) -> OutboxEntry:
    """The row owing `send`'s final counters (`COUNTERS`), due at `due_at`; one per send."""
    return OutboxEntry(
        team_id=send.team_id,
        key=f"{COUNTERS}:{send.id}",
        kind=OutboxKind.DM,
        purpose=COUNTERS,
        destination=send.requester_id,
        payload={},
        priority=2,
        send_id=send.id,
        due_at=due_at,
    )


async def owe_counters(
    *, session_factory: async_sessionmaker[AsyncSession], now: datetime, limit: int = 100
) -> int:
    """Make up to `limit` sends whose final counters are due (`Send.counters_due_at`) rows
    owing them (`COUNTERS`), clearing the moment in the same transaction, so each is owed once
    whoever looks (rows locked `FOR UPDATE SKIP LOCKED` on PostgreSQL). How many were owed."""
    due = (
        sa.select(Send.id, Send.team_id, Send.requester_id, Send.updated_at)
        .where(Send.counters_due_at.is_not(None), Send.counters_due_at <= now)
        .order_by(Send.counters_due_at)
        .limit(limit)
    )
    async with session_factory() as session:  # a look that finds none writes nothing
        if not (await session.execute(due)).first():
            return 0
    async with session_factory() as session, session.begin():
        sends = (await session.execute(due.with_for_update(skip_locked=True))).all()
        if not sends:
            return 0
        await session.execute(
            sa.update(Send)
            .where(Send.id.in_([send.id for send in sends]))
            .values(counters_due_at=None)
            .execution_options(synchronize_session=False)
        )
        await _insert_new(session, [counters_entry(send, due_at=now) for send in sends], now)
    return len(sends)


class NoticeOf(Protocol):
    """What a notice needs of its send: a `Send`, or a row of its columns."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def team_id(self) -> str: ...
    @property
    def requester_id(self) -> str: ...
    @property
    def updated_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Changed:
    """A send as the transaction of its change leaves it, as far as its notice needs."""

    id: uuid.UUID
    team_id: str
    requester_id: str
    updated_at: datetime


Notice: TypeAlias = tuple[str, uuid.UUID, str]
"""(team, send, outcome): the news of that outcome of the send, owed by its notices."""


async def settle_notices(*, session: AsyncSession, notices: Collection[Notice]) -> None:
    """The news of each (team, send, outcome) is owed as messages now: the send's pending
    notices of that outcome are done (in the caller's transaction, the one that owes the
    messages). One statement for all of them: a burst's deliveries settle together."""
    if not notices:
        return
    groups: dict[tuple[str, str], set[uuid.UUID]] = {}
    for team_id, send_id, outcome in notices:
        groups.setdefault((team_id, outcome), set()).add(send_id)
    c = _OUTBOX.c
    # A notice's key is `notice:<send>:<outcome>:<moment>` (`notice_entry`): the outcome is
    # the only part between colons that is not the send's id or a number.
    each = [
        sa.and_(
            c.team_id == team_id,
            c.send_id.in_(sorted(ids)),
            c.key.contains(f":{outcome}:", autoescape=True),
        )
        for (team_id, outcome), ids in sorted(groups.items())
    ]
    # The table's UPDATE, not the ORM's: no notice is loaded in the session, and the ORM's
    # search of its identity map for rows to synchronise cost more CPU than the statement
    # (profiled in a burst of 10,000 sends).
    await session.execute(
        sa.update(_OUTBOX)
        .where(
            c.purpose == NOTICE,
            c.state == OutboxState.PENDING,
            c.key.startswith(f"{NOTICE}:"),
            sa.or_(*each),
        )
        .values(state=OutboxState.DONE, updated_at=utcnow())
    )


def _insert_for(session: AsyncSession) -> Any:
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


async def enqueue(*, session: AsyncSession, entries: Sequence[OutboxEntry], replace: bool) -> None:
    """Owe Slack `entries`, in the caller's transaction.

    A key already queued (or sent) in the workspace: with `replace`, its payload, priority
    and destination are replaced, its version bumped and it is due again (the latest wins,
    and a message already posted is updated in place); without, nothing changes (a DM is
    told once).
    """
    now = utcnow()
    if not replace:
        await _insert_new(session, entries, now)
        return
    insert = _insert_for(session)
    for entry in entries:  # one statement each: an upsert's `excluded` row is per statement
        statement = insert(OutboxMessage).values(**_row(entry, now))
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["team_id", "key"],
            set_={
                "payload": excluded.payload,
                "priority": excluded.priority,
                "destination": excluded.destination,
                "state": OutboxState.PENDING,
                "version": OutboxMessage.version + 1,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "updated_at": now,
            },
        )
        await session.execute(statement)


_OUTBOX: Final = cast(sa.Table, OutboxMessage.__table__)


async def _insert_new(session: AsyncSession, entries: Sequence[OutboxEntry], now: datetime) -> None:
    """`entries` whose keys are not queued yet, as one statement run for every row (compiled
    once: a delivery's notices are written by the thousand, in the transaction of its end)."""
    if not entries:
        return
    await session.execute(_insert_new_statement(), [_row(entry, now) for entry in entries])


@functools.cache
def _insert_new_statement() -> sa.TextClause:
    """`INSERT … ON CONFLICT (team_id, key) DO NOTHING` of every column, typed as the table's.

    SQLAlchemy's dialect inserts (`postgresql.insert`, `sqlite.insert`) have no cache key
    (SQLAlchemy 2.0 logs "[no key]"): every execution compiled the statement again, which
    was most of this function's CPU in a burst. A textual statement is compiled once, and
    both databases take this syntax (tests/storage/test_outbox.py runs it on each).
    """
    columns = [_OUTBOX.c[name] for name in _NEW_COLUMNS]
    quoted = ", ".join(f'"{column.name}"' for column in columns)
    values = ", ".join(f":{column.name}" for column in columns)
    return sa.text(
        f'INSERT INTO "{_OUTBOX.name}" ({quoted}) VALUES ({values}) '
        'ON CONFLICT ("team_id", "key") DO NOTHING'
    ).bindparams(*(sa.bindparam(column.name, type_=column.type) for column in columns))


_NEW_COLUMNS: Final = (
    *("id", "team_id", "key", "send_id", "kind", "purpose", "destination", "priority"),
    *("payload", "state", "version", "attempts", "next_attempt_at", "last_error"),
    *("channel", "ts", "created_at", "updated_at"),
)
"""The columns of a new row (`_row`); the others (a lease, a digest) start empty."""


def _row(entry: OutboxEntry, now: datetime) -> dict[str, Any]:
    """The new row of `entry` (`_NEW_COLUMNS`): pending, due at its `due_at` (or now),
    never tried."""
    return {
        "id": uuid.uuid4(),
        "team_id": entry.team_id,
        "key": entry.key,
        "send_id": entry.send_id,
        "kind": entry.kind,
        "purpose": entry.purpose,
        "destination": entry.destination,
        "priority": entry.priority,
        "payload": dict(entry.payload),
        "state": OutboxState.PENDING,
        "version": 1,
        "attempts": 0,
        "next_attempt_at": entry.due_at or now,
        "last_error": None,
        "channel": entry.channel,
        "ts": entry.ts,
        "created_at": now,
        "updated_at": now,
    }


async def get_outbox_message(
    *, session: AsyncSession, team_id: str, key: str
) -> OutboxMessage | None:
    """The row of `key` in the workspace, or None."""
    query = sa.select(OutboxMessage).where(
        OutboxMessage.team_id == team_id, OutboxMessage.key == key
    )
    return (await session.scalars(query)).one_or_none()


async def posted_message(
    *, session: AsyncSession, team_id: str, send_id: uuid.UUID, purpose: str
) -> OutboxMessage | None:
    """The latest message of `purpose` about the send that Slack took (its place known)."""
    query = (
        sa.select(OutboxMessage)
        .where(
            OutboxMessage.team_id == team_id,
            OutboxMessage.send_id == send_id,
            OutboxMessage.purpose == purpose,
            OutboxMessage.ts.is_not(None),
        )
        .order_by(OutboxMessage.created_at.desc())
        .limit(1)
    )
    return (await session.scalars(query)).one_or_none()


async def claim_outbox(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    worker_id: str,
    limit: int = 50,
    lease: timedelta = DEFAULT_OUTBOX_LEASE,
    skip_destinations: Collection[str] = (),
) -> list[OutboxMessage]:
    """Take up to `limit` due pending rows for this drainer, most urgent first.

    A row is due when its `next_attempt_at` has come and no live lease holds it (a dead
    drainer's rows are taken over once their lease ends). On PostgreSQL the candidates are
    locked `FOR UPDATE SKIP LOCKED`, so drainers in other processes take other rows; on
    SQLite the write transaction holds the database. `skip_destinations`: channels this
    drainer cannot write to soon (paced), left for later. `attempts` counts claims.
    """
    conditions = [
        OutboxMessage.state == OutboxState.PENDING,
        OutboxMessage.next_attempt_at <= now,
        sa.or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
    ]
    if skip_destinations:
        conditions.append(OutboxMessage.destination.not_in(list(skip_destinations)))
    async with session_factory() as session, session.begin():
        candidates = (
            sa.select(OutboxMessage.id)
            .where(*conditions)
            .order_by(OutboxMessage.priority, OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        chosen = list(await session.scalars(candidates))
        if not chosen:
            return []
        claimed = await session.scalars(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id.in_(chosen), *conditions)
            .values(
                leased_by=worker_id,
                lease_until=now + lease,
                attempts=OutboxMessage.attempts + 1,
                updated_at=now,
            )
            .returning(OutboxMessage)
        )
        rows = list(claimed)
    rows.sort(key=lambda row: (row.priority, row.next_attempt_at, row.id))
    return rows


@dataclass(frozen=True)
class Sent:
    """Slack took the message; `channel` and `ts` say where it is (kept for updates)."""

    channel: str | None = None
    ts: str | None = None


@dataclass(frozen=True)
class Retry:
    """Not delivered this time: try again at `at`. `counted`: False when Slack only asked to
    wait (rate limited, paced), which does not bring the row nearer to giving up."""

    at: datetime
    error: str
    counted: bool = True


@dataclass(frozen=True)
class Refused:
    """Slack refused the message for good (`reason`, e.g. channel_not_found): not retried."""

    reason: str


OutboxResult: TypeAlias = Sent | Retry | Refused


@dataclass
class Finished:
    """What `finish_outbox` did: rows done, refused, to be tried again, and rows this drainer
    no longer held (its lease ran out and another took them) whose results were dropped."""

    done: list[uuid.UUID] = field(default_factory=list)
    refused: list[uuid.UUID] = field(default_factory=list)
    again: list[uuid.UUID] = field(default_factory=list)
    lost: list[uuid.UUID] = field(default_factory=list)


async def finish_outbox(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    results: Sequence[tuple[OutboxMessage, OutboxResult]],
) -> Finished:
    """Record what Slack answered for rows this drainer claimed, in one transaction.

    Each applies only while the row is still leased by `worker_id`. A row replaced since it
    was claimed (its `version` moved on) stays pending, due at once, with the place of the
    message just posted, so the latest version updates it. A channel message's place is also
    written to its send's `slack_messages` (for `log` and `approval`).
    """
    finished = Finished()
    if not results:
        return finished
    now = utcnow()
    async with session_factory() as session, session.begin():
        current = await _lock(session, [row.id for row, _ in results])
        for row, result in results:
            held = current.get(row.id)
            if held is None or held.leased_by != worker_id:
                finished.lost.append(row.id)
                continue
            moved_on = held.version != row.version
            values = _finish_values(row, result, now, moved_on)
            await session.execute(
                sa.update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values)
            )
            if isinstance(result, Sent) and result.ts and row.purpose in REMEMBERED_PURPOSES:
                await _remember(session, row, result)
            state = values.get("state", OutboxState.PENDING)
            {
                OutboxState.DONE: finished.done,
                OutboxState.REFUSED: finished.refused,
                OutboxState.PENDING: finished.again,
            }[state].append(row.id)
    return finished


def _finish_values(
    row: OutboxMessage, result: OutboxResult, now: datetime, moved_on: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {"leased_by": None, "lease_until": None, "updated_at": now}
    if isinstance(result, Sent):
        if result.ts:
            values.update(channel=result.channel, ts=result.ts)
        values.update(last_error=None)
        if moved_on:
            values.update(next_attempt_at=now, attempts=0)
        else:
            values.update(state=OutboxState.DONE)
    elif isinstance(result, Refused) and not moved_on:
        values.update(state=OutboxState.REFUSED, last_error=result.reason)
    elif isinstance(result, Refused):  # a newer version may well be taken: try it
        values.update(next_attempt_at=now, last_error=result.reason)
    else:
        values.update(next_attempt_at=result.at, last_error=result.error)
        if not result.counted:
            values.update(attempts=OutboxMessage.attempts - 1)
    return values


async def _lock(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    query = (
        sa.select(OutboxMessage.id, OutboxMessage.leased_by, OutboxMessage.version)
        .where(OutboxMessage.id.in_(ids))
        .order_by(OutboxMessage.id)  # one lock order for every drainer
        .with_for_update()
    )
    return {row.id: row for row in (await session.execute(query)).all()}


async def _remember(session: AsyncSession, row: OutboxMessage, result: Sent) -> None:
    """Keep where the message is in its send's `slack_messages`, as commands read it."""
    if row.send_id is None:
        return
    send = (
        await session.scalars(
            sa.select(Send).where(Send.id == row.send_id, Send.team_id == row.team_id)
        )
    ).one_or_none()
    if send is None:
        return
    place = {"channel": result.channel, "ts": result.ts}
    if send.slack_messages.get(row.purpose) != place:
        send.slack_messages = {**send.slack_messages, row.purpose: place}
        await session.flush([send])


async def refused_messages(
    *, session: AsyncSession, team_id: str, send_id: uuid.UUID
) -> list[OutboxMessage]:
    """The messages about a send that Slack refused for good, oldest first (a read of its
    final counters given up is no message Slack refused: only logged)."""
    query = sa.select(OutboxMessage).where(
        OutboxMessage.team_id == team_id,
        OutboxMessage.send_id == send_id,
        OutboxMessage.state == OutboxState.REFUSED,
        OutboxMessage.purpose != COUNTERS,
    )
    return list(await session.scalars(query.order_by(OutboxMessage.created_at)))


async def owed_before(*, session: AsyncSession, moment: datetime) -> bool:
    """Whether a pending row falls due by `moment`."""
    query = (
        sa.select(OutboxMessage.id)
        .where(OutboxMessage.state == OutboxState.PENDING, OutboxMessage.next_attempt_at <= moment)
        .limit(1)
    )
    return (await session.scalar(query)) is not None


async def outbox_counts(*, session: AsyncSession) -> dict[OutboxState, int]:
    """How many rows are in each state (every workspace; operators and metrics)."""
    query = sa.select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state)
    counts = {state: 0 for state in OutboxState}
    for state, count in (await session.execute(query)).all():
        counts[OutboxState(state)] = int(count)
    return counts


async def prune_outbox(
    *, session_factory: async_sessionmaker[AsyncSession], before: datetime
) -> int:
    """Delete rows done before `before` (refused ones stay: /push status shows them)."""
    async with session_factory() as session, session.begin():
        result = await session.execute(
            sa.delete(OutboxMessage).where(
                OutboxMessage.state == OutboxState.DONE, OutboxMessage.updated_at < before
            )
        )
    count: int = getattr(result, "rowcount", 0)
    return count
