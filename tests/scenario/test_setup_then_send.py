"""A change made in `/push setup` applies to the very next send, however recently apps were read."""

import pytest
from pydantic import SecretStr

from bot import const
from storage import workspaces
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.scenario.sendkit import serve_sending
from tests.scenario.workspace import onesignal_settings

TEAM = DEFAULT_TEAM_ID
ADMIN = "U0ALICE"  # a Slack workspace admin in the fake


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, settings, database, keyring) as running:
        yield running


async def _send_now(app, message):
    """The reply to `/push send --yes` (the second app has nobody subscribed: it may fail)."""
    sent = await app.post_command(f'send --yes --segment "Subscribed Users" "{message}"')
    return (await sent.reply())["text"]


def _app_ids_of_creates(fake_onesignal):
    return [r.json["app_id"] for r in fake_onesignal.requests_to("POST", "/notifications")]


async def test_a_new_default_app_takes_the_next_send(
    app, fake_slack, fake_onesignal, database, keyring
):
    second = fake_onesignal.add_app("Second")
    register_secret(second.rest_api_key)
    async with database.sessions.begin() as session:
        await workspaces.add_app(
            session=session,
            keyring=keyring,
            team_id=TEAM,
            name="second",
            onesignal_app_id=second.id,
            api_key=SecretStr(second.rest_api_key),
            added_by=ADMIN,
        )
    first = await _send_now(app, "to the first default")  # the default app is read, and kept

    await app.post_command("setup", user=ADMIN)
    await fake_slack.wait_for("views.open")
    [view_id] = fake_slack._state.views
    click = signing.block_actions(
        action_id=const.ACTION_SETUP_DEFAULT_APP,
        user_id=ADMIN,
        team_id=TEAM,
        response_url="",
        value="second",
        view={"id": view_id, "callback_id": const.CALLBACK_SETUP},
    )
    assert (await app.post_action(click)).status_code == 200
    await fake_slack.wait_for("views.update")
    then = await _send_now(app, "to the new default")

    assert "App `default`" in first and "App `second`" in then
    assert _app_ids_of_creates(fake_onesignal) == [fake_onesignal.app.id, second.id]
