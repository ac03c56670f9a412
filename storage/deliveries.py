"""The results of deliveries: what an attempt leaves a send in, recorded in bulk.

Claims, leases and the scheduler's timers are in `storage.claims`. Same conventions as
`storage.queries`: keyword-only, every state change a compare-and-set with its audit event in
the same transaction. `finish_sends` opens its own short transactions (it takes a
`session_factory`), because several workers run it at once. Not scoped by team: the scheduler
serves every workspace, and nothing here answers a Slack user.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import outbox
from storage.audit import AuditEntry, append_audit_by_team
from storage.errors import InvalidInput
from storage.models import Send, SendState, utcnow
from storage.notifications import SendBatches, record_notifications

__all__ = [
    "DeliveryResult",
    "FinishedSends",
    "apply_result",
    "finish_sends",
    "record_counters",
]

# What an attempt may leave a send in: delivered, given up, still held for another round, or
# missed (a dead worker's send found late, which OneSignal, asked by name, does not have).
_RESULT_STATES: Final = frozenset(
    {SendState.SENT, SendState.FAILED, SendState.SENDING, SendState.MISSED}
)
_FINISHED: Final = frozenset({SendState.SENT, SendState.FAILED})


@dataclass(frozen=True)
class DeliveryResult:
    """The end of one delivery attempt, to record.

    Attributes:
        send_id: the send.
        state: `sent`, `failed`, `missed` (late, and nothing went out: its requester may send
            it again), or `sending` for a send kept for another round at `retry_at`.
        notification_id: the first OneSignal id (shown and looked up), when there is one.
        batches: every batch's outcome (JSON-ready mappings).
        error: why it failed, or what failed in a send partly delivered; None clears it.
        retry_at: when to try again (only with state `sending`); it becomes the lease's end.
        details: extra audit details (never secrets).
    """

    send_id: uuid.UUID
    state: SendState
    notification_id: str | None = None
    batches: Sequence[Mapping[str, Any]] = ()
    error: str | None = None
    retry_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state not in _RESULT_STATES:
            raise InvalidInput(f"A delivery cannot end in {self.state.value}.")
        if (self.state == SendState.SENDING) != (self.retry_at is not None):
            raise InvalidInput("A send kept in sending needs retry_at, and only then.")


@dataclass
class FinishedSends:
    """What `finish_sends` did.

    Attributes:
        recorded: the sends whose result was recorded (`apply_result` shows the new row).
        lost: sends this worker no longer held (cancelled meanwhile, or taken over by another
            worker), as they are now; a cancelled one still got the notification ids.
        at: the time written as `updated_at` (and `finished_at`).
    """

    recorded: list[uuid.UUID] = field(default_factory=list)
    lost: list[Send] = field(default_factory=list)
    at: datetime = field(default_factory=utcnow)


def apply_result(send: Send, result: DeliveryResult, at: datetime) -> Send:
    """`send` (a detached row) changed as `finish_sends` changed it in the table.

    Re-reading thousands of rows after writing them would cost more than the write; what
    was written is known, so the caller's copy is brought up to date instead.
    """
    for name, value in _record_params(result, at, None).items():
        column = name.removeprefix("b_")
        if column in ("id", "counters_due_at") or (column == "notification_id" and value is None):
            continue
        setattr(send, column, value)
    return send


async def finish_sends(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    results: Sequence[DeliveryResult],
    notice_grace: timedelta = outbox.NOTICE_GRACE,
    counters_after: timedelta | None = None,
) -> FinishedSends:
    """Record many delivery attempts in one transaction.

    Each result applies only while its send is still `sending` and claimed by `worker_id`
    (the rows are locked first, so the check holds until commit); it writes `send.sent`,
    `send.failed`, `send.missed` or `send.retry` to the audit log. A send cancelled
    meanwhile keeps its state but gets the notification ids, so whoever cancels at OneSignal
    can find them.

    An end (sent, failed, missed) also writes its notice in the outbox (`outbox.NOTICE`):
    the people concerned are owed its news even if this process dies before telling them.
    With `counters_after`, a send that went out is marked to have its final counters read
    then (`counters_due_at`, a column of the row written anyway; `outbox.owe_counters` makes
    it an outbox row when the moment comes).
    """
    if not results:
        return FinishedSends()
    by_id = {result.send_id: result for result in results}
    now = utcnow()
    lost_ids: list[uuid.UUID] = []
    async with session_factory() as session, session.begin():
        current = await _lock_rows(session, list(by_id))
        held = [
            result
            for result in by_id.values()
            if (row := current.get(result.send_id)) is not None
            and row.state == SendState.SENDING
            and row.claimed_by == worker_id
        ]
        await _apply(session, held, now, counters_after)
        await _record_ids(session, by_id, current)
        await _keep_ids_of_cancelled(session, by_id, current, held)
        await _owe_notices(session, held, current, now, notice_grace)
        held_ids = {result.send_id for result in held}
        lost_ids = [i for i in by_id if i not in held_ids and i in current]
        lost = await _reload(session, lost_ids) if lost_ids else {}
        # Last: the audit heads it locks are held until the commit, by this writer alone.
        await _audit_results(session, held, current, worker_id)
    return FinishedSends([r.send_id for r in held], [lost[i] for i in lost_ids if i in lost], now)


async def _lock_rows(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    query = (
        sa.select(
            Send.id,
            Send.team_id,
            Send.requester_id,
            Send.short_id,
            Send.state,
            Send.claimed_by,
            Send.attempts,
            Send.notification_id,
        )
        .where(Send.id.in_(ids))
        .order_by(Send.id)  # one lock order for every worker: no deadlock between them
        .with_for_update()
    )
    return {row.id: row for row in (await session.execute(query)).all()}


_SENDS: Final = cast(sa.Table, Send.__table__)
# One UPDATE for every result, run as executemany: compiled once, a few rows per millisecond.
_RECORD: Final = (
    sa.update(_SENDS)
    .where(_SENDS.c.id == sa.bindparam("b_id"), _SENDS.c.state == SendState.SENDING)
    .values(
        state=sa.bindparam("b_state", type_=_SENDS.c.state.type),
        notification_id=sa.func.coalesce(
            sa.bindparam("b_notification_id", type_=_SENDS.c.notification_id.type),
            _SENDS.c.notification_id,
        ),
        batches=sa.bindparam("b_batches", type_=_SENDS.c.batches.type),
        last_error=sa.bindparam("b_last_error", type_=_SENDS.c.last_error.type),
        lease_until=sa.bindparam("b_lease_until", type_=_SENDS.c.lease_until.type),
        finished_at=sa.bindparam("b_finished_at", type_=_SENDS.c.finished_at.type),
        updated_at=sa.bindparam("b_updated_at", type_=_SENDS.c.updated_at.type),
        counters_due_at=sa.bindparam("b_counters_due_at", type_=_SENDS.c.counters_due_at.type),
    )
)


def _record_params(
    result: DeliveryResult, now: datetime, counters_after: timedelta | None
) -> dict[str, Any]:
    finished = result.state in _FINISHED  # a missed send may still be sent again
    due = now + counters_after if counters_after is not None and _went_out(result) else None
    return {
        "b_id": result.send_id,
        "b_state": result.state,
        "b_notification_id": result.notification_id,
        "b_batches": [dict(batch) for batch in result.batches],
        "b_last_error": result.error,
        "b_lease_until": result.retry_at,
        "b_finished_at": now if finished else None,
        "b_updated_at": now,
        "b_counters_due_at": due,
    }


async def _apply(
    session: AsyncSession,
    held: Sequence[DeliveryResult],
    now: datetime,
    counters_after: timedelta | None,
) -> None:
    if held:
        params = [_record_params(result, now, counters_after) for result in held]
        await session.execute(_RECORD, params)


async def _record_ids(
    session: AsyncSession,
    by_id: Mapping[uuid.UUID, DeliveryResult],
    current: Mapping[uuid.UUID, Any],
) -> None:
    """The notification ids of every result whose send is still there: held ones, and
    cancelled ones (whoever cancels at OneSignal looks them up)."""
    await record_notifications(
        session=session,
        recorded=[
            SendBatches(row.team_id, send_id, result.batches, result.notification_id)
            for send_id, result in by_id.items()
            if (row := current.get(send_id)) is not None
        ],
    )


async def _keep_ids_of_cancelled(
    session: AsyncSession,
    by_id: Mapping[uuid.UUID, DeliveryResult],
    current: Mapping[uuid.UUID, Any],
    held: Sequence[DeliveryResult],
) -> None:
    held_ids = {result.send_id for result in held}
    for send_id, result in by_id.items():
        row = current.get(send_id)
        if send_id in held_ids or row is None or row.state != SendState.CANCELLED:
            continue
        if result.notification_id is None or row.notification_id is not None:
            continue
        await session.execute(
            sa.update(Send)
            .where(Send.id == send_id, Send.state == SendState.CANCELLED)
            .values(
                notification_id=result.notification_id,
                batches=[dict(batch) for batch in result.batches],
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )


async def _audit_results(
    session: AsyncSession,
    held: Sequence[DeliveryResult],
    current: Mapping[uuid.UUID, Any],
    worker_id: str,
) -> None:
    by_team: dict[str, list[AuditEntry]] = {}
    for result in held:
        row = current[result.send_id]
        action = "send.retry" if result.state == SendState.SENDING else f"send.{result.state.value}"
        details: dict[str, Any] = {
            "send_id": str(result.send_id),
            "from": SendState.SENDING.value,
            "to": result.state.value,
            "attempt": row.attempts,
            **dict(result.details),
        }
        if result.notification_id:
            details["notification_id"] = result.notification_id
        if result.error:
            details["error"] = result.error
        if result.retry_at is not None:
            details["retry_at"] = result.retry_at.isoformat()
        entry = AuditEntry(f"worker:{worker_id}", action, f"send {row.short_id}", "ok", details)
        by_team.setdefault(row.team_id, []).append(entry)
    await append_audit_by_team(session=session, entries=by_team)


async def _owe_notices(
    session: AsyncSession,
    held: Sequence[DeliveryResult],
    current: Mapping[uuid.UUID, Any],
    now: datetime,
    grace: timedelta,
) -> None:
    """The notices of the ends in `held` (a retry kept for later is no news), from the rows
    locked for them and the moment `_apply` stamped: no send is read again."""
    ended = [result for result in held if result.state != SendState.SENDING]
    if not ended:
        return
    entries = []
    for result in ended:
        row = current[result.send_id]
        send = outbox.Changed(row.id, row.team_id, row.requester_id, now)
        entries.append(outbox.notice_entry(send, *_outcome(result), grace=grace))
    await outbox.enqueue(session=session, entries=entries, replace=False)


def _outcome(result: DeliveryResult) -> tuple[str, dict[str, str]]:
    """What the notice of `result` tells, and what telling it needs."""
    if result.state == SendState.MISSED:
        return "missed", {}
    if result.state == SendState.SENT and result.error is None:
        return "delivered", {}
    return "failed", {"reason": result.error or "Delivery failed."}


def _went_out(result: DeliveryResult) -> bool:
    """Whether OneSignal took some of the send (a send partly delivered is `sent` too)."""
    return result.state == SendState.SENT and (
        result.notification_id is not None
        or any(batch.get("notification_id") for batch in result.batches)
    )


async def record_counters(
    *,
    session: AsyncSession,
    team_id: str,
    send_id: uuid.UUID,
    counted: Mapping[str, Mapping[str, Any]],
) -> Send | None:
    """Keep OneSignal's final counters of a send's notifications (`counted`: notification id
    -> counters) in its batches, each beside its notification id; the send as it is now, or
    None when it is gone. A send stored before batches were kept gets one batch."""
    send = (
        await session.scalars(
            sa.select(Send).where(Send.id == send_id, Send.team_id == team_id).with_for_update()
        )
    ).one_or_none()
    if send is None:
        return None
    batches = [dict(batch) for batch in send.batches or []]
    if not batches and send.notification_id:
        batches = [{"notification_id": send.notification_id}]
    for batch in batches:
        found = counted.get(str(batch.get("notification_id")))
        if found is not None:
            batch["counters"] = dict(found)
    send.batches = batches
    await session.flush([send])
    return send


async def _reload(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Send]:
    query = sa.select(Send).where(Send.id.in_(ids)).execution_options(populate_existing=True)
    return {send.id: send for send in await session.scalars(query)}
