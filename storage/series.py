"""Recurring sends: a series stored once, and its occurrences made into sends when due.

A series is one row of `series` (its rule, content, audience, creator, state and approval).
`materialise_due` turns each occurrence into an ordinary `sends` row shortly before it is
due, in the style of `storage.claims`: several processes run it at once, the series rows
are locked `FOR UPDATE SKIP LOCKED` on PostgreSQL (the transaction holds the write lock on
SQLite), and the occurrence's send id is UUIDv5 of the series id and the occurrence time,
unique with (series_id, occurrence_at). So a restart, a second replica or a crash between
two steps never makes an occurrence twice, and `next_at` moves past an occurrence only in
the transaction that made it, so none is skipped: one made late is `missed` by the usual
sweep, and told. Storage knows no rule: the caller passes `next_after`.

Same conventions as `storage.queries`; functions taking a `session_factory` open their own
transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import make_transient_to_detached

from storage import ids, queries
from storage.audit import AuditEntry, append_audit, append_audit_by_team
from storage.errors import AppNotFound, ShortIdExhausted
from storage.models import (
    OneSignalApp,
    Send,
    SendState,
    Series,
    SeriesApproval,
    SeriesState,
    utcnow,
)

__all__ = [
    "NextAfter",
    "SeriesChange",
    "cancel_occurrences",
    "create_series",
    "edit_series",
    "find_series",
    "get_series",
    "list_series",
    "materialise_due",
    "occurrence_id",
    "record_series_decision",
    "set_series_state",
]

NextAfter = Callable[[Series, datetime], datetime]
"""The series' first occurrence strictly after a moment (its rule's arithmetic)."""

_SHORT_ID_ATTEMPTS: Final = 8
_OCCURRENCES: Final = uuid.UUID("5d0c3c8e-6f43-4b55-9a0e-2f0f4a7c1e21")
"""The UUIDv5 namespace of occurrence ids (fixed forever: ids made before must match)."""
MATERIALISABLE: Final = (SeriesApproval.NOT_NEEDED, SeriesApproval.APPROVED)


def occurrence_id(series_id: uuid.UUID, at: datetime) -> uuid.UUID:
    """The send id (and so OneSignal's idempotency key) of the series' occurrence at `at`."""
    return uuid.uuid5(_OCCURRENCES, f"{series_id}/{int(at.timestamp() * 1_000_000)}")


async def create_series(
    *,
    session: AsyncSession,
    team_id: str,
    requester_id: str,
    app: OneSignalApp,
    content: Mapping[str, Any],
    audience: Mapping[str, Any],
    rule: Mapping[str, Any],
    timezone: str,
    first_at: datetime,
    until: datetime | None,
    times: int | None,
    approvals_required: int,
    is_test: bool = False,
    options: Mapping[str, Any] | None = None,
    submission: str | None = None,
    new_short_id: Callable[[], str] = ids.new_short_id,
) -> Series:
    """Store a series (active; pending approval when it needs any); audited `series.created`.

    `submission` names the compose form it came from: a repeat of the form, in whichever
    process it arrives, gets the series stored first, marked `replayed`, and stores nothing.
    """
    if app.team_id != team_id:
        raise AppNotFound(team_id, app.name)
    if submission is not None:
        stored = await _submitted_series(session, team_id, submission)
        if stored is not None:
            return stored
    series = Series(
        team_id=team_id,
        app_ref=app.id,
        app_name=app.name,
        requester_id=requester_id,
        content=dict(content),
        audience=dict(audience),
        is_test=is_test,
        options=dict(options or {}),
        rule=dict(rule),
        timezone=timezone,
        until=until,
        times=times,
        occurrences=0,
        next_at=first_at,
        state=SeriesState.ACTIVE,
        approval=SeriesApproval.PENDING if approvals_required else SeriesApproval.NOT_NEEDED,
        approvals_required=approvals_required,
        approvals_received=0,
        slack_messages={},
        submission=submission,
    )
    series.short_id = await _free_short_id(session, team_id, new_short_id)
    if not await _added(session, series):  # the same form, stored meanwhile by another process
        stored = await _submitted_series(session, team_id, submission or "")
        if stored is None:
            raise ShortIdExhausted("The series could not be stored; try again.")
        return stored
    await append_audit(
        session=session,
        team_id=team_id,
        actor=requester_id,
        action="series.created",
        target=f"series {series.short_id}",
        details=_summary(series),
    )
    return series


async def _added(session: AsyncSession, series: Series) -> bool:
    """Insert `series`; False when its submission is stored already (nothing inserted).

    On PostgreSQL a concurrent transaction may store the same form between our read and
    this insert: the unique (team, submission) index refuses ours, in a savepoint so the
    caller's transaction goes on. On SQLite the caller's write transaction holds the only
    write lock, so the read before this settled it.
    """
    if session.get_bind().dialect.name == "sqlite" or series.submission is None:
        session.add(series)
        await session.flush()
        return True
    try:
        async with session.begin_nested():
            session.add(series)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def _submitted_series(session: AsyncSession, team_id: str, submission: str) -> Series | None:
    """The series `submission` stored in the workspace, marked `replayed`; None if none yet."""
    query = sa.select(Series).where(Series.team_id == team_id, Series.submission == submission)
    stored = (await session.scalars(query)).one_or_none()
    if stored is not None:
        stored.replayed = True
    return stored


async def _free_short_id(
    session: AsyncSession, team_id: str, new_short_id: Callable[[], str]
) -> str:
    for _ in range(_SHORT_ID_ATTEMPTS):
        candidate = new_short_id()
        taken = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Series)
            .where(Series.team_id == team_id, Series.short_id == candidate)
        )
        if not taken:
            return candidate
    raise ShortIdExhausted("No free short id was found for this series; try again.")


def _summary(series: Series) -> dict[str, Any]:
    return {
        "series_id": str(series.id),
        "app": series.app_name,
        "rule": series.rule,
        "next_at": series.next_at.isoformat() if series.next_at else None,
        "until": series.until.isoformat() if series.until else None,
        "times": series.times,
        "approval": series.approval.value,
        "segments": series.audience.get("segments", []),
        "external_ids": len(series.audience.get("external_ids", []) or []),
    }


async def get_series(*, session: AsyncSession, team_id: str, series_id: uuid.UUID) -> Series | None:
    """The series `series_id`, only if it belongs to the workspace."""
    query = sa.select(Series).where(Series.id == series_id, Series.team_id == team_id)
    return (await session.scalars(query)).one_or_none()


async def find_series(*, session: AsyncSession, team_id: str, ref: str) -> Series | None:
    """The series a short id (as typed) names in the workspace."""
    short_id = ids.normalize_short_id(ref)
    if short_id is None:
        return None
    query = sa.select(Series).where(Series.team_id == team_id, Series.short_id == short_id)
    return (await session.scalars(query)).one_or_none()


async def list_series(
    *, session: AsyncSession, team_id: str, ended: bool = False, limit: int = 20
) -> list[Series]:
    """The workspace's series, the next due first; stopped and finished ones only if `ended`."""
    query = sa.select(Series).where(Series.team_id == team_id)
    if not ended:
        query = query.where(Series.state.in_([SeriesState.ACTIVE, SeriesState.PAUSED]))
    order = (Series.next_at.is_(None), Series.next_at, Series.created_at, Series.id)
    return list(await session.scalars(query.order_by(*order).limit(limit)))


@dataclass(frozen=True)
class SeriesChange:
    """A series after a pause, resume or stop, and the occurrences that change cancelled."""

    series: Series
    cancelled: list[Send]


async def set_series_state(
    *,
    session: AsyncSession,
    team_id: str,
    series_id: uuid.UUID,
    expected: Collection[SeriesState],
    new: SeriesState,
    actor: str,
    next_at: datetime | None = None,
) -> SeriesChange | None:
    """Move a series from one of `expected` to `new` by compare-and-set; None if it was not
    there (another click won, or another workspace's). `next_at` is where a resumed series
    goes on. Pausing or stopping cancels the occurrences made already and not yet claimed.
    Audited `series.<new>`."""
    values: dict[str, Any] = {"state": new, "updated_at": utcnow()}
    if new == SeriesState.ACTIVE:
        values["next_at"] = next_at
    elif new == SeriesState.STOPPED:
        values["next_at"] = None
    result = await session.execute(
        sa.update(Series)
        .where(
            Series.id == series_id,
            Series.team_id == team_id,
            Series.state.in_(list(expected)),
        )
        .values(**values)
        .returning(Series)
        .execution_options(synchronize_session=False)
    )
    series = result.scalars().one_or_none()
    if series is None:
        return None
    cancelled: list[Send] = []
    if new != SeriesState.ACTIVE:
        cancelled = await cancel_occurrences(
            session=session, team_id=team_id, series_id=series_id, actor=actor
        )
    await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action=f"series.{new.value}",
        target=f"series {series.short_id}",
        details={
            "series_id": str(series_id),
            "to": new.value,
            "next_at": series.next_at.isoformat() if series.next_at else None,
            "cancelled": [send.short_id for send in cancelled],
        },
    )
    return SeriesChange(series, cancelled)


async def cancel_occurrences(
    *, session: AsyncSession, team_id: str, series_id: uuid.UUID, actor: str
) -> list[Send]:
    """Cancel the series' occurrences made and not yet claimed (scheduled or awaiting
    approval), each by compare-and-set and audited; the sends cancelled."""
    query = sa.select(Send.id).where(
        Send.team_id == team_id,
        Send.series_id == series_id,
        Send.state.in_([SendState.SCHEDULED, SendState.PENDING_APPROVAL]),
    )
    cancelled: list[Send] = []
    for send_id in list(await session.scalars(query)):
        if await queries.cancel_send(
            session=session, team_id=team_id, send_id=send_id, actor=actor, reason="series"
        ):
            send = await queries.get_send(session=session, team_id=team_id, send_id=send_id)
            if send is not None:
                cancelled.append(send)
    return cancelled


async def record_series_decision(
    *,
    session: AsyncSession,
    team_id: str,
    series_id: uuid.UUID,
    approver_id: str,
    approve: bool,
) -> Series | None:
    """An approver's answer to a series waiting for approval; None when it no longer waits
    (decided meanwhile, or edited). Approving counts one approval, and the series is approved
    once it has as many as it needs; rejecting stops it. Audited `series.approved` /
    `series.rejected` (or `series.approval` for an approval that is not yet the last)."""
    series = (
        await session.scalars(
            sa.select(Series)
            .where(
                Series.id == series_id,
                Series.team_id == team_id,
                Series.approval == SeriesApproval.PENDING,
                Series.state == SeriesState.ACTIVE,
            )
            .with_for_update()
        )
    ).one_or_none()
    if series is None:
        return None
    if approve:
        series.approvals_received += 1
        if series.approvals_received >= series.approvals_required:
            series.approval = SeriesApproval.APPROVED
        action = (
            "series.approved" if series.approval == SeriesApproval.APPROVED else "series.approval"
        )
    else:
        series.approval = SeriesApproval.REJECTED
        series.state = SeriesState.STOPPED
        series.next_at = None
        action = "series.rejected"
    series.updated_at = utcnow()
    await session.flush()
    await append_audit(
        session=session,
        team_id=team_id,
        actor=approver_id,
        action=action,
        target=f"series {series.short_id}",
        details={
            "series_id": str(series.id),
            "approvals": f"{series.approvals_received}/{series.approvals_required}",
        },
    )
    return series


async def edit_series(
    *,
    session: AsyncSession,
    team_id: str,
    series_id: uuid.UUID,
    content: Mapping[str, Any],
    actor: str,
    approvals_required: int,
) -> Series | None:
    """New content for an active or paused series; None if it is stopped, finished or not
    this workspace's. The occurrences made from now on carry it (one made already keeps
    what it was made with). When the policy asks for approvals the series waits for them
    again, approvals it had not counting. Audited `series.edited`."""
    series = (
        await session.scalars(
            sa.select(Series)
            .where(
                Series.id == series_id,
                Series.team_id == team_id,
                Series.state.in_([SeriesState.ACTIVE, SeriesState.PAUSED]),
            )
            .with_for_update()
        )
    ).one_or_none()
    if series is None:
        return None
    series.content = dict(content)
    series.approvals_required = approvals_required
    series.approvals_received = 0
    series.approval = SeriesApproval.PENDING if approvals_required else SeriesApproval.NOT_NEEDED
    series.updated_at = utcnow()
    await session.flush()
    await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action="series.edited",
        target=f"series {series.short_id}",
        details={"series_id": str(series.id), "approval": series.approval.value},
    )
    return series


# --- making occurrences -------------------------------------------------------------------


async def materialise_due(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    lead: timedelta,
    next_after: NextAfter,
    worker_id: str,
    limit: int = 200,
    per_series: int = 100,
) -> list[Send]:
    """Make the occurrences of active, approved series due by `now + lead` into sends.

    Each is a `scheduled` send due at its occurrence time (one already later than the grace
    is marked missed by the usual sweep, and told), carrying the series' content, audience,
    creator and approvals, audited `send.created` by this worker. At most `limit` series per
    call, `per_series` occurrences each (a long-stopped process catching up goes on at the
    next call). The sends made, for the scheduler's timers.
    """
    horizon = now + lead
    async with session_factory() as session, session.begin():
        chosen = (
            sa.select(Series)
            .where(
                Series.state == SeriesState.ACTIVE,
                Series.approval.in_(MATERIALISABLE),
                Series.next_at <= horizon,
            )
            .order_by(Series.next_at, Series.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        made: list[Send] = []
        entries: dict[str, list[AuditEntry]] = {}
        for series in list(await session.scalars(chosen)):
            for send in await _occurrences(session, series, horizon, next_after, per_series):
                made.append(send)
                entries.setdefault(series.team_id, []).append(_created(send, worker_id))
        await append_audit_by_team(session=session, entries=entries)
    return made


async def _occurrences(
    session: AsyncSession,
    series: Series,
    horizon: datetime,
    next_after: NextAfter,
    most: int,
) -> list[Send]:
    """Make the series' occurrences due by `horizon` (at most `most`), moving `next_at` on."""
    made: list[Send] = []
    while series.next_at is not None and series.next_at <= horizon and len(made) < most:
        at = series.next_at
        send = await _insert_occurrence(session, series, at)
        if send is not None:
            made.append(send)
        series.occurrences += 1
        following = next_after(series, at)
        ended = (series.times is not None and series.occurrences >= series.times) or (
            series.until is not None and following > series.until
        )
        series.next_at = None if ended else following
        if ended:
            series.state = SeriesState.FINISHED
        series.updated_at = utcnow()
    await session.flush()
    return made


async def _insert_occurrence(session: AsyncSession, series: Series, at: datetime) -> Send | None:
    """The occurrence's send row; None when it exists already (made before: never twice)."""
    send_id = occurrence_id(series.id, at)
    exists = await session.scalar(sa.select(sa.func.count()).where(Send.id == send_id))
    if exists:
        return None
    now = utcnow()
    row = queries.new_send_row(now) | {
        "id": send_id,
        "team_id": series.team_id,
        "app_ref": series.app_ref,
        "app_name": series.app_name,
        "requester_id": series.requester_id,
        "content": dict(series.content),
        "audience": dict(series.audience),
        "is_test": series.is_test,
        "options": dict(series.options),
        "state": SendState.SCHEDULED,
        "due_at": at,
        "timezone": series.timezone,
        "approvals_required": series.approvals_required,
        "approvals_received": series.approvals_received,
        "series_id": series.id,
        "occurrence_at": at,
    }
    for _ in range(_SHORT_ID_ATTEMPTS):
        row["short_id"] = ids.new_short_id()
        if await queries.insert_send_row(session, row):
            send = Send(**row)
            make_transient_to_detached(send)
            session.add(send)
            return send
    raise ShortIdExhausted("No free short id was found for an occurrence; the next sweep tries.")


def _created(send: Send, worker_id: str) -> AuditEntry:
    details = queries.send_summary(send) | {
        "series_id": str(send.series_id),
        "occurrence_at": send.occurrence_at.isoformat() if send.occurrence_at else None,
    }
    return AuditEntry(f"worker:{worker_id}", "send.created", f"send {send.short_id}", "ok", details)
