"""The shortcuts: "Send as push" on a Slack message opens the compose form with the message as
a phone would show it (people and channels by name, links as their words, no formatting
marks); "Compose a push" opens it empty; who may not send is told so and gets no form."""

from typing import Any

import pytest

from bot import const
from commands.access import forget_team
from storage import workspaces
from storage.models import MemberRole, SendState
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.composekit import (
    by_id,
    initial_message,
    press_send,
    pushed_preview,
    shown_values,
    submit_shown,
)
from tests.scenario.sendkit import (
    ALICE,
    SEGMENT,
    all_sends,
    creates,
    serve_sending,
    settings,
    wait_for_state,
)

MEMBER = "U0MEMBER"
SOURCE = (
    "*Release 2.4* is out, thanks <@U0BOB> and <@U0DANA>! "
    "Notes in <#C0RELEASES|releases> and <https://example.com/notes?a=1&amp;b=2|the _notes_>; "
    "mail <mailto:help@example.com|help@example.com> &amp; see <https://example.com/docs>.\n"
    "&gt; ~old~ `code` _soon_ <!here>"
)
SHOWN = (
    "Release 2.4 is out, thanks @Bob Builder and @dana! "
    "Notes in #releases and the _notes_; "
    "mail help@example.com & see https://example.com/docs.\n"
    "old code soon @here"
)


@pytest.fixture
def database(sqlite_database):
    """Opening a form does not depend on the backend: SQLite only."""
    return sqlite_database


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        fake_slack.add_user("U0BOB", name="", real_name="Bob Builder")
        fake_slack.add_user("U0DANA", name="dana")
        fake_slack.add_user(MEMBER)
        yield running


async def use_on_message(app: Any, text: str, *, user: str = ALICE) -> str:
    """Use "Send as push" on a message saying `text`; the shortcut's response_url."""
    response_url = app.fake.new_response_url()
    payload = signing.message_shortcut(
        callback_id=const.CALLBACK_SEND_AS_PUSH,
        user_id=user,
        team_id=DEFAULT_TEAM_ID,
        response_url=response_url,
        message={"text": text, "user": "U0BOB"},
    )
    response = await app.post_action(payload)
    assert response.status_code == 200 and response.text == ""
    return response_url


async def test_send_as_push_opens_the_form_with_the_message_as_a_phone_shows_it(app, fake_slack):
    await use_on_message(app, SOURCE)

    opened = await fake_slack.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == const.CALLBACK_COMPOSE
    assert initial_message(opened.args["view"]) == SHOWN
    filled = await fake_slack.wait_for("views.update")  # the app's segments listed into it
    assert initial_message(filled.args["view"]) == SHOWN
    segments = by_id(filled.args["view"])[const.BLOCK_COMPOSE_SEGMENTS]["element"]
    assert segments["type"] == "multi_static_select"
    assert '"channel": "C0GENERAL"' in filled.args["view"]["private_metadata"]


async def test_a_message_longer_than_a_field_starts_the_form_shortened(app, fake_slack):
    await use_on_message(app, "word " * 1000)

    opened = await fake_slack.wait_for("views.open")
    message = initial_message(opened.args["view"])
    assert message is not None and len(message) == 3000 and message.endswith("…")


async def test_compose_a_push_opens_an_empty_form(app, fake_slack):
    payload = signing.global_shortcut(
        callback_id=const.CALLBACK_COMPOSE_PUSH, user_id=ALICE, team_id=DEFAULT_TEAM_ID
    )

    response = await app.post_action(payload)

    assert response.status_code == 200
    opened = await fake_slack.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == const.CALLBACK_COMPOSE
    assert initial_message(opened.args["view"]) is None
    assert '"channel": null' in opened.args["view"]["private_metadata"]


async def test_who_may_not_send_is_told_so_and_gets_no_form(app, fake_slack, database):
    async with database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=DEFAULT_TEAM_ID)
        await workspaces.add_member(
            session=session,
            team_id=DEFAULT_TEAM_ID,
            subject_id=ALICE,
            role=MemberRole.SENDER,
            actor=ALICE,
        )
    forget_team(app.services, DEFAULT_TEAM_ID)

    response_url = await use_on_message(app, "Hello", user=MEMBER)

    reply = await fake_slack.wait_for_reply(response_url)
    assert reply["text"].startswith("Only PushOps senders can send notifications")
    assert reply["response_type"] == "ephemeral"
    assert fake_slack.calls_to("views.open") == []


async def test_a_message_sent_as_push_goes_out_as_it_was_previewed(
    app, fake_slack, fake_onesignal, database
):
    await use_on_message(app, SOURCE)
    form_id = (await fake_slack.wait_for("views.update")).args["view_id"]
    shown = fake_slack.view(form_id)

    typed = shown_values(shown, **{const.BLOCK_COMPOSE_SEGMENTS: (SEGMENT,)})
    preview_id, preview = pushed_preview(
        fake_slack, await submit_shown(app, fake_slack, form_id, typed)
    )
    await press_send(app, fake_slack, preview_id)

    [send] = await all_sends(database)
    await wait_for_state(database, send.short_id, SendState.SENT)
    [request] = creates(fake_onesignal)
    assert request.json["contents"] == {"en": SHOWN}
