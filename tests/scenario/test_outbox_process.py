"""A process that dies while it owes Slack messages loses none of them: the next process takes
them over once their lease ends and delivers each once. Real processes (slow by nature: each
starts a Python interpreter) against the fake Slack, the fake OneSignal and the test's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import OutboxMessage, OutboxState, Send, SendState, utcnow
from storage.outbox import COUNTERS, NOTICE
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.outbox_holder import OutboxHolder
from tests.scenario.processes import Worker, environment
from tests.scenario.sendkit import LOG_CHANNEL, SEGMENT, dm_to, set_log_channel

pytestmark = pytest.mark.slow

REQUESTERS = ("U0ALICE", "U0CAROL", "U0DAVE")


@contextlib.asynccontextmanager
async def _black_hole() -> AsyncIterator[tuple[str, list[int]]]:
    """A Slack Web API that takes every request and never answers: the URL, and how many
    connections it took."""
    taken: list[int] = []
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(1)
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/", taken
    finally:
        for writer in held:
            writer.close()
        server.close()


async def _outbox(database: Database) -> list[OutboxMessage]:
    """The messages owed (not the notices of the ends, which their notifier settled, nor the
    final counters owed an hour later)."""
    async with database.sessions() as session:
        query = sa.select(OutboxMessage).where(OutboxMessage.purpose.not_in([NOTICE, COUNTERS]))
        return list(await session.scalars(query))


async def _until(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_messages_owed_by_a_killed_process_are_delivered_once_by_the_next(
    database, storage_factory, secret_key, fake_slack, fake_onesignal, tmp_path
):
    for user in REQUESTERS[1:]:
        fake_slack.add_user(user)
    app = await storage_factory.app(
        DEFAULT_TEAM_ID,
        "default",
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret(fake_onesignal.app.rest_api_key),
        make_default=True,
    )
    await set_log_channel(database)
    env = environment(database, secret_key, fake_onesignal, tmp_path, slack=fake_slack)
    async with _black_hole() as (nowhere, taken):
        holder = OutboxHolder({**env, "SLACK_API_URL": nowhere}, tmp_path / "holder.log")
        await holder.start()
        await holder.armed(seconds=60)  # a busy machine starts Python slowly
        sends = [
            await storage_factory.send(
                app,
                due_at=utcnow() + timedelta(seconds=1),
                requester_id=user,
                content={"message": f"Hello from {user}"},
                audience={"segments": [SEGMENT]},
            )
            for user in REQUESTERS
        ]

        async def owed_and_held() -> bool:
            rows = await _outbox(database)
            return (
                len(rows) == 2 * len(sends) and any(row.leased_by for row in rows) and bool(taken)
            )

        await _until("the holder to owe and hold the messages", owed_and_held)
        await holder.kill()
    rows = await _outbox(database)
    assert {row.state for row in rows} == {OutboxState.PENDING}
    assert fake_slack.calls_to("chat.postMessage") == []  # the holder told nobody

    worker = Worker(env, tmp_path / "worker.log")
    await worker.start()
    try:

        async def all_done() -> bool:
            return all(row.state == OutboxState.DONE for row in await _outbox(database))

        await _until("the worker to deliver every message", all_done)
        await asyncio.sleep(0.5)  # a poll later: nothing more goes out
    finally:
        code = await worker.terminate()

    async with database.sessions() as session:
        stored = {
            send.id: send
            for send in await session.scalars(
                sa.select(Send).where(Send.team_id == DEFAULT_TEAM_ID)
            )
        }
    for send in sends:
        row = stored[send.id]
        assert row.state == SendState.SENT
        [dm] = fake_slack.calls_to("chat.postMessage", where=dm_to(send.requester_id))
        assert f"`{row.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
        [logged] = fake_slack.calls_to(
            "chat.postMessage",
            where=lambda c, short=row.short_id: (
                c.args["channel"] == LOG_CHANNEL and f"`{short}`" in c.args["text"]
            ),
        )
        assert "was sent" in logged.args["text"]
        assert row.slack_messages["log"]["channel"] == LOG_CHANNEL  # so later news updates it
    assert len(fake_slack.calls_to("chat.postMessage")) == 2 * len(sends)  # each once
    assert fake_slack.calls_to("chat.update") == []
    assert all(row.attempts >= 1 for row in await _outbox(database))
    assert code == 0 and "Traceback" not in worker.output()
