"""A weekly series across a daylight-saving change, through the real door: each occurrence goes
out at 09:00 on the sender's wall clock before and after Berlin moves its clocks, under its own
derived key, in a body OneSignal's spec accepts; the cards, the rows and the audit say so.

The served app's clock is turned (the same clock for its door, series, scheduler and
deliverer): the series is made today, paused, and resumed on a day in March 2027, so the
service itself computes its next occurrence; each occurrence then goes out when the turned
clock reaches it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot import const
from storage.models import AuditEvent, Send, SendState, Series, SeriesState, utcnow
from storage.series import occurrence_id
from tests.fakes.onesignal.shapes import check_notification
from tests.onesignal.spec import check_request
from tests.scenario.sendkit import (
    ALICE,
    SEGMENT,
    click,
    creates,
    dm_to,
    serve_sending,
    settings,
    text_of,
)

BERLIN = ZoneInfo("Europe/Berlin")  # the fake Slack's users live there
# Berlin leaves winter time at 02:00 on Sunday 28 March 2027.
RESUMED_AT = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)  # a Saturday
EXPECTED = [  # (the occurrence in UTC, as the sender's wall clock shows it)
    (datetime(2027, 3, 22, 8, 0, tzinfo=UTC), "Mon 22 Mar 2027 09:00 CET"),
    (datetime(2027, 3, 29, 7, 0, tzinfo=UTC), "Mon 29 Mar 2027 09:00 CEST"),
    (datetime(2027, 4, 5, 7, 0, tzinfo=UTC), "Mon 05 Apr 2027 09:00 CEST"),
]


class TurnedClock:
    """The real clock, moved by an offset a test sets (it keeps ticking from there)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def turn_to(self, moment: datetime) -> None:
        self.offset = moment - utcnow()


@pytest.fixture
def clock() -> TurnedClock:
    return TurnedClock()


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path, clock):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring, clock=clock) as running:
        yield running


async def _series(database: Any) -> Series:
    async with database.sessions() as session:
        return (await session.scalars(sa.select(Series))).one()


async def _occurrences(database: Any) -> list[Send]:
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.series_id.is_not(None)).order_by(Send.occurrence_at)
        return list(await session.scalars(query))


async def _wait_sent(database: Any, count: int) -> list[Send]:
    deadline = time.monotonic() + 15
    while True:
        made = await _occurrences(database)
        if sum(s.state == SendState.SENT for s in made) >= count:
            return made
        assert time.monotonic() < deadline, [(s.short_id, s.state) for s in made]
        await asyncio.sleep(0.05)


async def _audit(database: Any) -> list[tuple[str, str]]:
    """(action, target) of every audit event, oldest first."""
    async with database.sessions() as session:
        query = sa.select(AuditEvent.action, AuditEvent.target)
        query = query.order_by(AuditEvent.created_at, AuditEvent.seq)
        return [(row.action, row.target) for row in await session.execute(query)]


def _wall(moment: datetime) -> str:
    return moment.astimezone(BERLIN).strftime("%a %d %b %Y %H:%M %Z")


async def test_a_weekly_series_goes_out_at_09_00_wall_clock_before_and_after_the_change(
    app, fake_slack, fake_onesignal, database, clock
):
    made = await app.post_command(
        f'send --every monday --at 09:00 --segment "{SEGMENT}" --title Stand-up "Join in"'
    )
    assert "every Monday at 09:00 (Europe/Berlin)" in text_of(await made.reply())
    series = await _series(database)
    await app.fake.wait_for_reply(await click(app, const.ACTION_SERIES_PAUSE, str(series.id)))

    clock.turn_to(RESUMED_AT)
    resumed = await click(app, const.ACTION_SERIES_RESUME, str(series.id))

    assert f"Series `{series.short_id}` resumed" in (await app.fake.wait_for_reply(resumed))["text"]
    listed = text_of(await (await app.post_command("series")).reply())
    assert "Mon 22 Mar 2027, 09:00 CET (08:00 UTC)" in listed, listed
    for count, (moment, _) in enumerate(EXPECTED, start=1):
        clock.turn_to(moment + timedelta(seconds=1))  # the sweep finds it due, within grace
        sent = await _wait_sent(database, count)
        await fake_slack.wait_for(
            "chat.postMessage",
            where=lambda c, s=sent[-1]: dm_to(ALICE)(c) and f"`{s.short_id}`" in text_of(c.args),
        )

    assert [_wall(s.occurrence_at) for s in sent if s.occurrence_at] == [w for _, w in EXPECTED]
    assert [s.due_at for s in sent] == [m for m, _ in EXPECTED]
    assert [s.id for s in sent] == [occurrence_id(series.id, m) for m, _ in EXPECTED]
    requests = creates(fake_onesignal)
    for request in requests:
        check_request("create_notification", request)
        check_notification(request.json)
    assert [r.json["idempotency_key"] for r in requests] == [str(s.id) for s in sent]
    assert {(r.json["contents"]["en"], r.json["headings"]["en"]) for r in requests} == {
        ("Join in", "Stand-up")
    }
    assert all("send_after" not in r.json for r in requests)  # each went when it was due
    listed = text_of(await (await app.post_command("series")).reply())
    assert "Mon 12 Apr 2027, 09:00 CEST (07:00 UTC)" in listed, listed
    stored = await _series(database)
    assert stored.state == SeriesState.ACTIVE and stored.occurrences == 3
    events = await _audit(database)
    assert [a for a, _ in events if a.startswith("series.")] == [
        "series.created",
        "series.paused",
        "series.active",
    ]
    for send in sent:
        mine = [a for a, target in events if send.short_id in target]
        assert mine[0] == "send.created" and mine[-1] == "send.sent", mine
