"""The series service: recurring sends stored once, listed, paused, resumed, stopped, approved.

A series' occurrences are made into ordinary sends by the scheduler's sweep
(`storage.series.materialise_due`, shortly before each is due); from then on each is a send
like any other: delivered once under its own derived idempotency key, told, cancelled on its
own with `/push cancel`. This service is what the Slack surface asks; it builds no Block Kit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery import Audience, SendContent, SendRejected
from bot.delivery.options import DeliveryOptions
from bot.delivery.outcomes import store_errors
from bot.recurrence import Recurrence, Rule
from storage import series as stored
from storage import workspaces
from storage.db import Database
from storage.models import OneSignalApp, Send, Series, SeriesApproval, SeriesState, utcnow

__all__ = [
    "Series",
    "SeriesApproval",
    "SeriesChange",
    "SeriesService",
    "SeriesState",
    "upcoming",
]

SeriesChange = stored.SeriesChange


@dataclass(frozen=True)
class _Move:
    expected: tuple[SeriesState, ...]
    new: SeriesState


_PAUSE = _Move((SeriesState.ACTIVE,), SeriesState.PAUSED)
_RESUME = _Move((SeriesState.PAUSED,), SeriesState.ACTIVE)
_STOP = _Move((SeriesState.ACTIVE, SeriesState.PAUSED), SeriesState.STOPPED)


def upcoming(series: Series, count: int) -> list[datetime]:
    """The series' next `count` occurrences not made yet (fewer when it ends first)."""
    if series.next_at is None or series.state != SeriesState.ACTIVE:
        return []
    recurrence = Recurrence(
        rule=Rule.from_json(series.rule),
        first=series.next_at,
        until=series.until,
        times=None if series.times is None else series.times - series.occurrences,
    )
    return recurrence.upcoming(count)


def describe(series: Series) -> str:
    """The series' rule and end in words (`every Monday at 09:00 (Europe/Berlin), 4 times`)."""
    recurrence = Recurrence(
        rule=Rule.from_json(series.rule),
        first=series.next_at or series.created_at,
        until=series.until,
        times=series.times,
    )
    return recurrence.describe()


class SeriesService:
    """Stores series and changes their state; the scheduler makes their occurrences.

    Args:
        database: where the series are.
        wake: asks the scheduler to sweep soon (a new or resumed series may be due before
            the next periodic sweep).
        clock: the current time (UTC).
    """

    def __init__(
        self,
        *,
        database: Database,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.wake = wake
        self.clock = clock

    async def create(
        self,
        *,
        team_id: str,
        requester_id: str,
        app_name: str | None,
        content: SendContent,
        audience: Audience,
        recurrence: Recurrence,
        approvals_required: int = 0,
        is_test: bool = False,
        options: DeliveryOptions | None = None,
        submission: str | None = None,
    ) -> Series:
        """Store a series (audited); its first occurrence is made by the next sweep.

        `submission` (a compose form's submission key) stores one series per form in any
        process: a repeat gets the series stored first, marked `replayed`, to answer with.
        Raises `SendRejected` for an unknown app, as a single send would, and `StoreRefused`
        or `StoreInterrupted` when the database failed (see `store_errors`).
        """
        with store_errors("series") as storing:
            async with self.database.sessions.begin() as session:
                app = await _app(session, team_id, app_name)
                series = await stored.create_series(
                    session=session,
                    team_id=team_id,
                    requester_id=requester_id,
                    app=app,
                    content=content.model_dump(exclude_none=True),
                    audience=audience.model_dump(mode="json"),
                    rule=recurrence.rule.to_json(),
                    timezone=recurrence.rule.zone,
                    first_at=recurrence.first,
                    until=recurrence.until,
                    times=recurrence.times,
                    approvals_required=approvals_required,
                    is_test=is_test,
                    options=options.stored() if options is not None else None,
                    submission=submission,
                )
                storing.committing = True
        self.wake()
        return series

    async def list(self, *, team_id: str, ended: bool = False, limit: int = 20) -> list[Series]:
        """The workspace's series, the next due first (stopped and finished ones if `ended`)."""
        async with self.database.sessions() as session:
            return await stored.list_series(
                session=session, team_id=team_id, ended=ended, limit=limit
            )

    async def get(self, *, team_id: str, series_id: uuid.UUID) -> Series | None:
        """The workspace's series `series_id`, or None."""
        async with self.database.sessions() as session:
            return await stored.get_series(session=session, team_id=team_id, series_id=series_id)

    async def of_send(self, send: Send) -> Series | None:
        """The series `send` is an occurrence of, or None."""
        if send.series_id is None:
            return None
        return await self.get(team_id=send.team_id, series_id=send.series_id)

    async def pause(self, *, team_id: str, series_id: uuid.UUID, actor: str) -> SeriesChange | None:
        """Pause an active series (occurrences made already are cancelled); None if it was
        not active."""
        return await self._move(team_id, series_id, actor, _PAUSE)

    async def resume(
        self, *, team_id: str, series_id: uuid.UUID, actor: str
    ) -> SeriesChange | None:
        """Resume a paused series from its next occurrence after now; None if not paused."""
        return await self._move(team_id, series_id, actor, _RESUME)

    async def stop(self, *, team_id: str, series_id: uuid.UUID, actor: str) -> SeriesChange | None:
        """Stop a series for good (occurrences made already are cancelled); None if it was
        stopped or finished already."""
        return await self._move(team_id, series_id, actor, _STOP)

    async def _move(
        self, team_id: str, series_id: uuid.UUID, actor: str, move: _Move
    ) -> SeriesChange | None:
        async with self.database.sessions.begin() as session:
            next_at = None
            if move.new == SeriesState.ACTIVE:
                current = await stored.get_series(
                    session=session, team_id=team_id, series_id=series_id
                )
                if current is None:
                    return None
                next_at = Rule.from_json(current.rule).first_from(self.clock())
            change = await stored.set_series_state(
                session=session,
                team_id=team_id,
                series_id=series_id,
                expected=move.expected,
                new=move.new,
                actor=actor,
                next_at=next_at,
            )
        if change is not None and move.new == SeriesState.ACTIVE:
            self.wake()
        return change

    async def find(self, *, team_id: str, ref: str) -> Series | None:
        """The workspace's series a short id (as typed) names, or None."""
        async with self.database.sessions() as session:
            return await stored.find_series(session=session, team_id=team_id, ref=ref)

    async def edit(
        self,
        *,
        team_id: str,
        series_id: uuid.UUID,
        content: SendContent,
        actor: str,
        approvals_required: int,
    ) -> Series | None:
        """New content for the series (from its next occurrence on); it asks for approval
        again when `approvals_required`. None if it is stopped or finished."""
        async with self.database.sessions.begin() as session:
            return await stored.edit_series(
                session=session,
                team_id=team_id,
                series_id=series_id,
                content=content.model_dump(exclude_none=True),
                actor=actor,
                approvals_required=approvals_required,
            )

    async def decide(
        self, *, team_id: str, series_id: uuid.UUID, approver_id: str, approve: bool
    ) -> Series | None:
        """An approver's answer; None when the series no longer waits for one."""
        async with self.database.sessions.begin() as session:
            series = await stored.record_series_decision(
                session=session,
                team_id=team_id,
                series_id=series_id,
                approver_id=approver_id,
                approve=approve,
            )
        if series is not None and series.approval == SeriesApproval.APPROVED:
            self.wake()
        return series


async def _app(session: AsyncSession, team_id: str, app_name: str | None) -> OneSignalApp:
    app = await workspaces.get_app(session=session, team_id=team_id, name=app_name)
    if app is not None:
        return app
    what = "This workspace has no default app" if app_name is None else f"No app {app_name!r}"
    raise SendRejected("app", f"{what}.")
