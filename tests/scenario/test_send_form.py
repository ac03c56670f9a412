"""`/push send` alone: the compose form opens right after the ack, offers the app's segments
(or typed names when OneSignal will not list them), shows the audience's reach, and sends on
submit; bad fields come back inline and nothing is written."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from bot import const
from commands.views.compose import WHEN_AT, WHEN_IN, WHEN_NOW, ComposeForm, compose_view
from storage import workspaces
from storage.models import SendState, utcnow
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.busy import held_by_another_writer
from tests.scenario.composekit import press_send, pushed_preview, told
from tests.scenario.sendkit import (
    ALICE,
    SEGMENT,
    all_sends,
    creates,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)

FIELD = const.ACTION_COMPOSE_FIELD
AUDIENCE = const.ACTION_COMPOSE_AUDIENCE
META = '{"channel": "C0GENERAL", "app": "default"}'


@pytest.fixture
def database(sqlite_database):
    """The form's logic does not depend on the backend: SQLite only."""
    return sqlite_database


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


def by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block.get("block_id"): block for block in view["blocks"]}


async def opened_form(app: Any, fake_slack: Any) -> tuple[str, dict[str, Any]]:
    """Run `/push send`; the view id and the form once its segments are filled in."""
    sent = await app.post_command("send")
    assert sent.response.status_code == 200
    opened = await fake_slack.wait_for("views.open")
    assert (
        opened.args["trigger_id"] and opened.args["view"]["callback_id"] == const.CALLBACK_COMPOSE
    )
    updated = await fake_slack.wait_for("views.update")
    return updated.args["view_id"], updated.args["view"]


def values(
    *,
    message: str | None = "Version 2 is out",
    title: str | None = None,
    segments: tuple[str, ...] = (SEGMENT,),
    excluded: tuple[str, ...] = (),
    users: str | None = None,
    when: str = WHEN_NOW,
    at: int | None = None,
    delay: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Slack's `view.state.values` of a filled-in compose form."""
    return {
        const.BLOCK_COMPOSE_TITLE: {FIELD: {"type": "plain_text_input", "value": title}},
        const.BLOCK_COMPOSE_MESSAGE: {FIELD: {"type": "plain_text_input", "value": message}},
        const.BLOCK_COMPOSE_SEGMENTS: {
            AUDIENCE: {
                "type": "multi_static_select",
                "selected_options": [{"value": s} for s in segments],
            }
        },
        const.BLOCK_COMPOSE_EXCLUDE: {
            AUDIENCE: {
                "type": "multi_static_select",
                "selected_options": [{"value": s} for s in excluded],
            }
        },
        const.BLOCK_COMPOSE_USERS: {AUDIENCE: {"type": "plain_text_input", "value": users}},
        const.BLOCK_COMPOSE_URL: {FIELD: {"type": "url_text_input", "value": None}},
        const.BLOCK_COMPOSE_IMAGE: {FIELD: {"type": "url_text_input", "value": None}},
        const.BLOCK_COMPOSE_WHEN: {
            FIELD: {"type": "radio_buttons", "selected_option": {"value": when}}
        },
        const.BLOCK_COMPOSE_AT: {FIELD: {"type": "datetimepicker", "selected_date_time": at}},
        const.BLOCK_COMPOSE_IN: {FIELD: {"type": "plain_text_input", "value": delay}},
    }


async def submit(
    app: Any, filled: dict[str, dict[str, Any]], apps: tuple[str, ...] = ("default",)
) -> Any:
    """Submit the compose form (`apps` offered, segments listed) with `filled` values."""
    payload = signing.view_submission(
        callback_id=const.CALLBACK_COMPOSE,
        user_id=ALICE,
        team_id=DEFAULT_TEAM_ID,
        values=filled,
        private_metadata=META,
    )
    form = ComposeForm(apps=apps, app="default", segments=(SEGMENT,), metadata=META)
    payload["view"]["blocks"] = compose_view(form)["blocks"]
    return await app.post_action(payload)


async def change_audience(
    app: Any, fake_slack: Any, view_id: str, view: dict[str, Any], filled: dict[str, Any]
) -> Any:
    """Change the segments of the open form to `filled`'s; the views.update that follows."""
    shown = {**view, "id": view_id, "hash": "h1", "state": {"values": filled}}

    payload = signing.block_actions(
        action_id=AUDIENCE,
        user_id=ALICE,
        team_id=DEFAULT_TEAM_ID,
        response_url="",
        block_id=const.BLOCK_COMPOSE_SEGMENTS,
        view=shown,
        element_type="multi_static_select",
    )
    assert (await app.post_action(payload)).status_code == 200
    return await fake_slack.wait_for("views.update", count=2)


def estimate_of(update: Any) -> str:
    """The reach line of an updated form."""
    return str(by_id(update.args["view"])[const.BLOCK_COMPOSE_ESTIMATE]["elements"][0]["text"])


async def test_the_form_opens_after_the_ack_with_the_apps_segments(app, fake_slack):
    _, view = await opened_form(app, fake_slack)

    segments = by_id(view)[const.BLOCK_COMPOSE_SEGMENTS]["element"]
    assert segments["type"] == "multi_static_select"
    assert {o["value"] for o in segments["options"]} == {
        "Subscribed Users",
        "Active Users",
        "Engaged Users",
        "Inactive Users",
    }
    assert const.BLOCK_COMPOSE_APP not in by_id(view)  # one app: no app menu


async def test_segments_are_typed_when_onesignal_will_not_list_them(
    app, fake_slack, fake_onesignal
):
    fake_onesignal.faults.statuses([402], path=f"/apps/{fake_onesignal.app.id}/segments")

    _, view = await opened_form(app, fake_slack)

    segments = by_id(view)[const.BLOCK_COMPOSE_SEGMENTS]
    assert segments["element"]["type"] == "plain_text_input"
    assert "Segments could not be listed" in segments["hint"]["text"]
    assert "HTTP 402" in segments["hint"]["text"]
    assert "Type segment names" in segments["hint"]["text"]


async def test_choosing_an_audience_shows_its_reach(app, fake_slack):
    view_id, view = await opened_form(app, fake_slack)

    update = await change_audience(app, fake_slack, view_id, view, values())

    assert estimate_of(update) == "Reaches about 600 subscriptions now."
    assert update.args["view_id"] == view_id and update.args["hash"] == "h1"


async def test_a_refused_audience_quoting_what_was_typed_shows_it_escaped(app, fake_slack):
    view_id, view = await opened_form(app, fake_slack)
    typed = values(segments=(), users="<!channel>" + "x" * 130)

    update = await change_audience(app, fake_slack, view_id, view, typed)

    estimate = estimate_of(update)
    assert "The user id '&lt;!channel&gt;xxx" in estimate and "the limit is 128" in estimate
    assert "<!channel>" not in estimate


async def test_an_app_removed_while_the_form_is_open_is_named_where_the_reach_shows(
    app, fake_slack, database
):
    view_id, view = await opened_form(app, fake_slack)
    async with database.sessions.begin() as session:
        await workspaces.remove_app(
            session=session, team_id=DEFAULT_TEAM_ID, name="default", actor="U0"
        )

    update = await change_audience(app, fake_slack, view_id, view, values())

    assert estimate_of(update) == (
        "There is no OneSignal app named `default` here, and none is set up yet: "
        "an admin adds one with `/push setup`."
    )
    assert fake_slack.calls_to("chat.postEphemeral") == []  # no apology for an error


async def test_clearing_the_audience_asks_for_one_instead_of_quoting_flags(app, fake_slack):
    view_id, view = await opened_form(app, fake_slack)

    update = await change_audience(app, fake_slack, view_id, view, values(segments=()))

    assert estimate_of(update) == "Pick an audience to see how many subscriptions it reaches."


async def test_a_submitted_form_is_previewed_and_its_send_sends_it_and_answers_in_the_channel(
    app, fake_slack, fake_onesignal, database
):
    response = await submit(app, values(title="Release"))

    preview_id, preview = pushed_preview(fake_slack, response)
    [draft] = await all_sends(database)
    assert draft.state == SendState.DRAFT and creates(fake_onesignal) == []
    await press_send(app, fake_slack, preview_id)
    send = await wait_for_state(database, draft.short_id, SendState.SENT)
    assert send.id == draft.id
    answer = await told(fake_slack, f"`{send.short_id}`", "was sent")
    assert answer["channel"] in ("C0GENERAL", "D0ALICE")  # D: delivered by the scheduler first
    [request] = creates(fake_onesignal)
    assert request.json["headings"] == {"en": "Release"}


async def test_pressing_send_twice_on_one_form_previews_one_draft(app, fake_slack, database):
    both = await asyncio.gather(submit(app, values()), submit(app, values()))
    again = await submit(app, values())  # pressed once more after Slack answered

    for response in (*both, again):
        _, preview = pushed_preview(fake_slack, response)
        assert preview["callback_id"] == const.CALLBACK_COMPOSE_PREVIEW
    [draft] = await all_sends(database)
    assert draft.state == SendState.DRAFT


async def test_a_form_meeting_a_busy_database_stores_nothing_and_says_so(
    app, fake_onesignal, database
):
    async with held_by_another_writer(database):
        response = await submit(app, values())

    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    message = answer["errors"][const.BLOCK_COMPOSE_MESSAGE]
    assert "PushOps is busy" in message and "nothing was stored" in message
    assert await all_sends(database) == []
    assert creates(fake_onesignal) == []


async def test_a_form_scheduled_with_the_picker_is_armed(app, fake_slack, database):
    due = utcnow() + timedelta(hours=3)

    response = await submit(app, values(when=WHEN_AT, at=int(due.timestamp())))

    preview_id, _ = pushed_preview(fake_slack, response)
    await press_send(app, fake_slack, preview_id)
    [send] = await all_sends(database)
    send = await wait_for_state(database, send.short_id, SendState.SCHEDULED)
    assert send.due_at is not None and abs((send.due_at - due).total_seconds()) < 1
    answer = await fake_slack.wait_for("chat.postEphemeral")
    assert "is scheduled" in text_of(answer.args)


@pytest.mark.parametrize(
    ("filled", "block", "words"),
    [
        (values(message=None), const.BLOCK_COMPOSE_MESSAGE, "write the text people will read"),
        (values(message="   "), const.BLOCK_COMPOSE_MESSAGE, "The message is empty"),
        (values(segments=()), const.BLOCK_COMPOSE_SEGMENTS, "Choose at least one segment"),
        (values(users="cust-1"), const.BLOCK_COMPOSE_USERS, "not both"),
        (values(title="T" * 5000), const.BLOCK_COMPOSE_MESSAGE, "The notification is too long"),
        (values(when=WHEN_AT), const.BLOCK_COMPOSE_AT, "Pick a date and time"),
        (values(when=WHEN_AT, at=1_600_000_000), const.BLOCK_COMPOSE_AT, "That time has passed"),
        (values(when=WHEN_IN, delay="soon"), const.BLOCK_COMPOSE_IN, "as a delay"),
        (values(when=WHEN_IN, delay="60d"), const.BLOCK_COMPOSE_IN, "more than 30 days"),
        (
            values(when=WHEN_AT, at=int((utcnow() + timedelta(days=40)).timestamp())),
            const.BLOCK_COMPOSE_AT,
            "That is more than 30 days ahead. PushOps schedules sends at most 30 days ahead; "
            "the latest you can schedule is ",
        ),
    ],
    ids=[
        "no message",
        "blank message",
        "no audience",
        "segments and users",
        "5000-character title",
        "no time",
        "past time",
        "unparseable delay",
        "delay too long",
        "picked time too far ahead",
    ],
)
async def test_bad_fields_come_back_inline_and_nothing_is_written(
    app, fake_onesignal, database, filled, block, words
):
    response = await submit(app, filled)

    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert words in answer["errors"][block], answer["errors"]
    assert "--" not in answer["errors"][block]  # the form's fields, never the command's flags
    assert await all_sends(database) == []
    assert creates(fake_onesignal) == []


@pytest.mark.parametrize(
    ("filled", "block", "words"),
    [
        (
            values(segments=()),
            const.BLOCK_COMPOSE_SEGMENTS,
            "Choose at least one segment, or type users' external ids: PushOps never sends to "
            "everyone by default.",
        ),
        (
            values(segments=(), excluded=("Inactive",)),
            const.BLOCK_COMPOSE_SEGMENTS,
            "Excluded segments need an included one: choose it under Segments "
            "(for example Subscribed Users).",
        ),
        (
            values(segments=(), excluded=("Inactive",), users="cust-1"),
            const.BLOCK_COMPOSE_EXCLUDE,
            "Excluded segments work only with segments, not with users: clear Excluded "
            "segments, or send to segments instead.",
        ),
    ],
    ids=["no audience", "only excluded segments", "excluded segments and users"],
)
async def test_an_audience_the_form_refuses_is_said_in_the_forms_words(
    app, database, filled, block, words
):
    response = await submit(app, filled)

    assert response.json() == {"response_action": "errors", "errors": {block: words}}
    assert await all_sends(database) == []


async def _add_shop(fake_onesignal, database, keyring):
    """A second OneSignal app, `shop`, in the workspace."""
    shop = fake_onesignal.add_app("Shop")
    async with database.sessions.begin() as session:
        await workspaces.add_app(
            session=session,
            keyring=keyring,
            team_id=DEFAULT_TEAM_ID,
            name="shop",
            onesignal_app_id=shop.id,
            api_key=SecretStr(register_secret(shop.rest_api_key)),
            added_by=ALICE,
        )
    return shop


async def _replace_default_app_with_shop(fake_onesignal, database, keyring):
    await _add_shop(fake_onesignal, database, keyring)
    async with database.sessions.begin() as session:
        await workspaces.remove_app(
            session=session, team_id=DEFAULT_TEAM_ID, name="default", actor="U0"
        )


async def test_an_app_removed_before_the_form_is_sent_is_refused_in_the_forms_words(
    app, fake_onesignal, database, keyring
):
    await _replace_default_app_with_shop(fake_onesignal, database, keyring)

    response = await submit(app, values())

    assert response.json() == {
        "response_action": "errors",
        "errors": {
            const.BLOCK_COMPOSE_MESSAGE: "There is no OneSignal app named `default` here. "
            "Close this form and run `/push send` again to choose one: `shop`."
        },
    }
    assert await all_sends(database) == []


async def test_a_form_offering_apps_points_to_its_menu_when_the_chosen_one_is_gone(
    app, fake_onesignal, database, keyring
):
    await _replace_default_app_with_shop(fake_onesignal, database, keyring)

    response = await submit(app, values(), apps=("default", "shop"))

    assert response.json()["errors"] == {
        const.BLOCK_COMPOSE_APP: "There is no OneSignal app named `default` here. "
        "Choose another under OneSignal app: `shop`."
    }


async def test_with_two_apps_the_form_offers_a_choice_and_lists_the_chosen_apps_segments(
    app, fake_slack, fake_onesignal, database, keyring
):
    shop = await _add_shop(fake_onesignal, database, keyring)
    fake_onesignal.add_segment(shop.id, "Shoppers", size=42)
    view_id, view = await opened_form(app, fake_slack)
    menu = by_id(view)[const.BLOCK_COMPOSE_APP]["element"]
    assert [o["value"] for o in menu["options"]] == ["default", "shop"]
    assert menu["initial_option"]["value"] == "default"
    chosen = {const.ACTION_COMPOSE_APP: {"selected_option": {"value": "shop"}}}
    state = {const.BLOCK_COMPOSE_APP: chosen}

    payload = signing.block_actions(
        action_id=const.ACTION_COMPOSE_APP,
        user_id=ALICE,
        team_id=DEFAULT_TEAM_ID,
        response_url="",
        block_id=const.BLOCK_COMPOSE_APP,
        view={**view, "id": view_id, "hash": "h2", "state": {"values": state}},
        element_type="static_select",
    )
    await app.post_action(payload)

    update = await fake_slack.wait_for("views.update", count=2)
    segments = by_id(update.args["view"])[const.BLOCK_COMPOSE_SEGMENTS]["element"]
    assert [o["value"] for o in segments["options"]] == ["Shoppers"]
    assert '"app": "shop"' in update.args["view"]["private_metadata"]


async def test_without_any_app_the_form_does_not_open_and_says_how_to_add_one(
    app, fake_slack, database
):
    async with database.sessions.begin() as session:
        await workspaces.remove_app(
            session=session, team_id=DEFAULT_TEAM_ID, name="default", actor="U0"
        )

    reply = await (await app.post_command("send")).reply()

    assert reply["text"].startswith(
        "No OneSignal app is set up in this workspace yet: an admin adds one with `/push setup`."
    )
    assert fake_slack.calls_to("views.open") == []
