"""What PushOps says of a send is what OneSignal did with it, whatever OneSignal's speed.

A create OneSignal answers only after the client gave up waiting is found at OneSignal and told
as sent (never "failed", never "nothing was sent"), and `/push status` and `/push cancel` then
speak of that notification; send-nows waiting for a place keep their claims while OneSignal is
slower than a lease, so another replica never requests them a second time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from storage import workspaces
from storage.models import AuditEvent, SendState
from tests.bot.deliverykit import kit
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.sendkit import (
    FAST,
    SEGMENT,
    all_sends,
    creates,
    only_send,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)

TIMEOUT = 0.5  # the OneSignal pool's timeout in these tests
ATTEMPT = (1 + FAST.client_retries) * TIMEOUT  # one attempt: every try of the client times out


@pytest.fixture
def config(fake_slack, fake_onesignal, tmp_path):
    return settings(fake_slack, fake_onesignal, tmp_path)


async def test_a_send_onesignal_answers_after_the_timeout_is_told_as_sent_and_can_be_stopped(
    serve_pushops, config, fake_onesignal, database, keyring
):
    async with serve_sending(
        serve_pushops, config, database, keyring, onesignal_timeout=TIMEOUT
    ) as app:
        # OneSignal takes each create at once, and answers only after the client stopped waiting.
        fake_onesignal.faults.answer_late(ATTEMPT + 5, method="POST", path="/notifications")
        asked = time.monotonic()
        sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')
        answer = await sent.reply(timeout=ATTEMPT + 5)
        short_id = (await only_send(database)).short_id
        send = await wait_for_state(database, short_id, SendState.SENT, within=5)
        took = time.monotonic() - asked

        status = await (await app.post_command(f"status {short_id}")).reply()
        cancel = await (await app.post_command(f"cancel {short_id}")).reply()

    (created,) = fake_onesignal.notifications.values()
    assert send.notification_id == created["id"] and send.last_error is None
    assert took < FAST.lease + ATTEMPT + FAST.backoff  # within the lease and one retry cycle
    assert {r.json["idempotency_key"] for r in creates(fake_onesignal)} == {str(send.id)}
    assert "was sent" in text_of(answer) and f"OneSignal `{created['id']}`" in text_of(answer)
    assert f"OneSignal `{created['id']}`" in text_of(status)
    assert "was sent" in text_of(status) and "Nothing was sent" not in text_of(status)
    assert f"Asked OneSignal to stop `{short_id}`" in cancel["text"]
    assert fake_onesignal.notifications[created["id"]]["canceled"] is True


async def test_send_nows_waiting_for_a_place_longer_than_a_lease_are_requested_once_each(
    serve_pushops, config, fake_onesignal, database, keyring
):
    count = 10  # more than the 4 deliveries a process runs at once (Admission.heavy_work)
    # OneSignal slower than the 2 s lease: the last send-nows wait for a place 5 s and more.
    fake_onesignal.faults.latency(FAST.lease + 0.5, method="POST", path="/notifications")
    async with serve_sending(serve_pushops, config, database, keyring) as app:
        async with kit(
            database, keyring, fake_onesignal, await _default_app(database), worker_id="worker"
        ) as worker:
            await worker.start()  # another replica, sweeping every 0.5 s
            commands = [f'send --yes --segment "{SEGMENT}" "Hello {n}"' for n in range(count)]
            sent = await asyncio.gather(*(app.post_command(text) for text in commands))
            assert all(c.response is not None and c.response.status_code == 200 for c in sent)
            await _all_sent(database, count, within=6 * (FAST.lease + 0.5) + 10)

    sends = await all_sends(database)
    keys = Counter(r.json["idempotency_key"] for r in creates(fake_onesignal))
    assert keys == Counter({str(send.id): 1 for send in sends})  # no send requested twice
    assert len(fake_onesignal.notifications) == count
    assert await _actions(database, "send.reclaimed") == 0  # nothing was taken over


async def _default_app(database: Any) -> Any:
    async with database.sessions() as session:
        return await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")


async def _all_sent(database: Any, count: int, *, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        states = Counter(send.state for send in await all_sends(database))
        if states[SendState.SENT] == count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"states: {dict(states)}")
        await asyncio.sleep(0.1)


async def _actions(database: Any, action: str) -> int:
    async with database.sessions() as session:
        query = sa.select(sa.func.count()).select_from(AuditEvent)
        return int(await session.scalar(query.where(AuditEvent.action == action)) or 0)
