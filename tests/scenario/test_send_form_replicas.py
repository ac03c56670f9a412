"""The compose form behind a load balancer: Slack may deliver one form's submission, or its
preview's Send, twice (a double click, a retry) to two replicas of PushOps sharing one
database. Each submission is previewed with the same draft, and one notification goes out."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from commands.views.compose import WHEN_AT
from storage.models import SendState, Series, utcnow
from tests.scenario.composekit import press_send, preview_facts, pushed_preview, told
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    all_sends,
    audit_actions,
    click,
    creates,
    require_approvals,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)
from tests.scenario.test_send_form import submit, values
from tests.scenario.test_series_form import repeating


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


async def _press_send(app: Any, fake_slack: Any, response: Any, draft_id: str) -> None:
    """Press Send on the preview `response` showed: pushed over the form, or (when storing
    took longer than Slack waits, as on a loaded machine) the message that followed."""
    if response.content:
        view_id, view = pushed_preview(fake_slack, response)
        assert draft_id in view["private_metadata"]
        await press_send(app, fake_slack, view_id)
        return
    await fake_slack.wait_for("chat.postEphemeral", where=lambda c: draft_id in str(c.args))
    await click(app, const.ACTION_SEND_CONFIRM, draft_id)


async def _previewed_twice_sent_once(
    replicas: tuple[Any, Any], fake_slack: Any, responses: list[Any], database: Any
) -> Any:
    """Both submissions previewed the one draft; Send pressed on each preview, on each
    replica at once; the send as it is then."""
    [draft] = await all_sends(database)
    await asyncio.gather(
        *(
            _press_send(app, fake_slack, response, str(draft.id))
            for app, response in zip(replicas, responses, strict=True)
        )
    )
    return draft


async def _one_send_answered_once(
    fake_slack: Any, fake_onesignal: Any, database: Any, short_id: str
) -> None:
    """One send, delivered once, its requester told it was sent."""
    await wait_for_state(database, short_id, SendState.SENT)
    answer = await told(fake_slack, f"`{short_id}`", "was sent")
    assert answer.get("channel", "C0GENERAL") in ("C0GENERAL", "D0ALICE")
    assert answer.get("user", ALICE) == ALICE
    await asyncio.sleep(0.2)  # time enough for a second delivery, were one coming
    assert len(creates(fake_onesignal)) == 1
    assert (await audit_actions(database)).count("send.created") == 1


async def test_a_form_submitted_to_two_replicas_sends_once(
    replicas, fake_slack, fake_onesignal, database
):
    one, two = replicas

    first = await submit(one, values())
    again = await submit(two, values())  # the same view, to the other replica

    draft = await _previewed_twice_sent_once(replicas, fake_slack, [first, again], database)
    await _one_send_answered_once(fake_slack, fake_onesignal, database, draft.short_id)


async def test_a_form_submitted_to_two_replicas_at_once_sends_once(
    replicas, fake_slack, fake_onesignal, database
):
    one, two = replicas

    both = await asyncio.gather(submit(one, values()), submit(two, values()))

    draft = await _previewed_twice_sent_once(replicas, fake_slack, list(both), database)
    await _one_send_answered_once(fake_slack, fake_onesignal, database, draft.short_id)


async def test_a_form_needing_approval_asks_the_approvers_once_whichever_replica_it_reached(
    replicas, fake_slack, fake_onesignal, database
):
    one, two = replicas
    await require_approvals(database, fake_slack)

    responses = [await submit(one, values()), await submit(two, values())]

    for response in responses:
        if response.content:  # else storing took longer than Slack waits: previewed by message
            _, preview = pushed_preview(fake_slack, response)
            assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in preview_facts(preview)
    draft = await _previewed_twice_sent_once(replicas, fake_slack, responses, database)
    send = await wait_for_state(database, draft.short_id, SendState.PENDING_APPROVAL)
    answer = await told(fake_slack, f"`{send.short_id}`", "waiting for approval")
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(answer)
    await asyncio.sleep(0.2)  # time enough for a second request, were one coming
    asked = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert len(asked) == 1 and creates(fake_onesignal) == []


def _weekly(first: Any) -> dict[str, Any]:
    """The form's values for a weekly series starting at `first`."""
    return repeating("week", "3 times", when=WHEN_AT, at=int(first.timestamp()))


@pytest.mark.parametrize("at_once", [False, True], ids=["one-after-the-other", "at-once"])
async def test_a_series_form_submitted_to_two_replicas_stores_one_series_confirmed_once(
    replicas, fake_slack, database, at_once
):
    one, two = replicas
    first = utcnow().replace(second=0, microsecond=0) + timedelta(days=2)

    if at_once:
        await asyncio.gather(submit(one, _weekly(first)), submit(two, _weekly(first)))
    else:
        await submit(one, _weekly(first))
        await submit(two, _weekly(first))  # the same view, to the other replica

    async with database.sessions() as session:
        [series] = list(await session.scalars(sa.select(Series)))
    await fake_slack.wait_for(
        "chat.postEphemeral", where=lambda c: f"Series `{series.short_id}`" in text_of(c.args)
    )
    await asyncio.sleep(0.3)  # time enough for a second confirmation, were one coming
    confirmed = fake_slack.calls_to(
        "chat.postEphemeral", where=lambda c: f"Series `{series.short_id}`" in text_of(c.args)
    )
    assert len(confirmed) == 1
    assert (await audit_actions(database)).count("series.created") == 1
