"""Who is a PushOps admin, through the served app: a Slack admin demoted in Slack loses setup
within `ADMIN_TTL`, and `PUSHOPS_ADMINS` in OAuth mode names a user of one workspace only
(`TEAM:USER`). (Stored admin roles: test_setup.py; refusals audited: test_denials.py.)"""

import asyncio

import pytest

from commands.access import ADMIN_TTL
from tests.fakes.slack import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TEAM_ID
from tests.plugins.slack import PushOps, default_services, make_settings
from tests.scenario.test_oauth import _install_page, _redirect
from tests.scenario.workspace import onesignal_settings, serve_with_storage

# slack_sdk's oauth.v2.access call still uses aiohttp's BasicAuth; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

CHIEF = "U0CHIEF"
REFUSED = "Only PushOps admins can set PushOps up"


async def _setup_opens(app: PushOps, *, user: str, team: str = DEFAULT_TEAM_ID) -> bool:
    """Whether `/push setup` by `user` opened the setup form (else it answered a refusal)."""
    before = len(app.fake.calls_to("views.open"))
    sent = await app.post_command("setup", user=user, team=team)
    assert sent.response is not None and sent.response.status_code == 200
    for _ in range(500):
        if len(app.fake.calls_to("views.open")) > before:
            return True
        if sent.replies():
            assert REFUSED in sent.replies()[0]["text"]
            return False
        await asyncio.sleep(0.01)
    raise AssertionError("setup neither opened nor answered")


async def test_a_slack_admin_demoted_in_slack_loses_setup_within_seconds(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    fake_slack.add_user(CHIEF, is_admin=True)
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_with_storage(serve_pushops, settings, database, keyring) as app:
        assert await _setup_opens(app, user=CHIEF)
        fake_slack.add_user(CHIEF, is_admin=False)  # demoted in Slack

        await asyncio.sleep(ADMIN_TTL + 0.1)  # ADMIN_TTL is 3 s: a slow test, by design

        assert not await _setup_opens(app, user=CHIEF)
    assert len(fake_slack.calls_to("users.info")) >= 2  # Slack was asked afresh


ONE, TWO = "T0ONE", "T0TWO"


async def test_pushops_admins_in_oauth_mode_names_a_user_of_one_workspace_only(
    serve_pushops, fake_slack, sqlite_database, keyring, tmp_path
):
    settings = make_settings(
        fake_slack,
        tmp_path,
        slack_bot_token=None,
        slack_client_id=DEFAULT_CLIENT_ID,
        slack_client_secret=DEFAULT_CLIENT_SECRET,
        PUSHOPS_ADMINS=f"{ONE}:{CHIEF}",
    )
    fake_slack.add_user(CHIEF, team_id=ONE)  # no Slack admin: PUSHOPS_ADMINS alone names him
    fake_slack.add_user("U0OTHER", team_id=TWO)
    services = default_services(settings, sqlite_database, keyring)
    async with serve_pushops(settings, services=services) as app:
        for team in (ONE, TWO):
            _, state, cookie = await _install_page(app)
            done = await _redirect(app, fake_slack.issue_oauth_code(team), state, cookie)
            assert done.status_code == 200, done.text

        assert await _setup_opens(app, user=CHIEF, team=ONE)
        assert not await _setup_opens(app, user=CHIEF, team=TWO)
        assert not await _setup_opens(app, user="U0OTHER", team=TWO)
