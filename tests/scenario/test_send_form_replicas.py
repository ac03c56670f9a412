"""The compose form behind a load balancer: Slack may deliver one form's submission twice
(a double click, a retry) to two replicas of PushOps sharing one database. One notification
goes out, and each submission is answered with the same send."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from storage.models import SendState
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    all_sends,
    audit_actions,
    creates,
    require_approvals,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)
from tests.scenario.test_send_form import submit, values


@pytest.fixture
async def replicas(
    serve_pushops, fake_slack, fake_onesignal, database, database_url, keyring, tmp_path
) -> AsyncIterator[tuple[Any, Any]]:
    """Two apps, each with its own services and engine, on the same database."""
    config = settings(fake_slack, fake_onesignal, tmp_path)
    second = database.another()
    try:
        async with contextlib.AsyncExitStack() as stack:
            one = await stack.enter_async_context(
                serve_sending(serve_pushops, config, database, keyring)
            )
            two = await stack.enter_async_context(
                serve_sending(serve_pushops, config, second, keyring)
            )
            yield one, two
    finally:
        await second.dispose()


async def _one_send_answered_twice(fake_slack: Any, fake_onesignal: Any, database: Any) -> None:
    """One send, delivered once, and both submissions told its short id in the channel."""
    [send] = await all_sends(database)
    await wait_for_state(database, send.short_id, SendState.SENT)
    first = await fake_slack.wait_for("chat.postEphemeral", count=1)
    second = await fake_slack.wait_for("chat.postEphemeral", count=2)
    for answer in (first, second):
        assert answer.args["channel"] == "C0GENERAL" and answer.args["user"] == ALICE
        assert f"`{send.short_id}`" in answer.args["text"]
    assert len(creates(fake_onesignal)) == 1
    assert (await audit_actions(database)).count("send.created") == 1


async def test_a_form_submitted_to_two_replicas_sends_once(
    replicas, fake_slack, fake_onesignal, database
):
    one, two = replicas

    first = await submit(one, values())
    again = await submit(two, values())  # the same view, to the other replica

    assert [r.status_code for r in (first, again)] == [200, 200]
    assert again.text == ""  # the form closes: no errors, nothing more to fill in
    await _one_send_answered_twice(fake_slack, fake_onesignal, database)


async def test_a_form_submitted_to_two_replicas_at_once_sends_once(
    replicas, fake_slack, fake_onesignal, database
):
    one, two = replicas

    both = await asyncio.gather(submit(one, values()), submit(two, values()))

    assert [r.status_code for r in both] == [200, 200]
    await _one_send_answered_twice(fake_slack, fake_onesignal, database)


async def test_a_form_needing_approval_asks_the_approvers_once_whichever_replica_it_reached(
    replicas, fake_slack, fake_onesignal, database
):
    one, two = replicas
    await require_approvals(database, fake_slack)

    await submit(one, values())
    await submit(two, values())

    [send] = await all_sends(database)
    assert send.state == SendState.PENDING_APPROVAL
    for count in (1, 2):
        answer = await fake_slack.wait_for("chat.postEphemeral", count=count)
        assert f"`{send.short_id}`" in answer.args["text"]
        assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(answer.args)
    await asyncio.sleep(0.2)  # time enough for a second request, were one coming
    asked = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert len(asked) == 1 and creates(fake_onesignal) == []
