"""PushOps in an Enterprise Grid org (OAuth mode): installed in one of the org's workspaces or
org-wide, the bot still finds its token for what it says later, outside any request (the
requester's DM when a scheduled send has gone out)."""

import json
from typing import Any

import pytest
from pydantic import SecretStr

from bot import const
from storage import workspaces
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
        await workspaces.add_app(
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
        workspace = await workspaces.get_workspace(session=session, team_id=GRID_TEAM)
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


# --- /push setup in a Grid workspace: the first write records the workspace's org ------------


async def _setup_opened(app: PushOps, fake_slack: Any) -> str:
    """PushOps installed org-wide, MEMBER an admin of GRID_TEAM with /push setup open."""
    await _install(app, fake_slack.issue_oauth_code(ORG, enterprise_id=ORG, org_wide=True))
    fake_slack.add_user(MEMBER, team_id=GRID_TEAM, is_admin=True)
    await _command(app, "setup", org_wide=True)
    await fake_slack.wait_for("views.open")
    [view_id] = fake_slack._state.views  # the id Slack sends back in every payload
    return str(view_id)


def _from_grid(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` as Slack sends it from GRID_TEAM, a workspace of ORG, PushOps org-wide."""
    payload["enterprise"] = {"id": ORG, "name": "Grid Org"}
    payload["team"]["enterprise_id"] = ORG
    payload["is_enterprise_install"] = True
    return payload


async def _org_of_workspace(database: Any) -> str | None:
    async with database.sessions() as session:
        workspace = await workspaces.get_workspace(session=session, team_id=GRID_TEAM)
    assert workspace is not None
    return workspace.enterprise_id


async def test_a_setup_click_records_the_workspaces_org(app, fake_slack, database):
    view_id = await _setup_opened(app, fake_slack)
    payload = signing.block_actions(
        action_id=const.ACTION_SETUP_LOG_CHANNEL,
        user_id=MEMBER,
        team_id=GRID_TEAM,
        response_url="",
        view={"id": view_id, "callback_id": const.CALLBACK_SETUP},
        element_type="conversations_select",
    )
    payload["actions"][0]["selected_conversation"] = "C0LOG"

    response = await app.post_action(_from_grid(payload))

    assert response.status_code == 200
    home = (await fake_slack.wait_for("views.update")).args["view"]
    assert "Results of sends will be posted in <#C0LOG>." in json.dumps(home)
    assert await _org_of_workspace(database) == ORG


async def test_a_saved_setup_form_records_the_workspaces_org(app, fake_slack, database):
    view_id = await _setup_opened(app, fake_slack)
    field = const.ACTION_SETUP_FIELD
    values = {
        const.BLOCK_SETUP_POLICY_MODE: {
            field: {"type": "radio_buttons", "selected_option": {"value": "off"}}
        },
    }
    payload = signing.view_submission(
        callback_id=const.CALLBACK_SETUP_POLICY,
        user_id=MEMBER,
        team_id=GRID_TEAM,
        values=values,
        view_id=view_id,
    )

    response = await app.post_action(_from_grid(payload))

    assert response.status_code == 200
    assert "Saved the approval policy." in json.dumps(response.json()["view"])
    assert await _org_of_workspace(database) == ORG


async def test_an_app_added_in_setup_records_the_workspaces_org(
    app, fake_slack, fake_onesignal, database
):
    view_id = await _setup_opened(app, fake_slack)
    field = const.ACTION_SETUP_FIELD
    key = register_secret(fake_onesignal.app.rest_api_key)
    values = {
        const.BLOCK_SETUP_APP_NAME: {field: {"type": "plain_text_input", "value": "main"}},
        const.BLOCK_SETUP_APP_ID: {
            field: {"type": "plain_text_input", "value": fake_onesignal.app.id}
        },
        const.BLOCK_SETUP_APP_KEY: {field: {"type": "plain_text_input", "value": key}},
        const.BLOCK_SETUP_APP_DEFAULT: {field: {"type": "checkboxes", "selected_options": []}},
    }
    payload = signing.view_submission(
        callback_id=const.CALLBACK_SETUP_APP,
        user_id=MEMBER,
        team_id=GRID_TEAM,
        values=values,
        view_id=view_id,
    )

    response = await app.post_action(_from_grid(payload))

    assert response.status_code == 200
    home = (await fake_slack.wait_for("views.update")).args["view"]
    assert "Saved *main*: OneSignal accepted its REST API key." in json.dumps(home)
    assert await _org_of_workspace(database) == ORG
