"""`/push cancel ID`: the brake acts at once, by short id or OneSignal id, and says exactly what
happened; ids it does not know here (or of another workspace) are refused without a write."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from bot.delivery import notification_name
from bot.onesignal import OneSignalClient
from commands.views.sends import describe_time
from storage import workspaces
from storage.models import SendState, utcnow
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import OTHER_TEAM
from tests.scenario.sendkit import (
    LOG_CHANNEL,
    SEGMENT,
    all_sends,
    audit_actions,
    creates,
    only_send,
    serve_sending,
    set_log_channel,
    settings,
    text_of,
    wait_for_state,
)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def _sent(app: Any, database: Any) -> Any:
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" Hello')
    await sent.reply()
    return await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)


async def test_cancel_before_it_is_due_prevents_the_send(app, fake_slack, fake_onesignal, database):
    await set_log_channel(database)
    scheduled = await app.post_command(f'send --yes --in 2s --segment "{SEGMENT}" Soon')
    await scheduled.reply()
    send = await only_send(database)

    sent = await app.post_command(f"cancel {send.short_id.lower()}")

    reply = await sent.reply()
    assert f"Stopped `{send.short_id}` before it was sent: nobody received it." in reply["text"]
    assert (await only_send(database)).state == SendState.CANCELLED
    update = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )
    assert "was cancelled" in update.args["text"]
    await asyncio.sleep(2.5)  # past its due time, and a few sweeps
    assert creates(fake_onesignal) == []
    assert (await only_send(database)).state == SendState.CANCELLED


async def test_cancel_of_a_sent_send_asks_onesignal_to_stop_it(app, fake_onesignal, database):
    send = await _sent(app, database)

    sent = await app.post_command(f"cancel {send.short_id}")

    reply = await sent.reply()
    [delete] = fake_onesignal.requests_to("DELETE", f"/notifications/{send.notification_id}")
    assert delete.query["app_id"] == [fake_onesignal.app.id]
    assert f"Asked OneSignal to stop `{send.short_id}`" in reply["text"]
    assert "may still reach some users" in reply["text"]
    assert (await only_send(database)).state == SendState.CANCELLED
    assert fake_onesignal.notifications[send.notification_id]["canceled"] is True


async def test_cancel_takes_the_onesignal_id_too(app, fake_onesignal, database):
    send = await _sent(app, database)

    sent = await app.post_command(f"cancel {send.notification_id}")

    reply = await sent.reply()
    assert f"Asked OneSignal to stop `{send.short_id}`" in reply["text"]
    assert len(fake_onesignal.requests_to("DELETE", "/notifications/")) == 1


async def test_cancel_finds_what_a_worker_that_died_mid_send_had_created(
    app, fake_onesignal, database, storage_factory
):
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")
    send = await storage_factory.send(  # claimed by a worker that died mid-call
        default,
        state=SendState.SENDING,
        content={"message": "Wrong one"},
        audience={"segments": [SEGMENT]},
        claimed_by="dead-worker",
        claimed_at=utcnow(),
        attempts=1,
        lease_until=utcnow() + timedelta(minutes=5),
    )
    async with OneSignalClient(
        rest_api_key=fake_onesignal.app.rest_api_key, base_url=fake_onesignal.url
    ) as client:  # what its call had made OneSignal create, and another notification
        body = {"app_id": fake_onesignal.app.id, "contents": {"en": "Wrong one"}}
        lost = await client.create_notification(
            {**body, "included_segments": [SEGMENT], "name": notification_name(send),
             "idempotency_key": str(send.id)}
        )  # fmt: skip
        other = await client.create_notification(
            {**body, "included_segments": [SEGMENT], "name": "Newsletter"}
        )

    sent = await app.post_command(f"cancel {send.short_id}")

    reply = await sent.reply()
    assert f"Stopped `{send.short_id}` while it was going out" in reply["text"]
    assert "may still reach some users" in reply["text"]
    assert fake_onesignal.notifications[lost.id]["canceled"] is True
    assert fake_onesignal.notifications[other.id]["canceled"] is False
    assert [r.path for r in fake_onesignal.requests_to("DELETE", "/notifications/")] == [
        f"/notifications/{lost.id}"
    ]
    assert (await only_send(database)).state == SendState.CANCELLED
    assert len(creates(fake_onesignal)) == 2  # looked up, never created again


async def test_a_delivered_send_cannot_be_recalled_and_says_so(app, fake_onesignal, database):
    send = await _sent(app, database)
    fake_onesignal.complete_delivery(send.notification_id)

    sent = await app.post_command(f"cancel {send.short_id}")

    reply = await sent.reply()
    assert "already delivered to everyone" in reply["text"]
    assert (await only_send(database)).state == SendState.SENT


@pytest.mark.parametrize("ref", ["ZZZZZZ", "3f2b1c9e-0000-4000-8000-000000000000", "x"])
async def test_an_unknown_id_is_refused_and_nothing_changes(app, database, ref):
    sent = await app.post_command(f"cancel {ref}")

    reply = await sent.reply()
    assert reply["response_type"] == "ephemeral"
    assert f"No send `{ref}` in this workspace" in reply["text"]
    assert "/push list" in reply["text"]
    assert await all_sends(database) == []


async def test_an_id_of_another_workspace_is_not_found_here(app, database, storage_factory):
    other_app = await storage_factory.app(OTHER_TEAM, make_default=True)
    # due later, so the scheduler leaves it alone while the test looks at it
    later = utcnow() + timedelta(hours=1)
    theirs = await storage_factory.send(other_app, state=SendState.SCHEDULED, due_at=later)
    before = await audit_actions(database)

    sent = await app.post_command(f"cancel {theirs.short_id}")

    reply = await sent.reply()
    assert f"No send `{theirs.short_id}` in this workspace" in reply["text"]
    [still] = await all_sends(database, OTHER_TEAM)
    assert still.state == SendState.SCHEDULED
    assert await audit_actions(database) == before


async def test_cancel_without_an_id_shows_how(app, database):
    sent = await app.post_command("cancel")

    reply = await sent.reply()
    assert "Which send?" in reply["text"] and "Usage: /push cancel ID" in reply["text"]


async def test_a_cancelled_send_is_reported_exactly(app, database):
    scheduled = await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" Later')
    await scheduled.reply()
    send = await only_send(database)
    first = await app.post_command(f"cancel {send.short_id}")
    await first.reply()

    again = await app.post_command(f"cancel {send.short_id}")

    reply = await again.reply()
    assert f"`{send.short_id}` is cancelled: nothing to stop." in text_of(reply)


async def test_a_cancelled_card_shows_when_it_was_due_and_when_it_was_cancelled(
    app, fake_slack, database
):
    await set_log_channel(database)
    scheduled = await app.post_command(f'send --yes --in 2h --segment "{SEGMENT}" Later')
    await scheduled.reply()
    send = await only_send(database)

    reply = await (await app.post_command(f"cancel {send.short_id}")).reply()

    cancelled = await only_send(database)
    assert cancelled.due_at is not None and cancelled.finished_at is not None
    due = describe_time(cancelled.due_at, cancelled.timezone)
    stopped = describe_time(cancelled.finished_at, cancelled.timezone)
    assert f"Was due: {due} · Cancelled: {stopped}" in text_of(reply)
    assert "At:" not in text_of(reply)  # the cancel time never reads as the time it went out
    update = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )
    assert f"Was due: {due} · Cancelled: {stopped}" in text_of(update.args)
