"""A series under the scheduler: each occurrence made and sent once, with its own derived key,
by two replicas at once and across a restart; none skipped, a late one missed and told."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.delivery import Audience, Deliverer, SendContent
from bot.onesignal_clients import OneSignalClients
from bot.recurrence import Recurrence, Rule, parse_every
from bot.scheduling import Scheduler
from bot.series import SeriesService
from bot.settings import Settings
from bot.timers import Timers
from storage.models import Send, SendState, Series, utcnow
from storage.series import occurrence_id
from tests.bot.deliverykit import SEGMENT, kit, seeded_app
from tests.plugins.database import DEFAULT_TEAM


@pytest.fixture
async def app(storage_factory, fake_onesignal):
    return await seeded_app(storage_factory, fake_onesignal)


def _every(seconds: int, *, first_in: float, times: int) -> Recurrence:
    # Shorter than the grammar allows (1 h), so a test sees several occurrences in seconds.
    first = utcnow() + timedelta(seconds=first_in)
    rule = Rule(every="interval", zone="Europe/Berlin", start=first, interval=seconds)
    return Recurrence(rule=rule, first=first, times=times)


async def _series(database, recurrence: Recurrence) -> Series:
    return await SeriesService(database=database).create(
        team_id=DEFAULT_TEAM,
        requester_id="U0ALICE",
        app_name="main",
        content=SendContent(message="Stand-up in 5"),
        audience=Audience(segments=(SEGMENT,)),
        recurrence=recurrence,
    )


async def _occurrences(database, series: Series) -> list[Send]:
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.series_id == series.id).order_by(Send.occurrence_at)
        return list(await session.scalars(query))


async def _wait_sent(database, series: Series, count: int, seconds: float = 20.0) -> list[Send]:
    deadline = time.monotonic() + seconds
    while True:
        sends = await _occurrences(database, series)
        if sum(send.state == SendState.SENT for send in sends) >= count:
            return sends
        if time.monotonic() > deadline:
            raise AssertionError([(send.short_id, send.state) for send in sends])
        await asyncio.sleep(0.1)


async def test_two_replicas_and_a_restart_send_each_occurrence_once_with_its_own_key(
    database, keyring, fake_onesignal, app
):
    series = await _series(database, _every(2, first_in=1.0, times=3))
    replica = database.another()
    try:
        async with (
            kit(database, keyring, fake_onesignal, app, worker_id="one") as one,
            kit(replica, keyring, fake_onesignal, app, worker_id="two") as two,
        ):
            await one.start()
            await two.start()
            await _wait_sent(database, series, 1)
            await one.scheduler.stop()  # a restart of one replica mid-series
            await one.deliverer.aclose()
            async with kit(database, keyring, fake_onesignal, app, worker_id="three") as three:
                await three.start()
                sends = await _wait_sent(database, series, 3)
                posted = one.posted()
    finally:
        await replica.dispose()

    keys = Counter(request.json["idempotency_key"] for request in posted)
    moments = [send.occurrence_at for send in sends if send.occurrence_at is not None]
    assert len(sends) == 3 and len(moments) == 3
    assert [send.id for send in sends] == [occurrence_id(series.id, at) for at in moments]
    assert set(keys) == {str(send.id) for send in sends} and set(keys.values()) == {1}
    gaps = [b - a for a, b in zip(moments, moments[1:], strict=False)]
    assert gaps == [timedelta(seconds=2)] * 2
    assert len(fake_onesignal.notifications) == 3


async def test_an_occurrence_found_later_than_the_grace_is_missed_and_told_not_sent(
    database, keyring, fake_onesignal, app
):
    series = await _series(database, _every(3600, first_in=-120, times=1))

    async with kit(database, keyring, fake_onesignal, app, misfire_grace=60) as ready:
        await ready.start()
        deadline = time.monotonic() + 10
        while not ready.notifier.of("send_missed"):
            assert time.monotonic() < deadline, "the missed occurrence was not told"
            await asyncio.sleep(0.05)

    (send,) = await _occurrences(database, series)
    assert send.state == SendState.MISSED
    assert ready.posted() == []


async def test_a_weekly_series_keeps_its_wall_clock_time_across_the_clock_change(
    database, storage_factory, keyring
):
    # Berlin leaves winter time on Sunday 28 March 2027; the sweep runs on a clock the test turns.
    await storage_factory.app(name="main")
    start = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
    recurrence = parse_every("monday", at="09:00", tz="Europe/Berlin", now=start)
    series = await _series(database, recurrence)
    clock = [start]
    settings = Settings(_env_file=None)
    deliverer = Deliverer(  # it never delivers: the test only sweeps
        database=database,
        keyring=keyring,
        clients=OneSignalClients(http=None, base_url=settings.onesignal_api_url),
        settings=settings,
        timers=Timers(),
    )
    scheduler = Scheduler(
        database=database, deliverer=deliverer, settings=settings, clock=lambda: clock[0]
    )
    made_per_sweep = []
    for moment in recurrence.upcoming(3):
        clock[0] = moment - timedelta(seconds=30)  # half a minute before it is due
        await scheduler.sweep()
        made_per_sweep.append(len(await _occurrences(database, series)))

    sends = await _occurrences(database, series)
    berlin = ZoneInfo("Europe/Berlin")
    walls = [s.due_at.astimezone(berlin).strftime("%a %d %b %H:%M %Z") for s in sends if s.due_at]
    assert walls == ["Mon 22 Mar 09:00 CET", "Mon 29 Mar 09:00 CEST", "Mon 05 Apr 09:00 CEST"]
    assert [s.due_at.hour for s in sends if s.due_at] == [8, 7, 7]  # UTC moves with the clocks
    assert made_per_sweep == [1, 2, 3]  # each made shortly before it is due, not before
    assert len({s.id for s in sends}) == 3
