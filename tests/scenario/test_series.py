"""Recurring sends through the real door: `/push send --every` stores a series once and says
when it goes; each occurrence goes out as a send of its own with its own derived key;
`/push series` pauses, resumes and stops it (creator, senders, admins only); `/push cancel`
on an occurrence skips just that one; under an approval policy a series is approved once;
bad input gets a clear answer and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from storage import workspaces
from storage.models import MemberRole, Send, SendState, Series, SeriesApproval, SeriesState
from storage.series import occurrence_id
from tests.denials import wait_for_denials
from tests.fakes.onesignal.shapes import check_notification
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.onesignal.spec import check_request
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    CAROL,
    SEGMENT,
    all_sends,
    audit_actions,
    buttons,
    click,
    creates,
    dm_to,
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
        yield running


async def _all_series(database: Any) -> list[Series]:
    async with database.sessions() as session:
        return list(await session.scalars(sa.select(Series).order_by(Series.created_at)))


async def _only_series(database: Any) -> Series:
    found = await _all_series(database)
    assert len(found) == 1, found
    return found[0]


async def _occurrences(database: Any, series: Series) -> list[Send]:
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.series_id == series.id).order_by(Send.occurrence_at)
        return list(await session.scalars(query))


async def _wait_occurrence(database: Any, series: Series, count: int = 1) -> list[Send]:
    import asyncio
    import time

    deadline = time.monotonic() + 10
    while len(made := await _occurrences(database, series)) < count:
        assert time.monotonic() < deadline, "no occurrence was made"
        await asyncio.sleep(0.05)
    return made


async def test_every_monday_is_stored_once_and_confirmed_with_its_next_occurrences(
    app, fake_onesignal, database
):
    sent = await app.post_command(
        f'send --every monday --at 09:00 --segment "{SEGMENT}" --title Stand-up "Join in"'
    )

    reply = await sent.reply()
    series = await _only_series(database)
    text = text_of(reply)
    assert f"Series `{series.short_id}`" in text
    assert "every Monday at 09:00 (Europe/Berlin)" in text
    assert text.count("Mon ") >= 3 and "09:00 CET" in text  # the next three, on the wall clock
    assert "`/push series` pauses, resumes or stops the series" in text
    assert series.state == SeriesState.ACTIVE and series.requester_id == ALICE
    assert (series.content["message"], series.content["title"]) == ("Join in", "Stand-up")
    assert series.next_at is not None and series.next_at.weekday() == 0
    assert await all_sends(database) == [] and creates(fake_onesignal) == []
    assert "series.created" in await audit_actions(database)


@pytest.mark.parametrize(
    ("words", "answer"),
    [
        ("--every 30m", "at most every hour"),
        ("--every day --in 2h", "--every with --in"),
        ("--every day --at 09:00 --until 2027-01-01 --times 3", "--until or --times, not both"),
        ("--times 3", "--until and --times go with --every"),
        ("--every monday", "needs --at"),
        ("--every sometimes", "I can't read --every"),
    ],
)
async def test_bad_series_input_gets_a_clear_answer_and_stores_nothing(
    app, fake_onesignal, database, words, answer
):
    before = await audit_actions(database)

    sent = await app.post_command(f'send {words} --segment "{SEGMENT}" Hello')

    reply = await sent.reply()
    assert answer in reply["text"], reply["text"]
    assert await _all_series(database) == [] and await all_sends(database) == []
    assert await audit_actions(database) == before
    assert fake_onesignal.requests == []  # not even a template or segment lookup


async def test_an_occurrence_goes_out_as_its_own_send_under_its_derived_key(
    app, fake_slack, fake_onesignal, database
):
    sent = await app.post_command(f'send --every 6h --at "in 2s" --segment "{SEGMENT}" Drink')
    await sent.reply()
    series = await _only_series(database)

    (occurrence,) = await _wait_occurrence(database, series)
    done = await wait_for_state(database, occurrence.short_id, SendState.SENT)

    (request,) = creates(fake_onesignal)
    check_request("create_notification", request)
    check_notification(request.json)
    assert occurrence.occurrence_at is not None
    assert done.id == occurrence_id(series.id, occurrence.occurrence_at)
    assert request.json["idempotency_key"] == str(done.id)
    assert request.json["contents"] == {"en": "Drink"}
    assert request.json["included_segments"] == [SEGMENT]
    told = await fake_slack.wait_for("chat.postMessage", where=dm_to(ALICE))
    assert f"`{done.short_id}`" in text_of(told.args) and "Drink" in text_of(told.args)
    actions = await audit_actions(database)
    assert actions.count("send.created") == 1 and actions.count("send.sent") == 1
    (stored,) = await _all_series(database)
    assert stored.occurrences == 1 and stored.next_at is not None
    assert stored.next_at - occurrence.occurrence_at == timedelta(hours=6)


async def test_cancelling_one_occurrence_skips_only_it_and_says_how_to_stop_the_series(
    app, fake_onesignal, database
):
    sent = await app.post_command(f'send --every 1h --at "in 30s" --segment "{SEGMENT}" Hi')
    await sent.reply()
    series = await _only_series(database)
    (occurrence,) = await _wait_occurrence(database, series)

    cancelled = await app.post_command(f"cancel {occurrence.short_id}")

    reply = await cancelled.reply()
    assert f"Stopped `{occurrence.short_id}`" in text_of(reply)
    assert f"Only this occurrence was cancelled: series `{series.short_id}` goes on" in (
        text_of(reply)
    )
    assert "`/push series` pauses or stops the series" in text_of(reply)
    (after,) = await _all_series(database)
    assert after.state == SeriesState.ACTIVE and after.next_at is not None
    assert (await _occurrences(database, series))[0].state == SendState.CANCELLED
    assert creates(fake_onesignal) == []
    actions = await audit_actions(database)
    assert "send.cancelled" in actions and "series.stopped" not in actions
    assert "series.paused" not in actions


async def _listed(app: Any) -> dict[str, Any]:
    listed = await app.post_command("series")
    return await listed.reply()


async def test_pause_resume_and_stop_from_the_list_are_audited(app, fake_onesignal, database):
    sent = await app.post_command(f'send --every 1h --at "in 30s" --segment "{SEGMENT}" Hi')
    await sent.reply()
    series = await _only_series(database)
    (occurrence,) = await _wait_occurrence(database, series)

    reply = await _listed(app)
    assert f"`{series.short_id}` · active · every 1h" in text_of(reply)
    assert f"<@{ALICE}>" in text_of(reply)
    found = buttons(reply["blocks"])
    assert found[const.ACTION_SERIES_PAUSE]["value"] == str(series.id)
    assert found[const.ACTION_SERIES_STOP]["value"] == str(series.id)

    paused = await app.fake.wait_for_reply(
        await click(app, const.ACTION_SERIES_PAUSE, str(series.id))
    )
    assert f"Series `{series.short_id}` paused" in paused["text"]
    assert f"`{occurrence.short_id}`" in paused["text"]  # made already, now cancelled
    assert (await _only_series(database)).state == SeriesState.PAUSED
    assert (await _occurrences(database, series))[0].state == SendState.CANCELLED

    reply = await _listed(app)
    resume = buttons(reply["blocks"])[const.ACTION_SERIES_RESUME]
    resumed = await app.fake.wait_for_reply(
        await click(app, const.ACTION_SERIES_RESUME, resume["value"])
    )
    assert f"Series `{series.short_id}` resumed" in resumed["text"]
    assert (await _only_series(database)).state == SeriesState.ACTIVE

    stopped = await app.fake.wait_for_reply(
        await click(app, const.ACTION_SERIES_STOP, str(series.id))
    )
    assert f"Series `{series.short_id}` stopped" in stopped["text"]
    final = await _only_series(database)
    assert final.state == SeriesState.STOPPED and final.next_at is None
    actions = await audit_actions(database)
    assert {"series.paused", "series.active", "series.stopped"} <= set(actions)
    assert creates(fake_onesignal) == []


async def test_someone_who_may_not_send_cannot_stop_anothers_series(app, fake_slack, database):
    fake_slack.add_user(CAROL, name="carol")
    async with database.sessions.begin() as session:  # once a sender is named, Carol is none
        await workspaces.add_member(
            session=session,
            team_id=DEFAULT_TEAM_ID,
            subject_id="U0SENDER",
            role=MemberRole.SENDER,
            actor=ALICE,
        )
    sent = await app.post_command(f'send --every day --at 09:00 --segment "{SEGMENT}" Hi')
    await sent.reply()
    series = await _only_series(database)

    answer = await app.fake.wait_for_reply(
        await click(app, const.ACTION_SERIES_STOP, str(series.id), user=CAROL)
    )

    assert "Only the series' creator" in answer["text"]
    assert (await _only_series(database)).state == SeriesState.ACTIVE
    (denied,) = await wait_for_denials(database, 1, "series.denied")
    assert denied.actor == CAROL and denied.target == f"series {series.short_id}"


async def test_a_series_under_an_approval_policy_is_approved_once_then_each_occurrence_goes(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack)
    sent = await app.post_command(f'send --every 1h --at "in 3s" --segment "{SEGMENT}" Gated')

    reply = await sent.reply()
    series = await _only_series(database)
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(reply)
    request = await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert "every 1h" in text_of(request.args)
    found = buttons(request.args["blocks"])
    assert found[const.ACTION_SERIES_APPROVE]["value"] == str(series.id)

    own = await app.fake.wait_for_reply(
        await click(app, const.ACTION_SERIES_APPROVE, str(series.id), channel=APPROVALS_CHANNEL)
    )
    assert "your own series" in own["text"]
    approved = await app.fake.wait_for_reply(
        await click(
            app, const.ACTION_SERIES_APPROVE, str(series.id), user=BOB, channel=APPROVALS_CHANNEL
        )
    )
    assert f"Approved by <@{BOB}>" in text_of(approved)

    (occurrence,) = await _wait_occurrence(database, series)
    await wait_for_state(database, occurrence.short_id, SendState.SENT)
    (created,) = creates(fake_onesignal)
    check_request("create_notification", created)
    check_notification(created.json)
    assert created.json["contents"] == {"en": "Gated"}
    assert created.json["idempotency_key"] == str(occurrence.id)
    approval_requests = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert len(approval_requests) == 1  # the occurrence asked nobody again
    actions = await audit_actions(database)
    assert "series.approved" in actions and "send.pending_approval" not in actions


async def test_an_edit_of_an_approved_series_asks_for_approval_again(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack)
    sent = await app.post_command(f'send --every day --at 09:00 --segment "{SEGMENT}" Old')
    await sent.reply()
    series = await _only_series(database)
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    await app.fake.wait_for_reply(
        await click(
            app, const.ACTION_SERIES_APPROVE, str(series.id), user=BOB, channel=APPROVALS_CHANNEL
        )
    )
    assert (await _only_series(database)).approval == SeriesApproval.APPROVED

    edited = await app.post_command(f'series edit {series.short_id} --title Notice "New text"')

    reply = await edited.reply()
    assert "Its next occurrences carry the new text." in text_of(reply)
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}>" in text_of(reply)
    after = await _only_series(database)
    assert after.approval == SeriesApproval.PENDING and after.approvals_received == 0
    assert (after.content["message"], after.content["title"]) == ("New text", "Notice")
    asked_again = await fake_slack.wait_for(
        "chat.update", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    assert buttons(asked_again.args["blocks"])[const.ACTION_SERIES_APPROVE]["value"] == str(
        series.id
    )
    assert "New text" in text_of(asked_again.args)
    assert "series.edited" in await audit_actions(database)
    assert creates(fake_onesignal) == []


async def test_editing_a_series_that_is_not_there_says_so_and_changes_nothing(app, database):
    sent = await app.post_command('series edit 7K3M9Q "New text"')

    reply = await sent.reply()
    assert "There is no series `7K3M9Q` here" in reply["text"]
    assert "series.edited" not in await audit_actions(database)
