"""The compose form's preview step: submitting the form shows what will go out (the
notification as a phone shows it, its audience, reach, time in the sender's zone and whether
it needs approval) before anything does; Back returns to the form as it was left; Send sends
it once, however often it is pressed."""

import asyncio
from datetime import timedelta

import pytest

from bot import const
from storage.models import SendState, utcnow
from tests.scenario.composekit import (
    by_id,
    filled_preview,
    press_send,
    preview_facts,
    pushed_preview,
    shown_values,
    submit_shown,
)
from tests.scenario.sendkit import (
    APPROVALS_CHANNEL,
    SEGMENT,
    all_sends,
    audit_actions,
    creates,
    require_approvals,
    serve_sending,
    settings,
    wait_for_state,
)

TYPED = {
    const.BLOCK_COMPOSE_TITLE: "Release 2.4",
    const.BLOCK_COMPOSE_MESSAGE: "Version 2.4 is out & ready",
    const.BLOCK_COMPOSE_SEGMENTS: (SEGMENT,),
    const.BLOCK_COMPOSE_URL: "https://example.com/notes",
    const.BLOCK_COMPOSE_IMAGE: "https://example.com/banner.png",
}


@pytest.fixture
def database(sqlite_database):
    """The preview's logic does not depend on the backend: SQLite only."""
    return sqlite_database


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def open_form(app, fake_slack):
    """`/push send`; the form's view id once its segments are listed."""
    assert (await app.post_command("send")).response.status_code == 200
    updated = await fake_slack.wait_for("views.update")
    return updated.args["view_id"]


async def fill_and_submit(app, fake_slack, form_id, **typed):
    """Type `typed` (block id -> value) into the form as shown and submit it."""
    shown = fake_slack.view(form_id)
    return await submit_shown(app, fake_slack, form_id, shown_values(shown, **typed))


async def test_the_preview_shows_the_notification_and_what_comes_of_it(
    app, fake_slack, fake_onesignal, database
):
    form_id = await open_form(app, fake_slack)

    response = await fill_and_submit(app, fake_slack, form_id, **TYPED)

    preview_id, preview = pushed_preview(fake_slack, response)
    assert (preview["submit"]["text"], preview["close"]["text"]) == ("Send", "Back")
    phone = "\n".join(b["text"]["text"] for b in preview["blocks"] if "text" in b)
    assert ">*Release 2.4*\n>Version 2.4 is out &amp; ready" in phone
    assert "Link: https://example.com/notes" in phone
    assert "Image: https://example.com/banner.png" in phone
    facts = preview_facts(preview)
    assert f"segment {SEGMENT}" in facts and "Counting the subscriptions" in facts
    assert "*When (your time zone)*\nnow" in facts and "Not needed" in facts
    counted = preview_facts(await filled_preview(fake_slack, preview))
    assert "Reaches about 600 subscriptions now." in counted
    [draft] = await all_sends(database)
    assert draft.state == SendState.DRAFT
    assert creates(fake_onesignal) == [] and fake_slack.view(preview_id) is not None


async def test_a_scheduled_send_needing_approval_says_when_in_the_senders_zone_and_who_approves(
    app, fake_slack, database
):
    await require_approvals(database, fake_slack)
    form_id = await open_form(app, fake_slack)
    due = (utcnow() + timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    typed = {const.BLOCK_COMPOSE_WHEN: "at", const.BLOCK_COMPOSE_AT: int(due.timestamp())}

    response = await fill_and_submit(app, fake_slack, form_id, **TYPED, **typed)

    _, preview = pushed_preview(fake_slack, response)
    facts = preview_facts(preview)
    assert "09:00 CET (08:00 UTC)" in facts  # Alice's zone is Europe/Berlin
    assert f"Needs 1 approval in <#{APPROVALS_CHANNEL}> before it goes out." in facts


async def test_back_returns_to_the_form_as_it_was_left_and_only_what_is_sent_last_goes_out(
    app, fake_slack, fake_onesignal, database
):
    form_id = await open_form(app, fake_slack)
    form_before = fake_slack.view(form_id)
    first = await fill_and_submit(app, fake_slack, form_id, **TYPED)
    preview_id, _ = pushed_preview(fake_slack, first)

    back = fake_slack.close_view(preview_id)  # the preview's Back

    assert back == form_before  # the app left the form alone: Slack keeps what was typed
    assert [c for c in fake_slack.calls_to("views.update") if c.args.get("view_id") == form_id][
        1:
    ] == []  # only the segments listed into it, before the submission
    typed = {**TYPED, const.BLOCK_COMPOSE_MESSAGE: "Version 2.4.1 is out"}
    second = await fill_and_submit(app, fake_slack, form_id, **typed)
    preview_id, preview = pushed_preview(fake_slack, second)
    assert "Version 2.4.1 is out" in str(preview["blocks"])
    await press_send(app, fake_slack, preview_id)
    drafted, sent = await all_sends(database)
    await wait_for_state(database, sent.short_id, SendState.SENT)
    [request] = creates(fake_onesignal)
    assert request.json["contents"] == {"en": "Version 2.4.1 is out"}
    assert drafted.state == SendState.DRAFT  # the first preview's draft never went out


async def test_send_pressed_twice_on_the_preview_sends_once(
    app, fake_slack, fake_onesignal, database
):
    form_id = await open_form(app, fake_slack)
    preview_id, _ = pushed_preview(
        fake_slack, await fill_and_submit(app, fake_slack, form_id, **TYPED)
    )

    await asyncio.gather(
        press_send(app, fake_slack, preview_id), press_send(app, fake_slack, preview_id)
    )

    [send] = await all_sends(database)
    await wait_for_state(database, send.short_id, SendState.SENT)
    await asyncio.sleep(0.2)  # time enough for a second delivery, were one coming
    assert len(creates(fake_onesignal)) == 1
    actions = await audit_actions(database)
    assert actions.count("send.scheduled") == 1 and actions.count("send.sent") == 1
    assert fake_slack.view(form_id) is None  # Send closed the form and its preview


async def test_the_form_then_its_preview_never_stack_more_views_than_slack_allows(
    app, fake_slack, database
):
    form_id = await open_form(app, fake_slack)

    for text in ("One", "Two", "Three"):  # preview, Back, change, preview again…
        typed = {**TYPED, const.BLOCK_COMPOSE_MESSAGE: text}
        preview_id, _ = pushed_preview(
            fake_slack, await fill_and_submit(app, fake_slack, form_id, **typed)
        )
        assert fake_slack.close_view(preview_id) is not None

    assert len(await all_sends(database)) == 3
    assert const.BLOCK_COMPOSE_MESSAGE in by_id(fake_slack.view(form_id))
