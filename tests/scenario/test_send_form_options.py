"""The compose form's OneSignal options through the real door: the template picker lists the
app's templates and shows the chosen one's text, "Add a language" adds its fields, and a
submitted form carries template, languages and delivery options to OneSignal, the row and
the audit; a bad option comes back inline and nothing is written."""

from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from commands.views import compose_options as opts
from commands.views.compose import ComposeForm, compose_view
from storage.models import AuditEvent, SendState
from tests.fakes import signing
from tests.fakes.onesignal.shapes import check_notification
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.onesignal.spec import check_request
from tests.scenario.composekit import press_send, pushed_preview
from tests.scenario.sendkit import (
    ALICE,
    SEGMENT,
    all_sends,
    audit_actions,
    creates,
    serve_sending,
    settings,
    wait_for_state,
)
from tests.scenario.test_send_form import META, by_id, opened_form, values

FIELD = opts.ACTION_FIELD


@pytest.fixture
def database(sqlite_database):
    """The form's logic does not depend on the backend: SQLite only."""
    return sqlite_database


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


@pytest.fixture
def digest(fake_onesignal) -> dict[str, Any]:
    return fake_onesignal.add_template(
        fake_onesignal.app.id,
        "Weekly digest",
        content={"contents": {"en": "This week in the app"}, "headings": {"en": "Digest"}},
    )


def option_values(
    *,
    template: str | None = None,
    languages: dict[str, tuple[str | None, str | None]] | None = None,
    delivery: str = opts.DELIVERY_AT_ONCE,
    local_time: str | None = None,
    throttle: str | None = None,
    ttl: str | None = None,
    priority: str | None = None,
    buttons: str | None = None,
    data: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Slack's state values of the options part of the form."""
    state: dict[str, dict[str, Any]] = {
        opts.BLOCK_TEMPLATE: {
            opts.ACTION_TEMPLATE: {
                "type": "static_select",
                "selected_option": {"value": template} if template else None,
            }
        },
        opts.BLOCK_DELIVERY: {
            FIELD: {"type": "radio_buttons", "selected_option": {"value": delivery}}
        },
        opts.BLOCK_LOCAL_TIME: {FIELD: {"type": "timepicker", "selected_time": local_time}},
        opts.BLOCK_THROTTLE: {FIELD: {"type": "number_input", "value": throttle}},
        opts.BLOCK_TTL: {FIELD: {"type": "plain_text_input", "value": ttl}},
        opts.BLOCK_PRIORITY: {
            FIELD: {
                "type": "static_select",
                "selected_option": {"value": priority} if priority else None,
            }
        },
        opts.BLOCK_BUTTONS: {FIELD: {"type": "plain_text_input", "value": buttons}},
        opts.BLOCK_DATA: {FIELD: {"type": "plain_text_input", "value": data}},
    }
    for code, (text, title) in (languages or {}).items():
        state[f"{opts.TEXT_PREFIX}{code}"] = {FIELD: {"type": "plain_text_input", "value": text}}
        state[f"{opts.TITLE_PREFIX}{code}"] = {FIELD: {"type": "plain_text_input", "value": title}}
    return state


async def submit(app: Any, filled: dict[str, dict[str, Any]], options: opts.OptionsForm) -> Any:
    payload = signing.view_submission(
        callback_id=const.CALLBACK_COMPOSE,
        user_id=ALICE,
        team_id=DEFAULT_TEAM_ID,
        values=filled,
        private_metadata=META,
    )
    form = ComposeForm(
        apps=("default",), app="default", segments=(SEGMENT,), metadata=META, options=options
    )
    payload["view"]["blocks"] = compose_view(form)["blocks"]
    return await app.post_action(payload)


async def act(
    app: Any,
    fake_slack: Any,
    view_id: str,
    view: dict[str, Any],
    *,
    action_id: str,
    block_id: str,
    chosen: str,
    state: dict[str, Any] | None = None,
) -> Any:
    """Choose `chosen` in a select of the open form; the views.update that follows."""
    shown = {**view, "id": view_id, "hash": "h1", "state": {"values": state or {}}}
    payload = signing.block_actions(
        action_id=action_id,
        user_id=ALICE,
        team_id=DEFAULT_TEAM_ID,
        response_url="",
        block_id=block_id,
        view=shown,
        element_type="static_select",
    )
    payload["actions"][0]["selected_option"] = {"value": chosen}
    assert (await app.post_action(payload)).status_code == 200
    return await fake_slack.wait_for("views.update", count=2)


async def test_the_form_offers_the_apps_templates_languages_and_delivery_options(
    app, fake_slack, digest
):
    _, view = await opened_form(app, fake_slack)

    blocks = by_id(view)
    picker = blocks[opts.BLOCK_TEMPLATE]["element"]["options"]
    assert [(o["value"], o["text"]["text"]) for o in picker] == [
        (opts.NO_TEMPLATE, "No template"),
        (digest["id"], "Weekly digest"),
    ]
    assert blocks[const.BLOCK_COMPOSE_MESSAGE]["optional"] is True  # the template may give it
    adding = blocks[opts.BLOCK_ADD_LANGUAGE]["elements"][0]
    assert adding["placeholder"]["text"] == "Add a language"
    assert {"de", "fr", "zh-Hans"} <= {o["value"] for o in adding["options"]}
    for block_id in (opts.BLOCK_DELIVERY, opts.BLOCK_LOCAL_TIME, opts.BLOCK_BUTTONS):
        assert block_id in blocks


async def test_without_templates_there_is_no_picker_and_the_message_is_required(app, fake_slack):
    _, view = await opened_form(app, fake_slack)

    assert opts.BLOCK_TEMPLATE not in by_id(view)
    assert by_id(view)[const.BLOCK_COMPOSE_MESSAGE]["optional"] is False


async def test_add_a_language_adds_its_text_and_title(app, fake_slack):
    view_id, view = await opened_form(app, fake_slack)

    update = await act(
        app,
        fake_slack,
        view_id,
        view,
        action_id=opts.ACTION_ADD_LANGUAGE,
        block_id=opts.BLOCK_ADD_LANGUAGE,
        chosen="de",
    )

    blocks = by_id(update.args["view"])
    assert blocks["compose_text_de"]["label"]["text"] == "Message in German (de)"
    assert blocks["compose_title_de"]["label"]["text"] == "Title in German (de)"
    left = blocks[opts.BLOCK_ADD_LANGUAGE]["elements"][0]["options"]
    assert "de" not in {o["value"] for o in left}


async def choose_template(app: Any, fake_slack: Any, template_id: str) -> tuple[Any, Any]:
    """Open the form and pick the template: (its state values, the views.update that follows)."""
    view_id, view = await opened_form(app, fake_slack)
    state = option_values(template=template_id)
    update = await act(
        app,
        fake_slack,
        view_id,
        view,
        action_id=opts.ACTION_TEMPLATE,
        block_id=opts.BLOCK_TEMPLATE,
        chosen=template_id,
        state=state,
    )
    return state, update


async def test_choosing_a_template_shows_its_text(app, fake_slack, digest):
    _, update = await choose_template(app, fake_slack, digest["id"])

    shown = by_id(update.args["view"])[opts.BLOCK_TEMPLATE_TEXT]["elements"][0]["text"]
    assert shown == "*Digest* This week in the app"


async def test_a_template_chosen_in_the_form_is_previewed_without_asking_onesignal_again(
    app, fake_slack, fake_onesignal, digest
):
    """The chosen template's text travels in the form: a submit after PushOps' brief memory of
    it ran out needs no OneSignal call before Slack's ack, even with OneSignal stalled."""
    state, update = await choose_template(app, fake_slack, digest["id"])
    chosen_view = update.args["view"]
    app.services.sends.templates.forget(DEFAULT_TEAM_ID)  # its memory ran out
    asked = len(fake_onesignal.requests_to("GET", "/templates"))
    stalled = fake_onesignal.faults.hold(method="GET")
    try:
        payload = signing.view_submission(
            callback_id=const.CALLBACK_COMPOSE,
            user_id=ALICE,
            team_id=DEFAULT_TEAM_ID,
            values=values(message=None) | state,
            private_metadata=chosen_view["private_metadata"],
        )
        payload["view"]["blocks"] = chosen_view["blocks"]
        response = await app.post_action(payload)
    finally:
        stalled.release()

    _, preview = pushed_preview(app.fake, response)
    assert "This week in the app" in str(preview["blocks"])
    assert len(fake_onesignal.requests_to("GET", "/templates")) == asked


async def test_a_form_with_a_template_languages_and_options_sends_them_all(
    app, fake_onesignal, database, digest
):
    filled = values(message=None) | option_values(
        template=digest["id"],
        languages={"de": ("Diese Woche", "Zusammenfassung"), "fr": ("Cette semaine", None)},
        delivery=opts.DELIVERY_LOCAL,
        local_time="09:00",
        throttle="250",
        ttl="1d",
        priority="high",
        buttons="Open|https://example.com/digest",
        data="screen=digest",
    )
    shown = opts.OptionsForm(templates=((digest["id"], "Weekly digest"),), languages=("de", "fr"))

    response = await submit(app, filled, shown)

    preview_id, preview = pushed_preview(app.fake, response)
    assert "Zusammenfassung" in str(preview["blocks"])  # its languages and options shown
    await press_send(app, app.fake, preview_id)
    [send] = await all_sends(database)
    await wait_for_state(database, send.short_id, SendState.SENT)
    [request] = creates(fake_onesignal)
    check_request("create_notification", request)
    check_notification(request.json)
    body = request.json
    assert body["template_id"] == digest["id"]
    assert body["contents"] == {
        "en": "This week in the app",  # the template's English, as the fallback
        "de": "Diese Woche",
        "fr": "Cette semaine",
    }
    assert body["headings"] == {"en": "Digest", "de": "Zusammenfassung"}
    assert body["delayed_option"] == "timezone" and body["delivery_time_of_day"] == "09:00"
    assert body["throttle_rate_per_minute"] == "250" and body["ttl"] == 86400
    assert body["priority"] == 10
    assert body["web_buttons"] == [
        {"id": "button-1", "text": "Open", "url": "https://example.com/digest"}
    ]
    assert body["data"] == {
        "screen": "digest",
        "button_urls": {"button-1": "https://example.com/digest"},
    }
    async with database.sessions() as session:
        query = sa.select(AuditEvent.details).where(AuditEvent.action == "send.created")
        [details] = list(await session.scalars(query))
    assert details["template"]["name"] == "Weekly digest"
    assert details["languages"] == ["en", "de", "fr"]
    assert details["options"]["local_time"] == "09:00"


@pytest.mark.parametrize(
    ("options", "block", "words"),
    [
        ({"buttons": "Open"}, opts.BLOCK_BUTTONS, "has no link"),
        ({"data": "screen"}, opts.BLOCK_DATA, "is not KEY=VALUE"),
        ({"ttl": "forever"}, opts.BLOCK_TTL, "The time to live"),
        ({"delivery": opts.DELIVERY_LOCAL}, opts.BLOCK_LOCAL_TIME, "is not a time of day"),
    ],
)
async def test_a_bad_option_comes_back_inline_and_nothing_is_written(
    app, fake_onesignal, database, options, block, words
):
    response = await submit(app, values() | option_values(**options), opts.OptionsForm())

    answer = response.json()
    assert answer["response_action"] == "errors"
    assert words in answer["errors"][block]
    assert await all_sends(database) == []
    assert "send.created" not in await audit_actions(database)
    assert creates(fake_onesignal) == []


async def test_a_language_without_english_comes_back_inline(app, fake_onesignal, database):
    filled = values(message=None) | option_values(languages={"de": ("Hallo", None)})

    response = await submit(app, filled, opts.OptionsForm(languages=("de",)))

    answer = response.json()
    assert answer["response_action"] == "errors"
    assert "The message is empty" in answer["errors"][const.BLOCK_COMPOSE_MESSAGE]
    assert await all_sends(database) == []


async def test_the_same_form_submitted_again_with_only_an_option_changed_previews_a_new_draft(
    app, database
):
    shown = opts.OptionsForm(languages=("de", "fr"))
    first = values() | option_values(throttle="250")
    second = values() | option_values(throttle="500")  # after the preview's Back

    previews = [pushed_preview(app.fake, await submit(app, v, shown)) for v in (first, second)]

    drafts = await all_sends(database)
    assert len(drafts) == 2 and previews[0][0] != previews[1][0]
    assert {d.options.get("throttle") for d in drafts} == {250, 500}
