"""A rolling restart, through the real door: the sends a stopping PushOps will not finish are
handed back, and the next process delivers them at once (not after their lease), each exactly
once, telling each requester."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.services import Services
from bot.settings import Settings
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import Send, SendState, utcnow
from tests.plugins.slack import default_services
from tests.scenario.sendkit import (
    ALICE,
    FAST,
    SEGMENT,
    all_sends,
    creates,
    dm_to,
    settings,
    wait_for_state,
)

POLICY = replace(FAST, lease=30.0)  # far longer than the test may take


def _services(config: Settings, database: Database, keyring: KeyRing) -> Services:
    services = default_services(config, database, keyring, policy=POLICY, sweep_interval=0.5)
    services.admission.limit = 1  # one send-now at a time: the next one waits for its place
    services.drain_timeout = 0.3
    return services


async def test_sends_cut_off_by_a_restart_go_out_at_once_from_the_next_process(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")
    async with serve_pushops(config, services=_services(config, database, keyring)) as first:
        await first.post_command(f'send --yes --segment "{SEGMENT}" Calling')
        assert await asyncio.to_thread(hold.arrived.wait, 5)
        await first.post_command(f'send --yes --segment "{SEGMENT}" Waiting')
        assert len(await all_sends(database)) == 2
    # The server stopped as at SIGTERM (its lifespan closes the services).
    stopped_at = utcnow()
    calling, waiting = await all_sends(database)
    hold.release()  # OneSignal acts on the call the first process never heard back from

    started = time.monotonic()
    async with serve_pushops(config, services=_services(config, database, keyring)):
        sent = [
            await wait_for_state(database, send.short_id, SendState.SENT, within=10)
            for send in (calling, waiting)
        ]
        took = time.monotonic() - started
        for send in sent:
            await fake_slack.wait_for("chat.postMessage", where=_dm_about(send))

    # The one whose call had started kept its claim and key, its lease ended at shutdown;
    # the one still waiting for its place was scheduled again, as if never claimed.
    assert calling.state == SendState.SENDING
    assert calling.lease_until is not None and calling.lease_until <= stopped_at
    assert (waiting.state, waiting.claimed_by, waiting.attempts) == (SendState.SCHEDULED, None, 0)
    assert took < 10 < POLICY.lease
    keys = Counter(request.json["idempotency_key"] for request in creates(fake_onesignal))
    assert keys == {str(calling.id): 2, str(waiting.id): 1}
    assert len(fake_onesignal.notifications) == 2  # each sent exactly once
    for send in sent:
        (dm,) = fake_slack.calls_to("chat.postMessage", where=_dm_about(send))
        assert "was sent" in dm.args["text"]


def _dm_about(send: Send) -> Callable[[Any], bool]:
    to_alice = dm_to(ALICE)
    return lambda call: to_alice(call) and f"`{send.short_id}`" in call.args["text"]
