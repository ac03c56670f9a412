"""Series: stored once, each occurrence made into a send once, whoever makes it and when."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from storage import series as storage_series
from storage.db import Database
from storage.models import (
    AuditEvent,
    OneSignalApp,
    Send,
    SendState,
    Series,
    SeriesApproval,
    SeriesState,
    utcnow,
)

HOUR = timedelta(hours=1)


def _hourly(series: Series, moment: datetime) -> datetime:
    return moment + HOUR


async def _series(
    database: Database,
    app: OneSignalApp,
    first_at: datetime,
    *,
    times: int | None = None,
    approvals: int = 0,
) -> Series:
    async with database.sessions.begin() as session:
        return await storage_series.create_series(
            session=session,
            team_id=app.team_id,
            requester_id="U0CREATOR",
            app=app,
            content={"message": "Standup"},
            audience={"segments": ["Staff"], "excluded_segments": [], "external_ids": []},
            rule={"every": "interval", "interval": 3600},
            timezone="Europe/Berlin",
            first_at=first_at,
            until=None,
            times=times,
            approvals_required=approvals,
        )


async def _materialise(database: Database, now: datetime, worker: str = "w1") -> list[Send]:
    return await storage_series.materialise_due(
        session_factory=database.sessions,
        now=now,
        lead=timedelta(minutes=1),
        next_after=_hourly,
        worker_id=worker,
    )


async def _occurrences(database: Database, series: Series) -> list[Send]:
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.series_id == series.id).order_by(Send.occurrence_at)
        return list(await session.scalars(query))


async def test_an_occurrence_is_made_shortly_before_it_is_due_with_a_derived_key(
    database, storage_factory
):
    app = await storage_factory.app()
    first = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
    series = await _series(database, app, first)

    assert await _materialise(database, first - timedelta(minutes=5)) == []
    made = await _materialise(database, first - timedelta(seconds=30))

    assert [send.due_at for send in made] == [first]
    (send,) = made
    assert send.id == storage_series.occurrence_id(series.id, first)
    assert send.state == SendState.SCHEDULED and send.requester_id == "U0CREATOR"
    assert send.content == {"message": "Standup"} and send.occurrence_at == first
    async with database.sessions() as session:
        stored = await storage_series.get_series(
            session=session, team_id=app.team_id, series_id=series.id
        )
        created = await session.scalar(
            sa.select(sa.func.count()).where(
                AuditEvent.action == "send.created", AuditEvent.target == f"send {send.short_id}"
            )
        )
    assert stored is not None and stored.next_at == first + HOUR and stored.occurrences == 1
    assert created == 1


async def test_four_processes_making_occurrences_at_once_make_each_once(database, storage_factory):
    app = await storage_factory.app()
    now = utcnow()
    every = [await _series(database, app, now + timedelta(seconds=10)) for _ in range(30)]
    processes = [database.another(pool_size=1, max_overflow=0) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(_materialise(process, now, f"w{n}") for n, process in enumerate(processes))
        )
        again = await _materialise(database, now)  # a restart: nothing more to make
    finally:
        for process in processes:
            await process.dispose()

    made = [send.id for sends in results for send in sends]
    assert again == []
    assert len(made) == 30 and len(set(made)) == 30
    per_series = Counter([(await _occurrences(database, s))[0].series_id for s in every])
    assert set(per_series.values()) == {1}


async def test_a_long_stop_makes_every_missed_occurrence_none_skipped(database, storage_factory):
    app = await storage_factory.app()
    first = utcnow() - timedelta(hours=5, minutes=30)
    await _series(database, app, first)

    made = await _materialise(database, utcnow())

    assert [send.due_at for send in made] == [first + n * HOUR for n in range(6)]
    assert len({send.id for send in made}) == 6


async def test_times_ends_the_series_after_its_last_occurrence(database, storage_factory):
    app = await storage_factory.app()
    first = utcnow() - timedelta(hours=3)
    series = await _series(database, app, first, times=2)

    made = await _materialise(database, utcnow())

    assert len(made) == 2
    async with database.sessions() as session:
        stored = await storage_series.get_series(
            session=session, team_id=app.team_id, series_id=series.id
        )
    assert stored is not None and stored.state == SeriesState.FINISHED and stored.next_at is None


async def test_a_series_waiting_for_approval_makes_nothing_until_approved(
    database, storage_factory
):
    app = await storage_factory.app()
    first = utcnow() + timedelta(seconds=10)
    series = await _series(database, app, first, approvals=1)
    assert series.approval == SeriesApproval.PENDING

    assert await _materialise(database, utcnow()) == []
    async with database.sessions.begin() as session:
        approved = await storage_series.record_series_decision(
            session=session,
            team_id=app.team_id,
            series_id=series.id,
            approver_id="U0BOSS",
            approve=True,
        )
    assert approved is not None and approved.approval == SeriesApproval.APPROVED
    (send,) = await _materialise(database, utcnow())
    assert send.approvals_received == 1 and send.approvals_required == 1


async def test_pausing_cancels_made_occurrences_and_resuming_goes_on_from_then(
    database, storage_factory
):
    app = await storage_factory.app()
    first = utcnow() + timedelta(seconds=10)
    series = await _series(database, app, first)
    (made,) = await _materialise(database, utcnow())

    async with database.sessions.begin() as session:
        paused = await storage_series.set_series_state(
            session=session,
            team_id=app.team_id,
            series_id=series.id,
            expected=[SeriesState.ACTIVE],
            new=SeriesState.PAUSED,
            actor="U0CREATOR",
        )
    assert paused is not None and [send.id for send in paused.cancelled] == [made.id]
    assert await _materialise(database, utcnow() + 2 * HOUR) == []
    later = utcnow() + 3 * HOUR
    async with database.sessions.begin() as session:
        again = await storage_series.set_series_state(
            session=session,
            team_id=app.team_id,
            series_id=series.id,
            expected=[SeriesState.PAUSED],
            new=SeriesState.ACTIVE,
            actor="U0CREATOR",
            next_at=later,
        )
        twice = await storage_series.set_series_state(
            session=session,
            team_id=app.team_id,
            series_id=series.id,
            expected=[SeriesState.PAUSED],
            new=SeriesState.ACTIVE,
            actor="U0CREATOR",
            next_at=later,
        )
    assert again is not None and again.series.next_at == later and twice is None
    (occurrences_after,) = await _materialise(database, later)
    assert occurrences_after.due_at == later
    states = [send.state for send in await _occurrences(database, series)]
    assert states == [SendState.CANCELLED, SendState.SCHEDULED]


async def test_another_workspace_cannot_see_or_stop_a_series(database, storage_factory):
    app = await storage_factory.app()
    other = await storage_factory.workspace("T0OTHER")
    series = await _series(database, app, utcnow() + HOUR)
    async with database.sessions.begin() as session:
        assert (
            await storage_series.find_series(
                session=session, team_id=other.team_id, ref=series.short_id
            )
            is None
        )
        stopped = await storage_series.set_series_state(
            session=session,
            team_id=other.team_id,
            series_id=series.id,
            expected=[SeriesState.ACTIVE],
            new=SeriesState.STOPPED,
            actor="U0X",
        )
    assert stopped is None
