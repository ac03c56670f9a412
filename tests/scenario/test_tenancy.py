"""Single-workspace mode serves its token's workspace only: a signed request naming another
`team_id` is refused before any listener runs, with a clear answer, and audited."""

import pytest

from bot import const
from storage.models import SendState
from tests.denials import wait_for_denials
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.sendkit import SEGMENT, all_sends, serve_sending, settings

STRANGER_TEAM = "T0STRANGER"
STRANGER = "U0STRANGER"


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def test_a_command_from_another_workspace_is_refused_and_audited(app, fake_slack, database):
    sent = await app.post_command(
        f'send --yes --segment "{SEGMENT}" Hello', user=STRANGER, team=STRANGER_TEAM
    )

    assert sent.response.status_code == 200
    assert "This PushOps serves one Slack workspace" in sent.response.text
    assert await all_sends(database) == []
    [event] = await wait_for_denials(database, 1)
    assert (event.team_id, event.actor, event.action, event.target) == (
        DEFAULT_TEAM_ID,
        STRANGER,
        "workspace.denied",
        f"team {STRANGER_TEAM}",
    )
    assert event.details == {"what": "use PushOps", "why": "other_workspace"}
    assert sent.replies() == [] and fake_slack.calls_to("users.info") == []


async def test_a_click_from_another_workspace_is_refused_before_it_is_read(
    app, fake_slack, database, storage_factory
):
    await app.post_command(f'send --segment "{SEGMENT}" Draft')
    [draft] = await all_sends(database)
    payload = signing.block_actions(
        action_id=const.ACTION_SEND_CONFIRM,
        user_id=STRANGER,
        team_id=STRANGER_TEAM,
        response_url=fake_slack.new_response_url(),
        value=str(draft.id),
    )

    response = await app.post_action(payload)

    assert response.status_code == 200
    await wait_for_denials(database, 1, "workspace.denied")
    assert fake_slack.replies(payload["response_url"]) == []
    assert (await all_sends(database))[0].state == SendState.DRAFT
