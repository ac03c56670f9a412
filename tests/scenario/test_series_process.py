"""A series across real processes: made by a signed `/push send --every` to `pushops serve`,
its first occurrence sent by that process, the next by a restarted `pushops serve` after the
first was killed, the third by a `pushops worker` taking over after that one was killed too.

Each occurrence goes out exactly once, under its own key derived from the series and the
occurrence time. Between processes the test brings the series' next occurrence to within a
few seconds (an hourly series would otherwise take hours): the database outlives the
processes, as it would.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import AuditEvent, Send, SendState, Series, utcnow
from storage.outbox import DEFAULT_OUTBOX_LEASE
from storage.series import occurrence_id
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.processes import Server, Worker, environment
from tests.scenario.sendkit import ALICE, dm_to, text_of

pytestmark = pytest.mark.slow


async def _series(database: Database) -> Series | None:
    async with database.sessions() as session:
        return (await session.scalars(sa.select(Series))).one_or_none()


async def _sent(database: Database) -> list[Send]:
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.series_id.is_not(None), Send.state == SendState.SENT)
        return list(await session.scalars(query.order_by(Send.occurrence_at)))


async def _wait(database: Database, count: int, process: Server | Worker) -> list[Send]:
    deadline = time.monotonic() + 30
    while len(sent := await _sent(database)) < count:
        process.check_alive()
        assert time.monotonic() < deadline, f"{len(sent)} occurrences sent, not {count}"
        await asyncio.sleep(0.1)
    return sent


async def _audited(database: Database) -> list[tuple[str, str]]:
    async with database.sessions() as session:
        query = sa.select(AuditEvent.action, AuditEvent.target).order_by(AuditEvent.seq)
        return [(row.action, row.target) for row in await session.execute(query)]


async def _next_in(database: Database, seconds: float) -> None:
    """Bring the series' next occurrence to `seconds` from now (no process runs)."""
    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(Series).values(next_at=utcnow() + timedelta(seconds=seconds))
        )


async def test_each_occurrence_goes_out_once_across_a_killed_serve_and_a_worker_take_over(
    database, storage_factory, secret_key, fake_onesignal, fake_slack, tmp_path
):
    await storage_factory.app(
        DEFAULT_TEAM_ID,
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret(fake_onesignal.app.rest_api_key),
        make_default=True,
    )
    env = environment(database, secret_key, fake_onesignal, tmp_path, grace=60, slack=fake_slack)
    log = tmp_path / "pushops.log"
    first = Server(env, log)
    async with httpx.AsyncClient() as client:
        await first.start()
        await first.up(client)
        url = await first.command_from(
            client,
            fake_slack,
            'send --every 1h --at "in 3s" --segment "Subscribed Users" "Water the plants"',
            user=ALICE,
        )
        reply = await fake_slack.wait_for_reply(url)
        assert "every 1h" in text_of(reply) and "Water the plants" in text_of(reply)
        await _wait(database, 1, first)
        await first.kill()

        await _next_in(database, 3)
        second = Server(env, log)
        await second.start()
        await _wait(database, 2, second)
        await second.kill()

    await _next_in(database, 3)
    worker = Worker(env, log)
    await worker.start()
    sent = await _wait(database, 3, worker)
    for send in sent:  # each told to its creator, whichever process sent it
        await fake_slack.wait_for(
            "chat.postMessage",
            # A message a killed process had taken is retaken once its lease is over.
            timeout=DEFAULT_OUTBOX_LEASE.total_seconds() + 15,
            where=lambda c, s=send: dm_to(ALICE)(c) and f"`{s.short_id}`" in text_of(c.args),
        )
    assert await worker.terminate() == 0

    series = await _series(database)
    assert series is not None and series.occurrences == 3
    keys = Counter(r.json["idempotency_key"] for r in fake_onesignal.requests_to("POST", "/n"))
    moments = [send.occurrence_at for send in sent if send.occurrence_at is not None]
    assert keys == Counter({str(occurrence_id(series.id, at)): 1 for at in moments})
    assert len(fake_onesignal.notifications) == 3
    audited = await _audited(database)
    for send in sent:  # made once and sent once, whichever process did it
        mine = [action for action, target in audited if send.short_id in target]
        assert mine.count("send.created") == 1 and mine.count("send.sent") == 1, mine
    assert "Traceback" not in log.read_text()
