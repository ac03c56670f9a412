"""Multi-workspace mode: install through /slack/install and /slack/oauth_redirect, then serve
the installed workspace with its own bot token; the auth.test result is cached."""

import asyncio
import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from bot import const
from storage.db import Database
from storage.models import SLACK_BOTS, SLACK_OAUTH_STATES
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.plugins.slack import PushOps, default_services, make_settings

NEW_TEAM = "T0INSTALLED"


@pytest.fixture
async def oauth_app(serve_pushops, fake_slack, sqlite_database, keyring, tmp_path):
    settings = make_settings(
        fake_slack,
        tmp_path,
        slack_bot_token=None,
        slack_client_id=DEFAULT_CLIENT_ID,
        slack_client_secret=DEFAULT_CLIENT_SECRET,
    )
    services = default_services(settings, sqlite_database, keyring)
    async with serve_pushops(settings, services=services) as running:
        yield running


async def _install_page(app: PushOps) -> tuple[str, str, str]:
    """The "Add to Slack" link of /slack/install, its state, and the state cookie."""
    page = await app.http.get(const.PATH_INSTALL)
    assert page.status_code == 200
    found = re.search(r'href="([^"]+oauth/v2/authorize[^"]*)"', page.text)
    assert found is not None, page.text
    link = html.unescape(found.group(1))
    state = parse_qs(urlsplit(link).query)["state"][0]
    cookie = page.headers["set-cookie"].split(";")[0]
    return link, state, cookie


async def _redirect(app: PushOps, code: str, state: str, cookie: str) -> httpx.Response:
    """Slack sending the installer's browser back with `code`."""
    return await app.http.get(
        const.PATH_OAUTH_REDIRECT, params={"code": code, "state": state}, headers={"Cookie": cookie}
    )


async def _bots_eventually_gone(database: Database) -> bool:
    """Whether the bot rows are gone once the event's listener (after its ack) has run."""
    for _ in range(200):
        async with database.engine.connect() as connection:
            if not (await connection.execute(sa.select(SLACK_BOTS.c.team_id))).first():
                return True
        await asyncio.sleep(0.01)
    return False


async def test_install_link_points_at_slack_next_to_the_api_url_with_our_scopes(
    oauth_app, fake_slack
):
    link, _, _ = await _install_page(oauth_app)

    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == fake_slack.base_url
    assert parts.path == "/oauth/v2/authorize"
    assert query["client_id"] == [DEFAULT_CLIENT_ID]
    assert query["scope"] == [",".join(const.BOT_SCOPES)]


async def test_an_installed_workspace_is_served_with_its_own_token(
    oauth_app, fake_slack, sqlite_database
):
    _, state, cookie = await _install_page(oauth_app)
    done = await _redirect(oauth_app, fake_slack.issue_oauth_code(NEW_TEAM), state, cookie)

    assert done.status_code == 200
    exchange = await fake_slack.wait_for("oauth.v2.access")
    assert "code" in exchange.args
    sent = await oauth_app.post_command("help", team=NEW_TEAM)
    assert sent.response.status_code == 200
    assert "/push send" in (await sent.reply())["text"]
    auth = fake_slack.calls_to("auth.test")
    assert auth and auth[-1].token.startswith(f"xoxb-{NEW_TEAM}-")

    async with sqlite_database.engine.connect() as connection:
        [stored] = (await connection.execute(sa.select(SLACK_BOTS.c.bot_token))).scalars()
    assert stored.startswith("v1:") and auth[-1].token not in stored  # sealed at rest

    calls_before = len(fake_slack.calls_to("auth.test"))
    again = await oauth_app.post_command("help", team=NEW_TEAM)
    await again.reply()
    assert len(fake_slack.calls_to("auth.test")) == calls_before  # cached


async def test_a_workspace_that_never_installed_is_told_so(oauth_app, fake_slack):
    sent = await oauth_app.post_command("help", team="T0STRANGER")

    assert sent.response.status_code == 200
    reply = await sent.reply()
    assert "PushOps is not installed in this workspace" in reply["text"]


async def test_a_replayed_install_state_is_refused(oauth_app, fake_slack):
    _, state, cookie = await _install_page(oauth_app)

    first = await _redirect(oauth_app, fake_slack.issue_oauth_code(NEW_TEAM), state, cookie)
    second = await _redirect(oauth_app, fake_slack.issue_oauth_code(NEW_TEAM), state, cookie)

    assert first.status_code == 200
    assert second.status_code == 401  # Bolt refuses a state it already consumed
    assert len(fake_slack.calls_to("oauth.v2.access")) == 1


async def test_uninstalling_forgets_the_workspace(oauth_app, fake_slack, sqlite_database):
    _, state, cookie = await _install_page(oauth_app)
    await _redirect(oauth_app, fake_slack.issue_oauth_code(NEW_TEAM), state, cookie)
    await fake_slack.wait_for("auth.test")  # the installation is complete
    for bot_token in [c.token for c in fake_slack.calls_to("auth.test") if c.token]:
        fake_slack.revoke(bot_token)  # Slack revokes the tokens before it tells the app

    response = await oauth_app.post_event(
        signing.event_callback({"type": const.EVENT_APP_UNINSTALLED}, team_id=NEW_TEAM)
    )

    assert response.status_code == 200
    assert await _bots_eventually_gone(sqlite_database)
    sent = await oauth_app.post_command("help", team=NEW_TEAM)
    assert "not installed in this workspace" in (await sent.reply())["text"]


async def test_expired_install_states_are_deleted_when_a_new_one_is_issued(
    oauth_app, sqlite_database
):
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=11)
    async with sqlite_database.engine.begin() as connection:  # links nobody followed in time
        await connection.execute(
            SLACK_OAUTH_STATES.insert(),
            [{"state": f"stale-{n}", "expire_at": past} for n in range(50)],
        )

    _, state, _ = await _install_page(oauth_app)
    await _install_page(oauth_app)

    async with sqlite_database.engine.connect() as connection:
        kept = list(await connection.scalars(sa.select(SLACK_OAUTH_STATES.c.state)))
    assert len(kept) == 2 and state in kept  # only the two live links
