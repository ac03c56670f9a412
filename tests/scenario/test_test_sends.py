"""`/push send --test` under each approval policy: `/push me` takes any external id without proof
that it is the caller's, so under the policy "every send" a test send waits for approval like
any other; under "off" and "sends to segments" it goes straight out."""

from typing import Any

import pytest

from storage.models import SendState
from tests.plugins.slack import PushOps
from tests.scenario.sendkit import (
    APPROVALS_CHANNEL,
    creates,
    only_send,
    require_approvals,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        fake_onesignal.add_user(fake_onesignal.app.id, "cust-4711")
        yield running


async def _test_send(app: PushOps) -> dict[str, Any]:
    """ALICE links someone else's external id, then test-sends to it with --yes."""
    await (await app.post_command("me cust-4711")).reply()
    return await (await app.post_command('send --yes --test "Hello you"')).reply()


async def test_a_test_send_waits_for_approval_when_every_send_needs_one(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack, mode="all")

    reply = await _test_send(app)

    send = await only_send(database)
    assert send.is_test and send.state == SendState.PENDING_APPROVAL
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(reply)
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert creates(fake_onesignal) == []


@pytest.mark.parametrize("mode", ["off", "segments"])
async def test_a_test_send_needs_no_approval_under_the_other_policies(
    app, fake_slack, fake_onesignal, database, mode
):
    if mode != "off":
        await require_approvals(database, fake_slack, mode=mode)

    await _test_send(app)

    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    assert send.is_test and send.approvals_required == 0
    [request] = creates(fake_onesignal)
    assert request.json["include_aliases"] == {"external_id": ["cust-4711"]}
