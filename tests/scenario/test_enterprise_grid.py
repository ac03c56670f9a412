"""PushOps in an Enterprise Grid org (OAuth mode): installed in one of the org's workspaces or
org-wide, the bot still finds its token for what it says later, outside any request (the
requester's DM when a scheduled send has gone out)."""

from typing import Any

import pytest
from pydantic import SecretStr

from storage import queries
from storage.models import SendState
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.plugins.database import register_secret
from tests.plugins.slack import PushOps, SentCommand, make_settings
from tests.scenario.sendkit import (
    SEGMENT,
    all_sends,
    creates,
    dm_to,
    serve_sending,
    text_of,
    wait_for_state,
)
from tests.scenario.test_oauth import _install_page, _redirect

# slack_sdk's oauth.v2.access call still uses aiohttp's BasicAuth; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

ORG = "E0GRIDORG"
GRID_TEAM = "T0GRIDWS"
MEMBER = "U0GRIDMEMBER"


@pytest.fixture
def database(sqlite_database):
    """The installation store reaches the same storage code on either database: SQLite only."""
    return sqlite_database


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    settings = make_settings(
        fake_slack,
        tmp_path,
        slack_bot_token=None,
        slack_client_id=DEFAULT_CLIENT_ID,
        slack_client_secret=DEFAULT_CLIENT_SECRET,
        onesignal_api_url=fake_onesignal.url,
    )
    async with serve_sending(serve_pushops, settings, database, keyring) as running:
        fake_slack.add_user(MEMBER, team_id=GRID_TEAM, tz="Europe/Paris")
        yield running


async def _install(app: PushOps, code: str) -> None:
    _, state, cookie = await _install_page(app)
    response = await _redirect(app, code, state, cookie)
    assert response.status_code == 200, response.text


async def _command(app: PushOps, text: str, *, org_wide: bool = False) -> SentCommand:
    """`/push <text>` from MEMBER in GRID_TEAM, a workspace of the Grid org ORG."""
    response_url = app.fake.new_response_url()
    fields = signing.slash_command(
        text=text, response_url=response_url, user_id=MEMBER, team_id=GRID_TEAM, enterprise_id=ORG
    )
    fields["is_enterprise_install"] = "true" if org_wide else "false"
    response = await app.post_signed(signing.form_body(fields))
    assert response.status_code == 200
    return SentCommand(fake=app.fake, response_url=response_url, response=response)


async def _add_app(database: Any, keyring: Any, fake_onesignal: Any) -> None:
    async with database.sessions.begin() as session:
        await queries.add_app(
            session=session,
            keyring=keyring,
            team_id=GRID_TEAM,
            name="main",
            onesignal_app_id=fake_onesignal.app.id,
            api_key=SecretStr(register_secret(fake_onesignal.app.rest_api_key)),
            added_by=MEMBER,
        )


async def _scheduled_send_is_told_by_dm(
    app: PushOps, fake_slack: Any, fake_onesignal: Any, database: Any, org_wide: bool
) -> Any:
    sent = await _command(app, f'send --yes --in 1s --segment "{SEGMENT}" Hello', org_wide=org_wide)

    assert "is scheduled" in text_of(await sent.reply())
    [send] = await all_sends(database, GRID_TEAM)
    await wait_for_state(database, send.short_id, SendState.SENT, team_id=GRID_TEAM)
    dm = await fake_slack.wait_for("chat.postMessage", where=dm_to(MEMBER))
    assert "was sent" in dm.args["text"] and send.short_id in dm.args["text"]
    assert len(creates(fake_onesignal)) == 1
    return dm


async def test_installed_in_a_grid_workspace_the_bot_writes_later_with_its_token(
    app, fake_slack, fake_onesignal, database, keyring
):
    await _install(app, fake_slack.issue_oauth_code(GRID_TEAM, enterprise_id=ORG))
    async with database.sessions() as session:
        workspace = await queries.get_workspace(session=session, team_id=GRID_TEAM)
    assert workspace is not None and workspace.enterprise_id == ORG  # recorded at install
    await _add_app(database, keyring, fake_onesignal)

    dm = await _scheduled_send_is_told_by_dm(app, fake_slack, fake_onesignal, database, False)

    assert dm.token.startswith(f"xoxb-{GRID_TEAM}-")


async def test_installed_org_wide_the_bot_writes_later_with_the_orgs_token(
    app, fake_slack, fake_onesignal, database, keyring
):
    await _install(app, fake_slack.issue_oauth_code(ORG, enterprise_id=ORG, org_wide=True))
    # The workspace's first request (here /push me) records which org it belongs to.
    linked = await _command(app, "me cust-1", org_wide=True)
    assert "Linked" in (await linked.reply())["text"]
    await _add_app(database, keyring, fake_onesignal)

    dm = await _scheduled_send_is_told_by_dm(app, fake_slack, fake_onesignal, database, True)

    assert dm.token.startswith(f"xoxb-{ORG}-")
