"""The requester hears of every end of their send, by DM, and the log-channel message follows:
sent, failed, missed, expired, rejected, and cancelled by someone else (who, and when). A
person is not told by DM of their own action, which was just answered where they took it."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import const
from storage import workspaces
from storage.models import MemberRole, SendState, utcnow
from tests.fakes.slack import DEFAULT_TEAM_ID, FakeSlack
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    LOG_CHANNEL,
    SEGMENT,
    buttons,
    click,
    creates,
    dm_to,
    ensure_workspace,
    only_send,
    require_approvals,
    serve_sending,
    set_log_channel,
    settings,
    text_of,
    wait_for_state,
)
from tests.scenario.workspace import onesignal_settings


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await ensure_workspace(database)
        await set_log_channel(database)
        async with database.sessions.begin() as session:  # on call: may stop anyone's send
            await workspaces.add_member(
                session=session,
                team_id=DEFAULT_TEAM_ID,
                subject_id=BOB,
                role=MemberRole.RESPONDER,
                actor=ALICE,
            )
        fake_slack.add_user(BOB, name="bob", tz="America/New_York")
        fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
        yield running


def _to_log(call: Any) -> bool:
    return call.args.get("channel") == LOG_CHANNEL


async def _log_posts(fake_slack: FakeSlack) -> list[Any]:
    """The messages posted in the log channel, once there is one."""
    await fake_slack.wait_for("chat.postMessage", where=_to_log)
    return fake_slack.calls_to("chat.postMessage", where=_to_log)


async def _log_update(fake_slack: FakeSlack, words: str) -> Any:
    """The update of the log-channel message that says `words`."""
    return await fake_slack.wait_for(
        "chat.update",
        where=lambda c: c.args["channel"] == LOG_CHANNEL and words in c.args.get("text", ""),
    )


def _berlin(moment: datetime) -> re.Pattern[str]:
    """`14:05(:09) CEST (12:05(:09) UTC)`: how the requester (in Berlin) reads `moment`."""
    local, utc = moment.astimezone(ZoneInfo("Europe/Berlin")), moment.astimezone(UTC)
    # between 23:00 and midnight UTC, Berlin is a day ahead: the UTC time then names its day
    utc_day = "" if utc.date() == local.date() else f"{utc:%a} {utc.day} {utc:%b} "
    return re.compile(
        rf"{local:%H:%M}(:{local:%S})? {local.tzname()} "
        rf"\({utc_day}{utc:%H:%M}(:{utc:%S})? UTC\)"
    )


async def _scheduled(app: Any, database: Any, fake_slack: FakeSlack, when: str = "1h") -> Any:
    """ALICE schedules a send to one user; its log-channel message is posted."""
    sent = await app.post_command(f'send --yes --in {when} --user cust-1 "See you"')
    assert "is scheduled" in text_of(await sent.reply())
    send = await only_send(database)
    [posted] = await _log_posts(fake_slack)
    assert "is scheduled" in posted.args["text"]
    return send


# --- cancelled --------------------------------------------------------------------------------


async def test_a_cancel_by_someone_else_is_told_to_the_requester_with_who_and_when(
    app, fake_slack, fake_onesignal, database
):
    send = await _scheduled(app, database, fake_slack)

    cancelled = await app.post_command(f"cancel {send.short_id}", user=BOB)

    assert "before it was sent" in text_of(await cancelled.reply())
    row = await wait_for_state(database, send.short_id, SendState.CANCELLED)
    assert row.finished_at is not None
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    said = text_of(dm.args)
    assert f"<@{BOB}> cancelled `{send.short_id}`" in dm.args["text"]
    assert _berlin(row.finished_at).search(dm.args["text"])
    assert f"Cancelled by <@{BOB}>." in said
    assert re.search(f"Cancelled: [^·]*{_berlin(row.finished_at).pattern}", said), said
    assert "nobody received it" in said
    update = await _log_update(fake_slack, "was cancelled")
    logged = (await only_send(database)).slack_messages["log"]  # recorded once Slack answered
    assert update.args["ts"] == logged["ts"]
    assert fake_slack.calls_to("chat.postMessage", where=dm_to(BOB)) == []
    assert creates(fake_onesignal) == []


async def test_a_cancel_after_it_went_out_tells_the_requester_it_may_still_reach_people(
    app, fake_slack, fake_onesignal, database
):
    sent = await app.post_command('send --yes --user cust-1 "Oops"')
    assert "was sent" in text_of(await sent.reply())
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)

    cancelled = await app.post_command(f"cancel {send.short_id}", user=BOB)

    assert "Asked OneSignal to stop" in text_of(await cancelled.reply())
    row = await wait_for_state(database, send.short_id, SendState.CANCELLED)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"<@{BOB}> cancelled `{send.short_id}`" in dm.args["text"]
    assert "may still reach some users" in text_of(dm.args)
    assert fake_onesignal.notifications[send.notification_id]["canceled"] is True
    assert row.notification_id == send.notification_id
    await _log_update(fake_slack, "was cancelled")


async def test_the_requester_cancelling_their_own_send_gets_no_dm_about_it(
    app, fake_slack, fake_onesignal, database
):
    send = await _scheduled(app, database, fake_slack)

    cancelled = await app.post_command(f"cancel {send.short_id}")

    assert "before it was sent" in text_of(await cancelled.reply())
    await _log_update(fake_slack, "was cancelled")
    assert (await only_send(database)).state == SendState.CANCELLED
    assert fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE)) == []
    assert creates(fake_onesignal) == []


# --- failed, missed ---------------------------------------------------------------------------


async def test_a_scheduled_send_that_fails_is_told_with_onesignals_reason(
    app, fake_slack, fake_onesignal, database
):
    fake_onesignal.faults.statuses([400], method="POST", path="/notifications")
    send = await _scheduled(app, database, fake_slack, when="1s")

    row = await wait_for_state(database, send.short_id, SendState.FAILED)

    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"`{send.short_id}` failed" in dm.args["text"]
    assert "OneSignal refused it (HTTP 400)" in text_of(dm.args)
    update = await _log_update(fake_slack, "failed")
    logged = (await only_send(database)).slack_messages["log"]  # recorded once Slack answered
    assert row.state == SendState.FAILED and update.args["ts"] == logged["ts"]
    [create] = creates(fake_onesignal)
    assert create.json["idempotency_key"] == str(send.id)


async def test_a_missed_send_is_told_with_send_now_and_drop(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")
    send = await storage_factory.send(
        default,
        state=SendState.SCHEDULED,
        due_at=utcnow() - timedelta(hours=2),
        requester_id=ALICE,
        content={"message": "Too late"},
        audience={"external_ids": ["cust-1"]},
    )

    await wait_for_state(database, send.short_id, SendState.MISSED)

    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"`{send.short_id}` was missed" in dm.args["text"]
    assert set(buttons(dm.args["blocks"])) == {
        const.ACTION_MISSED_SEND_NOW,
        const.ACTION_MISSED_DROP,
    }
    [log] = await _log_posts(fake_slack)
    assert "was missed" in log.args["text"]
    assert creates(fake_onesignal) == []


# --- rejected, expired, cancelled while pending -------------------------------------------------


async def _pending(app: Any, database: Any, fake_slack: FakeSlack) -> Any:
    await require_approvals(database, fake_slack)
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" "Big news"')
    assert "waiting for approval" in text_of(await sent.reply())
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    return await only_send(database)


async def test_a_rejection_is_told_to_the_requester_and_the_log(
    app, fake_slack, fake_onesignal, database
):
    send = await _pending(app, database, fake_slack)

    await click(app, const.ACTION_REJECT, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)

    await wait_for_state(database, send.short_id, SendState.REJECTED)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"<@{BOB}> rejected `{send.short_id}`; it will not be sent." in dm.args["text"]
    assert "Rejected by an approver; nothing was sent." in text_of(dm.args)
    await _log_update(fake_slack, "was rejected")
    closed = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == APPROVALS_CHANNEL
    )
    assert f"Rejected by <@{BOB}>" in text_of(closed.args)
    assert len(fake_slack.calls_to("chat.postMessage", where=dm_to(ALICE))) == 1
    assert creates(fake_onesignal) == []


async def test_a_pending_send_cancelled_by_someone_else_is_told_and_its_request_closed(
    app, fake_slack, fake_onesignal, database
):
    send = await _pending(app, database, fake_slack)

    cancelled = await app.post_command(f"cancel {send.short_id}", user=BOB)

    await cancelled.reply()
    closed = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args["channel"] == APPROVALS_CHANNEL
    )
    assert f"Cancelled by <@{BOB}> before a decision." in text_of(closed.args)
    assert buttons(closed.args["blocks"]) == {}
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"<@{BOB}> cancelled `{send.short_id}`" in dm.args["text"]
    await _log_update(fake_slack, "was cancelled")
    assert creates(fake_onesignal) == []


async def test_an_expired_request_is_told_to_the_requester_and_the_log(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = onesignal_settings(fake_slack, fake_onesignal, tmp_path, approval_ttl=0.5)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        await ensure_workspace(database)
        await set_log_channel(database)
        send = await _pending(running, database, fake_slack)

        await wait_for_state(database, send.short_id, SendState.EXPIRED)

        dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
        assert f"`{send.short_id}` expired without enough approvals" in dm.args["text"]
        await _log_update(fake_slack, "expired")
        assert creates(fake_onesignal) == []
