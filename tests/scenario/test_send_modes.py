"""A send in the other ways PushOps runs: multi-workspace OAuth mode (tokens per installed
workspace, also for the DM told later) and Socket Mode."""

import pytest
from pydantic import SecretStr

from storage import workspaces
from storage.models import SendState
from tests.fakes.slack import DEFAULT_APP_TOKEN, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.plugins.database import register_secret
from tests.plugins.slack import make_settings
from tests.scenario.sendkit import (
    SEGMENT,
    all_sends,
    creates,
    dm_to,
    only_send,
    serve_sending,
    text_of,
    wait_for_state,
)
from tests.scenario.test_oauth import NEW_TEAM, _install_page, _redirect
from tests.scenario.workspace import onesignal_settings

NEWBIE = "U0NEWBIE"


@pytest.fixture
def database(sqlite_database):
    """Both modes reach the same storage code: SQLite only."""
    return sqlite_database


async def test_a_send_in_oauth_mode_uses_the_installed_workspace(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    settings = make_settings(
        fake_slack,
        tmp_path,
        slack_bot_token=None,
        slack_client_id=DEFAULT_CLIENT_ID,
        slack_client_secret=DEFAULT_CLIENT_SECRET,
        onesignal_api_url=fake_onesignal.url,
    )
    async with serve_sending(serve_pushops, settings, database, keyring) as app:
        _, state, cookie = await _install_page(app)
        await _redirect(app, fake_slack.issue_oauth_code(NEW_TEAM), state, cookie)
        fake_slack.add_user(NEWBIE, team_id=NEW_TEAM, tz="Asia/Tokyo")
        async with database.sessions.begin() as session:
            await workspaces.ensure_workspace(session=session, team_id=NEW_TEAM)
            await workspaces.add_app(
                session=session,
                keyring=keyring,
                team_id=NEW_TEAM,
                name="main",
                onesignal_app_id=fake_onesignal.app.id,
                api_key=SecretStr(register_secret(fake_onesignal.app.rest_api_key)),
                added_by=NEWBIE,
                make_default=True,
            )

        sent = await app.post_command(
            f'send --yes --in 1s --segment "{SEGMENT}" Hello', team=NEW_TEAM, user=NEWBIE
        )

        reply = await sent.reply()
        [send] = await all_sends(database, NEW_TEAM)
        assert "is scheduled" in text_of(reply) and "JST" in text_of(reply)
        await wait_for_state(database, send.short_id, SendState.SENT, team_id=NEW_TEAM)
        dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(NEWBIE))
        assert dm.token.startswith(f"xoxb-{NEW_TEAM}-")
        assert "was sent" in dm.args["text"] and send.short_id in dm.args["text"]
        assert len(creates(fake_onesignal)) == 1


async def test_a_send_over_socket_mode(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    settings = onesignal_settings(
        fake_slack, fake_onesignal, tmp_path, slack_app_token=DEFAULT_APP_TOKEN
    )
    async with serve_sending(serve_pushops, settings, database, keyring, socket_mode=True) as app:
        sent = await app.socket_command(f'send --yes --segment "{SEGMENT}" Hello')

        assert sent.ack is not None and "envelope_id" in sent.ack
        reply = await sent.reply()
        send = await only_send(database)
        assert f"`{send.short_id}`" in text_of(reply) and "was sent" in text_of(reply)
        assert len(creates(fake_onesignal)) == 1
