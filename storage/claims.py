"""Claims, leases and sweeps of sends: everything several processes do to the same rows at once.

A worker claims a due send (scheduled -> sending) for the length of a lease, renews the lease
while it delivers, and hands its claims back when it stops; another worker takes over a send
whose lease ran out (same UUID, so the same OneSignal idempotency key). The sweeps mark late
scheduled sends missed and expire approvals left waiting. `list_timers` tells the scheduler
when each send next needs it.

Same conventions as `storage.queries`, except that these functions open their own short
transactions (they take a `session_factory`), because several workers run them at once: on
PostgreSQL candidates are locked `FOR UPDATE SKIP LOCKED`, on SQLite the transaction holds
the write lock, and every state change is a compare-and-set with its audit event in the same
transaction. They are not scoped by team: the scheduler serves every workspace, and nothing
here answers a Slack user.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import QueryableAttribute

from storage import outbox
from storage.audit import AuditEntry, append_audit_by_team
from storage.models import Send, SendState, utcnow

__all__ = [
    "DEFAULT_LEASE",
    "Claim",
    "Released",
    "Timer",
    "claim_due_sends",
    "claim_in",
    "claim_send",
    "confirm_claim",
    "expire_pending_approvals",
    "list_timers",
    "mark_missed_sends",
    "reclaim_stale_sends",
    "release_claims",
    "renew_leases",
]

DEFAULT_LEASE: Final = timedelta(seconds=60)
"""How long a claimed send belongs to its worker before another may take it over.

`bot.delivery.outcomes.DeliveryPolicy.lease` and the scheduler default to it; a live worker
renews its leases every third of it.
"""


@dataclass(frozen=True)
class Claim:
    """A worker taking a send it creates for delivery at once (see `create_send`)."""

    worker_id: str
    lease: timedelta = DEFAULT_LEASE

    def columns(self, now: datetime) -> dict[str, Any]:
        """What a send claimed as it is stored holds: its first claim, as `claim_due_sends`
        would write it."""
        first = {"state": SendState.SENDING, "attempts": 1}  # a new row: no count to add to
        return _claim_changes(self.worker_id, now, self.lease) | first


# --- claims of due sends -----------------------------------------------------------------------


async def claim_due_sends(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    worker_id: str,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
    grace: timedelta | None = None,
) -> list[Send]:
    """Claim scheduled sends due by `now` (scheduled -> sending) for this worker.

    Safe with many processes: on PostgreSQL the candidates are locked with
    `FOR UPDATE SKIP LOCKED` (a competing claimer takes other rows instead of waiting), and
    the UPDATE re-checks the state; on SQLite the transaction holds the write lock. Each send
    is claimed by exactly one worker; `attempts` counts claims. With `grace`, sends late by
    more than it are left for `mark_missed_sends`.
    """
    conditions = [Send.state == SendState.SCHEDULED, Send.due_at <= now]
    if grace is not None:
        conditions.append(Send.due_at >= now - grace)
    return await _bulk_transition(
        session_factory,
        conditions=conditions,
        order_by=(Send.due_at, Send.id),
        limit=limit,
        from_state=SendState.SCHEDULED,
        to_state=SendState.SENDING,
        changes=_claim_changes(worker_id, now, lease),
        actor=f"worker:{worker_id}",
        action="send.sending",
    )


def _claim_changes(worker_id: str, now: datetime, lease: timedelta) -> dict[str, Any]:
    """What claiming a send writes, for a first claim and a take-over alike."""
    return {
        "claimed_by": worker_id,
        "claimed_at": now,
        "lease_until": now + lease,
        "attempts": Send.attempts + 1,
    }


async def reclaim_stale_sends(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    worker_id: str,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
) -> list[Send]:
    """Take over sends stuck in `sending` whose lease ran out: held for a retry, or their
    worker died.

    They keep their UUID, so retrying them reaches OneSignal with the same idempotency key.
    Late ones are taken over too: whatever their worker got no answer for may have gone
    out, so the taker asks OneSignal (by name, never sending) before anything else is said
    of them (`bot.delivery.attempt.settle`).
    """
    return await _bulk_transition(
        session_factory,
        conditions=[Send.state == SendState.SENDING, Send.lease_until < now],
        order_by=(Send.lease_until, Send.id),
        limit=limit,
        from_state=SendState.SENDING,
        to_state=SendState.SENDING,
        changes=_claim_changes(worker_id, now, lease),
        actor=f"worker:{worker_id}",
        action="send.reclaimed",
    )


async def mark_missed_sends(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    grace: timedelta,
    limit: int = 100,
    actor: str = "scheduler",
) -> list[Send]:
    """Scheduled sends late by more than `grace` become `missed` (never sent blindly), at most
    `limit`.

    Only scheduled ones: they were never claimed, so nothing of them went out. A send held
    in `sending` is never marked here, however late: its last call may have reached
    OneSignal, and only OneSignal can say (`reclaim_stale_sends`). Each miss owes its
    news in the same transaction (`outbox.NOTICE`).
    """
    return await _bulk_transition(
        session_factory,
        conditions=[Send.state == SendState.SCHEDULED, Send.due_at < now - grace],
        order_by=(Send.due_at, Send.id),
        limit=limit,
        from_state=SendState.SCHEDULED,
        to_state=SendState.MISSED,
        changes={},
        actor=actor,
        action="send.missed",
        notice="missed",
    )


async def expire_pending_approvals(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    ttl: timedelta,
    limit: int = 100,
    actor: str = "scheduler",
) -> list[Send]:
    """Sends waiting for approval longer than `ttl` become `expired`.

    The wait counts from the send's last change (`updated_at`): when it entered
    pending_approval, which for a missed send asked again is long after it was created, or
    its last approval. Each expiry owes its news in the same transaction (`outbox.NOTICE`).
    """
    return await _bulk_transition(
        session_factory,
        conditions=[Send.state == SendState.PENDING_APPROVAL, Send.updated_at < now - ttl],
        order_by=(Send.updated_at, Send.id),
        limit=limit,
        from_state=SendState.PENDING_APPROVAL,
        to_state=SendState.EXPIRED,
        changes={"finished_at": now},
        actor=actor,
        action="send.expired",
        notice="expired",
    )


async def _bulk_transition(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    conditions: Sequence[sa.ColumnElement[bool]],
    order_by: Sequence[sa.ColumnElement[Any] | Any],
    limit: int,
    from_state: SendState,
    to_state: SendState,
    changes: Mapping[str, Any],
    actor: str,
    action: str,
    notice: str | None = None,
) -> list[Send]:
    """Move up to `limit` sends matching `conditions`; with `notice`, the news of each move
    (that outcome) is owed in the same transaction (`outbox.NOTICE`)."""
    async with session_factory() as session, session.begin():
        candidates = (
            sa.select(Send.id)
            .where(*conditions)
            .order_by(*order_by)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        chosen = list(await session.scalars(candidates))
        if not chosen:
            return []
        moved = await _move(session, chosen, from_state, to_state, changes, actor, action)
        if notice is not None:
            entries = [outbox.notice_entry(send, notice, {}) for send in moved]
            await outbox.enqueue(session=session, entries=entries, replace=False)
        return moved


async def _move(
    session: AsyncSession,
    chosen: Sequence[uuid.UUID],
    from_state: SendState,
    to_state: SendState,
    changes: Mapping[str, Any],
    actor: str,
    action: str,
) -> list[Send]:
    """Move the `chosen` sends still in `from_state` to `to_state`, audited; the moved rows."""
    result = await session.scalars(
        sa.update(Send)
        .where(Send.id.in_(chosen), Send.state == from_state)
        .values(state=to_state, updated_at=utcnow(), **changes)
        .returning(Send)
        .execution_options(populate_existing=True)  # a row this session already holds
    )
    sends = list(result)
    await _audit_each(session, sends, from_state, actor, action)
    return sends


async def _audit_each(
    session: AsyncSession, sends: Sequence[Send], from_state: SendState, actor: str, action: str
) -> None:
    by_team: dict[str, list[AuditEntry]] = {}
    for send in sends:
        details: dict[str, Any] = {
            "send_id": str(send.id),
            "from": from_state.value,
            "to": send.state.value,
        }
        if send.state == SendState.SENDING:
            details["attempt"] = send.attempts
        by_team.setdefault(send.team_id, []).append(
            AuditEntry(actor, action, f"send {send.short_id}", "ok", details)
        )
    await append_audit_by_team(session=session, entries=by_team)


# --- one send, leases, timers, hand-back ---------------------------------------------------------


async def claim_send(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    send_id: uuid.UUID,
    now: datetime,
    worker_id: str,
    lease: timedelta = DEFAULT_LEASE,
    grace: timedelta | None = None,
) -> Send | None:
    """Claim one due scheduled send for this worker (scheduled -> sending), as `claim_due_sends`.

    None when it is not this worker's to take: someone claimed or cancelled it first, it is
    not due yet, or (with `grace`) it is later than the grace and left for `mark_missed_sends`.
    """
    conditions = [Send.id == send_id, Send.state == SendState.SCHEDULED, Send.due_at <= now]
    if grace is not None:
        conditions.append(Send.due_at >= now - grace)
    claimed = await _bulk_transition(
        session_factory,
        conditions=conditions,
        order_by=(Send.id,),
        limit=1,
        from_state=SendState.SCHEDULED,
        to_state=SendState.SENDING,
        changes=_claim_changes(worker_id, now, lease),
        actor=f"worker:{worker_id}",
        action="send.sending",
    )
    return claimed[0] if claimed else None


async def claim_in(
    *, session: AsyncSession, send_id: uuid.UUID, now: datetime, claim: Claim
) -> Send | None:
    """Claim a scheduled send for `claim`'s worker inside the caller's transaction.

    For a send the caller has just made due (a missed send sent again), so that no sweep
    takes it between that commit and the caller's own delivery. None when it is not scheduled.
    """
    changes = _claim_changes(claim.worker_id, now, claim.lease)
    actor = f"worker:{claim.worker_id}"
    moved = await _move(
        session, [send_id], SendState.SCHEDULED, SendState.SENDING, changes, actor, "send.sending"
    )
    return moved[0] if moved else None


@dataclass(frozen=True)
class Timer:
    """A moment the scheduler must act on a send.

    `at` is the due time of a scheduled send, or the end of the lease of a send held in
    `sending` (a retry waits for it; a crashed worker's send is taken over after it).
    """

    send_id: uuid.UUID
    state: SendState
    at: datetime | None


async def list_timers(*, session: AsyncSession, until: datetime | None = None) -> list[Timer]:
    """Every scheduled or held send of every workspace, with the moment it needs attention;
    with `until`, only those that need it by then (or have no moment: at once).

    Only four columns are read, and with `until` only the sends due soon (through the index
    on state and due time), so re-deriving the timers stays cheap however many sends are
    scheduled far ahead.
    """
    query = sa.select(Send.id, Send.state, Send.due_at, Send.lease_until)
    if until is None:
        query = query.where(Send.state.in_([SendState.SCHEDULED, SendState.SENDING]))
    else:
        query = query.where(
            sa.or_(
                sa.and_(Send.state == SendState.SCHEDULED, _by(Send.due_at, until)),
                sa.and_(Send.state == SendState.SENDING, _by(Send.lease_until, until)),
            )
        )
    rows = (await session.execute(query)).all()
    return [
        Timer(
            row.id, row.state, row.due_at if row.state == SendState.SCHEDULED else row.lease_until
        )
        for row in rows
    ]


def _by(column: QueryableAttribute[datetime | None], until: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(column.is_(None), column <= until)


async def renew_leases(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    send_ids: Collection[uuid.UUID],
    lease_until: datetime,
) -> int:
    """Extend this worker's lease on sends it is still delivering; how many it renewed.

    A long delivery keeps its send this way, so no other worker takes it over meanwhile. A
    send whose row is locked (its result is being recorded right now) is skipped: that write
    sets its lease anyway, and waiting for it, in an order other than the recorder's, could
    deadlock the two.
    """
    if not send_ids:
        return 0
    free = (
        sa.select(Send.id)
        .where(
            Send.id.in_(list(send_ids)),
            Send.state == SendState.SENDING,
            Send.claimed_by == worker_id,
        )
        .with_for_update(skip_locked=True)
    )
    async with session_factory() as session, session.begin():
        result = await session.execute(
            sa.update(Send)
            .where(Send.id.in_(free.scalar_subquery()))
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
    count: int = getattr(result, "rowcount", 0)
    return count


async def confirm_claim(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    send_id: uuid.UUID,
    worker_id: str,
    attempt: int,
    lease_until: datetime,
) -> bool:
    """Whether `worker_id` still holds claim number `attempt` of the send (in `sending`, not
    taken over since, even by itself); its lease extended if so.

    Asked before calling OneSignal for a send whose claim waited: unlike `renew_leases` it
    waits for a row being written, since its answer decides whether OneSignal is called.
    """
    async with session_factory() as session, session.begin():
        result = await session.execute(
            sa.update(Send)
            .where(
                Send.id == send_id,
                Send.state == SendState.SENDING,
                Send.claimed_by == worker_id,
                Send.attempts == attempt,
            )
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
    return getattr(result, "rowcount", 0) == 1


@dataclass(frozen=True)
class Released:
    """What `release_claims` did: sends scheduled again, and sends left for a take-over."""

    rescheduled: list[uuid.UUID]
    handed_over: list[uuid.UUID]


async def release_claims(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    send_ids: Collection[uuid.UUID],
    untried: Collection[uuid.UUID],
    now: datetime,
) -> Released:
    """Hand back this worker's claims on sends it will not finish (it is shutting down).

    A send in `untried` (no OneSignal call of this claim started) on its first claim goes
    back to `scheduled` as before the claim, audited `send.released`: nothing of it can
    have reached OneSignal. Any other keeps its state, claim and key, with its lease ended
    at `now`, so the next worker takes it over at once (asking OneSignal with the same key)
    instead of when the lease would have run out. Sends no longer `sending` under this
    worker's claim are left alone.
    """
    if not send_ids:
        return Released([], [])
    ours = (Send.state == SendState.SENDING, Send.claimed_by == worker_id)
    back = await _reschedule(session_factory, worker_id, untried, ours) if untried else []
    left = set(send_ids).difference(back)
    handed: list[uuid.UUID] = []
    if left:
        async with session_factory() as session, session.begin():
            handed = list(
                await session.scalars(
                    sa.update(Send)
                    .where(Send.id.in_(list(left)), *ours)
                    .values(lease_until=now)
                    .returning(Send.id)
                    .execution_options(synchronize_session=False)
                )
            )
    return Released(back, handed)


async def _reschedule(
    session_factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    untried: Collection[uuid.UUID],
    ours: tuple[sa.ColumnElement[bool], ...],
) -> list[uuid.UUID]:
    """sending -> scheduled for the untried sends on their first claim, as before the claim."""
    released = await _bulk_transition(
        session_factory,
        conditions=[
            Send.id.in_(list(untried)),
            *ours,
            Send.attempts <= 1,
            Send.notification_id.is_(None),
        ],
        order_by=(Send.id,),
        limit=len(untried),
        from_state=SendState.SENDING,
        to_state=SendState.SCHEDULED,
        changes={
            "claimed_by": None,
            "claimed_at": None,
            "lease_until": None,
            "attempts": Send.attempts - 1,  # the claim made no attempt
        },
        actor=f"worker:{worker_id}",
        action="send.released",
    )
    return sorted(send.id for send in released)
