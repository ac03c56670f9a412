"""The news of a send's end is owed in the transaction that records the end: a process that
dies after that commit, before its notifier told anyone, leaves a notice that the next drainer
renders, so the requester and the log channel are still told, once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa

from storage import claims, deliveries
from storage.models import OutboxMessage, OutboxState, SendState, utcnow
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.sendkit import (
    ALICE,
    LOG_CHANNEL,
    SEGMENT,
    dm_to,
    serve_sending,
    set_log_channel,
    settings,
)


async def test_an_end_recorded_by_a_process_that_died_before_telling_it_is_told_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, storage_factory, tmp_path
):
    app = await storage_factory.app(
        DEFAULT_TEAM_ID,
        "default",
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret(fake_onesignal.app.rest_api_key),
        make_default=True,
    )
    await set_log_channel(database)
    send = await storage_factory.send(
        app,
        due_at=utcnow() - timedelta(seconds=1),
        requester_id=ALICE,
        content={"message": "Doors open at 9"},
        audience={"segments": [SEGMENT]},
    )
    # A worker that is gone by now claimed the send and recorded that it went out; its
    # notifier never ran.
    claimed = await claims.claim_send(
        session_factory=database.sessions, send_id=send.id, now=utcnow(), worker_id="gone"
    )
    assert claimed is not None
    await deliveries.finish_sends(
        session_factory=database.sessions,
        worker_id="gone",
        results=[deliveries.DeliveryResult(send.id, SendState.SENT, "notif-1")],
        notice_grace=timedelta(0),
    )

    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring):
        deadline = time.monotonic() + 15
        while not (
            fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))
            and fake_slack.calls_to(
                "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
            )
        ):
            assert time.monotonic() < deadline, "nobody was told"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # a poll of the drainer later: nothing more goes out

    [dm] = fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))
    assert f"`{send.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
    [logged] = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )
    assert f"`{send.short_id}`" in logged.args["text"] and "was sent" in logged.args["text"]
    assert fake_slack.calls_to("chat.update") == []
    async with database.sessions() as session:
        rows = list(await session.scalars(sa.select(OutboxMessage)))
    assert {row.state for row in rows} == {OutboxState.DONE}
    assert sorted(row.purpose for row in rows) == ["delivered", "log", "notice"]
