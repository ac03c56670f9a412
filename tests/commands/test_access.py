"""Who is an admin, sender or approver: Slack's flags, PUSHOPS_ADMINS, stored roles and user
groups, asked of the fake Slack and a real database."""

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import Role
from bot.services import build_services
from commands.access import (
    ADMIN_TTL,
    forget_team,
    interaction_enterprise_id,
    interaction_ids,
    require_admin,
    resolve_actor,
    senders_configured,
    team_facts,
    user_facts,
)
from commands.context import CommandError
from commands.denials import Denied
from commands.send.requester import requester
from storage import workspaces
from tests.denials import wait_for_denials
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID
from tests.plugins.slack import make_settings

TEAM = DEFAULT_TEAM_ID


@pytest.fixture
async def services(fake_slack, sqlite_database, keyring, tmp_path):
    settings = make_settings(fake_slack, tmp_path, PUSHOPS_ADMINS="U0BOSS")
    services = build_services(settings, database=sqlite_database, keyring=keyring)
    yield services
    await services.onesignal_http.aclose()


@pytest.fixture
def client(fake_slack):
    return AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=fake_slack.api_url)


async def _give(services, subject_id, role, team_id=TEAM):
    """A role given as `/push setup` gives it: stored, and this process told."""
    async with services.database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=team_id)
        await workspaces.add_member(
            session=session, team_id=team_id, subject_id=subject_id, role=role, actor="U0BOSS"
        )
    forget_team(services, team_id)


async def _actor(services, client, user_id, team_id=TEAM):
    return await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)


@pytest.mark.parametrize("flag", ["is_admin", "is_owner"])
async def test_slack_workspace_admins_and_owners_are_admins(services, client, fake_slack, flag):
    fake_slack.add_user("U0CHIEF", **{flag: True})

    actor = await _actor(services, client, "U0CHIEF")

    assert actor.is_admin() and actor.roles == frozenset(Role)


async def test_pushops_admins_and_stored_admins_need_no_slack_call(services, client, fake_slack):
    await _give(services, "U0STORED", Role.ADMIN)

    assert (await _actor(services, client, "U0BOSS")).is_admin()
    assert (await _actor(services, client, "U0STORED")).is_admin()
    assert fake_slack.calls_to("users.info") == []


async def test_a_plain_member_holds_no_role_and_may_send_until_senders_are_named(
    services, client, fake_slack
):
    fake_slack.add_user("U0BOB")

    actor = await _actor(services, client, "U0BOB")
    assert actor.roles == frozenset()
    assert actor.can_send(senders_configured=await senders_configured(services, TEAM))

    await _give(services, "U0CAROL", Role.SENDER)
    assert not actor.can_send(senders_configured=await senders_configured(services, TEAM))
    assert (await _actor(services, client, "U0CAROL")).can_send(senders_configured=True)


async def test_a_user_groups_role_reaches_its_members_only(services, client, fake_slack):
    fake_slack.add_user("U0BOB")
    fake_slack.add_user("U0DAN")
    fake_slack.add_usergroup("S0ONCALL", ["U0BOB"])
    await _give(services, "S0ONCALL", Role.APPROVER)

    bob = await _actor(services, client, "U0BOB")
    dan = await _actor(services, client, "U0DAN")

    assert bob.roles == frozenset({Role.APPROVER}) and bob.can_approve()
    assert dan.roles == frozenset() and not dan.can_approve()


async def test_roles_are_scoped_to_their_workspace(services, client, fake_slack):
    fake_slack.add_user("U0BOB")
    await _give(services, "U0BOB", Role.ADMIN, team_id="T0OTHER")

    assert not (await _actor(services, client, "U0BOB")).is_admin()


async def test_slacks_answers_are_cached(services, client, fake_slack):
    fake_slack.add_user("U0BOB")
    fake_slack.add_usergroup("S0ONCALL", ["U0BOB"])
    await _give(services, "S0ONCALL", Role.SENDER)

    for _ in range(3):
        await _actor(services, client, "U0BOB")

    assert len(fake_slack.calls_to("users.info")) == 1
    assert len(fake_slack.calls_to("usergroups.users.list")) == 1


async def test_a_slack_failure_means_no_admin_role_and_no_error(services, client, fake_slack):
    fake_slack.fail("users.info", "ratelimited", status=429, headers={"Retry-After": "0"})
    fake_slack.fail("usergroups.users.list", "no_such_subteam")
    await _give(services, "S0GONE", Role.APPROVER)

    actor = await _actor(services, client, "U0ALICE")

    assert actor.roles == frozenset()


async def test_a_refusal_that_may_pass_is_not_remembered(services, client, fake_slack):
    fake_slack.fail("users.info", "ratelimited")

    first = await user_facts(services, client, TEAM, "U0ALICE")
    second = await user_facts(services, client, TEAM, "U0ALICE")

    assert (first.is_admin, first.timezone) == (False, None)  # unknown: no admin, UTC
    assert (second.is_admin, second.timezone) == (True, "Europe/Berlin")
    assert len(fake_slack.calls_to("users.info")) == 2


async def test_a_user_slack_does_not_know_is_remembered_briefly(services, client, fake_slack):
    for _ in range(2):
        facts = await user_facts(services, client, TEAM, "U0NOBODY")

    assert (facts.is_admin, facts.timezone) == (False, None)
    assert len(fake_slack.calls_to("users.info")) == 1


async def test_one_users_info_answers_both_the_right_to_send_and_the_zone(
    services, client, fake_slack
):
    fake_slack.add_user("U0BOB", tz="America/New_York")

    person, actor = await asyncio.gather(
        requester(services=services, client=client, team_id=TEAM, user_id="U0BOB"),
        _actor(services, client, "U0BOB"),
    )

    assert person.timezone == "America/New_York" and actor.roles == frozenset()
    assert len(fake_slack.calls_to("users.info")) == 1


async def test_roles_are_read_once_and_read_again_when_setup_changes_them(services):
    await _give(services, "U0BOB", Role.SENDER)
    before = await team_facts(services, TEAM)
    async with services.database.sessions.begin() as session:  # as another replica would
        await workspaces.add_member(
            session=session, team_id=TEAM, subject_id="U0DAN", role=Role.ADMIN, actor="U0BOSS"
        )

    kept = await team_facts(services, TEAM)
    forget_team(services, TEAM)
    fresh = await team_facts(services, TEAM)

    assert kept is before and kept.roles_of("U0DAN") == set()
    assert fresh.roles_of("U0DAN") == {Role.ADMIN} and fresh.senders_configured


async def test_require_admin_refuses_with_who_to_ask(services, client, fake_slack):
    fake_slack.add_user("U0BOB")

    with pytest.raises(CommandError) as refused:
        await require_admin(
            team_id=TEAM, user_id="U0BOB", client=client, services=services, action="run audit"
        )

    assert str(refused.value).startswith("Only PushOps admins can run audit.")
    assert "give you the admin role in `/push setup`" in str(refused.value)
    admin = await require_admin(team_id=TEAM, user_id="U0ALICE", client=client, services=services)
    assert admin.is_admin()


@pytest.mark.parametrize(
    ("body", "org"),
    [
        ({"enterprise": {"id": "E1"}, "team": {"id": "T1", "enterprise_id": "E1"}}, "E1"),
        ({"enterprise": None, "team": {"id": "T1", "enterprise_id": "E1"}}, "E1"),
        ({"enterprise": None, "team": {"id": "T1"}}, None),
        ({}, None),
    ],
    ids=["enterprise", "team only", "not grid", "nothing"],
)
def test_the_org_of_a_click_is_read_where_slack_puts_it(body, org):
    assert interaction_enterprise_id(body) == org


def test_interaction_ids_refuse_someone_from_another_workspace():
    body = {"team": {"id": "T1"}, "user": {"id": "U1", "team_id": "T1"}}
    assert interaction_ids(body) == ("T1", "U1")

    with pytest.raises(CommandError, match="Only people of this workspace"):
        interaction_ids({"team": {"id": "T1"}, "user": {"id": "U9", "team_id": "T9"}})
    with pytest.raises(CommandError):
        interaction_ids({"team": {"id": "T1"}, "user": {}})


def test_interaction_ids_take_the_workspace_from_slack_never_from_the_actor():
    # Without `team` (or the view's team_id) the workspace is unknown: reading it from the
    # actor would compare the actor's team with itself and let anyone through.
    body = {"user": {"id": "U9", "team_id": "T9"}, "actions": [{"value": "x"}]}

    with pytest.raises(CommandError, match="which workspace"):
        interaction_ids(body)
    view = {"view": {"team_id": "T1"}, "user": {"id": "U1", "team_id": "T1"}}
    assert interaction_ids(view) == ("T1", "U1")
    with pytest.raises(CommandError, match="Only people of this workspace"):
        interaction_ids({"view": {"team_id": "T1"}, "user": {"id": "U9", "team_id": "T9"}})


@pytest.mark.parametrize("single_channel", [False, True], ids=["guest", "single-channel guest"])
async def test_a_guest_holds_only_the_roles_given_by_name(
    services, client, fake_slack, single_channel
):
    fake_slack.add_guest("U0GUEST", single_channel=single_channel)
    fake_slack.add_user("U0BOB")
    fake_slack.add_usergroup("S0ONCALL", ["U0GUEST", "U0BOB"])
    await _give(services, "S0ONCALL", Role.RESPONDER)

    guest = await _actor(services, client, "U0GUEST")
    member = await _actor(services, client, "U0BOB")

    assert guest.is_guest and guest.roles == frozenset()  # the group's role does not reach
    assert not guest.can_send(senders_configured=await senders_configured(services, TEAM))
    assert member.roles == frozenset({Role.RESPONDER}) and not member.is_guest
    await _give(services, "U0GUEST", Role.SENDER)
    named = await _actor(services, client, "U0GUEST")
    assert named.roles == frozenset({Role.SENDER}) and named.can_send(senders_configured=True)


async def test_a_slack_admin_demoted_in_slack_loses_admin_rights_within_seconds(
    services, client, fake_slack
):
    fake_slack.add_user("U0CHIEF", is_admin=True)
    assert await require_admin(team_id=TEAM, user_id="U0CHIEF", client=client, services=services)
    fake_slack.add_user("U0CHIEF", is_admin=False)  # demoted in Slack

    await asyncio.sleep(ADMIN_TTL + 0.1)

    with pytest.raises(CommandError, match="Only PushOps admins"):
        await require_admin(team_id=TEAM, user_id="U0CHIEF", client=client, services=services)
    assert ADMIN_TTL <= 5
    # the answer is still good for what needs no fresh word (a send, a zone): no new call
    calls = len(fake_slack.calls_to("users.info"))
    await _actor(services, client, "U0CHIEF")
    assert len(fake_slack.calls_to("users.info")) == calls


async def test_pushops_admins_in_oauth_mode_name_a_user_of_one_workspace(
    fake_slack, sqlite_database, keyring, tmp_path, client
):
    settings = make_settings(
        fake_slack,
        tmp_path,
        slack_bot_token=None,
        slack_client_id="1.2",
        slack_client_secret="oauth-secret-for-tests",
        PUSHOPS_ADMINS=f"{TEAM}:U0BOSS,U0BARE",
    )
    fake_slack.add_user("U0BOSS")
    fake_slack.add_user("U0BARE")
    services = build_services(settings, database=sqlite_database, keyring=keyring)
    try:
        assert (await _actor(services, client, "U0BOSS")).is_admin()
        assert not (await _actor(services, client, "U0BOSS", team_id="T0OTHER")).is_admin()
        assert not (await _actor(services, client, "U0BARE")).is_admin()  # a bare id: nobody
    finally:
        await services.onesignal_http.aclose()


async def test_a_refused_admin_check_is_audited_as_denied(services, client, fake_slack):
    fake_slack.add_user("U0BOB")

    with pytest.raises(Denied) as refused:
        await require_admin(
            team_id=TEAM, user_id="U0BOB", client=client, services=services, what="open setup"
        )

    assert refused.value.denial.action == "setup.denied"
    [event] = await wait_for_denials(services.database, 1)
    assert (event.actor, event.action, event.outcome) == ("U0BOB", "setup.denied", "denied")
    assert event.details == {"what": "open setup", "why": "not_admin"}
