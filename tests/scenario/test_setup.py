"""`/push setup`: the admin modal, driven as Slack drives it (signed clicks and submissions to
/slack/events), checked on the fake Slack, the fake OneSignal and the database. The REST API
key typed into the form never reaches Slack (nor the logs: the leak guard is on)."""

import asyncio
import json
import re
import uuid

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot import const
from bot.policy import ApprovalPolicy, Role
from storage import workspaces
from storage.models import AuditEvent, MemberRole
from tests.denials import wait_for_denials
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import fake_api_key, register_secret
from tests.scenario.busy import held_by_another_writer
from tests.scenario.sendkit import buttons
from tests.scenario.workspace import onesignal_settings, serve_with_storage

TEAM = DEFAULT_TEAM_ID
ADMIN = "U0ALICE"  # a Slack workspace admin in the fake
F = const.ACTION_SETUP_FIELD


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    fake_slack.add_user("U0BOB")  # no admin
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_with_storage(serve_pushops, settings, database, keyring) as running:
        yield running


@pytest.fixture
def second(fake_onesignal):
    """Another OneSignal app, with its own key, to add in the form."""
    added = fake_onesignal.add_app("Second")
    register_secret(added.rest_api_key)
    return added


# --- driving the modal ------------------------------------------------------------------------


def _modal_id(fake_slack):
    """The id the fake Slack gave the modal the app opened (Slack sends it in every payload)."""
    [view_id] = fake_slack._state.views  # one modal per test
    return view_id


async def _open(app, fake_slack, user=ADMIN):
    sent = await app.post_command("setup", user=user)
    call = await fake_slack.wait_for("views.open")
    # The fake records a call before it answers it, on its own thread: polled.
    while not fake_slack._state.views:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    return _modal_id(fake_slack), call.args["view"], sent


async def _click(app, fake_slack, view_id, action_id, value=None, user=ADMIN, **action):
    before = len(fake_slack.calls_to("views.update"))
    payload = signing.block_actions(
        action_id=action_id,
        user_id=user,
        team_id=TEAM,
        response_url="",
        value=value,
        view={"id": view_id, "callback_id": const.CALLBACK_SETUP},
    )
    payload["actions"][0].update(action)
    response = await app.post_action(payload)
    assert response.status_code == 200 and response.text == ""
    call = await fake_slack.wait_for("views.update", count=before + 1)
    assert call.args["view_id"] == view_id
    return call.args["view"]


async def _submit(app, view_id, callback_id, values, *, metadata="", user=ADMIN):
    payload = signing.view_submission(
        callback_id=callback_id,
        user_id=user,
        team_id=TEAM,
        values=values,
        private_metadata=metadata,
        view_id=view_id,
    )
    response = await app.post_action(payload)
    assert response.status_code == 200
    return response


def _text(view):
    return json.dumps(view, ensure_ascii=False)


def _input(value):
    return {F: {"type": "plain_text_input", "value": value}}


def _app_values(name, app_id, key, default=False):
    values = {
        const.BLOCK_SETUP_APP_ID: _input(app_id),
        const.BLOCK_SETUP_APP_KEY: _input(key),
        const.BLOCK_SETUP_APP_DEFAULT: {
            F: {"type": "checkboxes", "selected_options": [{"value": "default"}] if default else []}
        },
    }
    if name is not None:
        values[const.BLOCK_SETUP_APP_NAME] = _input(name)
    return values


async def _apps(database, keyring):
    async with database.sessions() as session:
        apps = await workspaces.list_apps(session=session, team_id=TEAM)
        return {
            a.name: (
                a.onesignal_app_id,
                a.is_default,
                workspaces.decrypt_app_key(a, keyring=keyring).get_secret_value(),
            )
            for a in apps
        }


async def _actions(database):
    async with database.sessions() as session:
        query = sa.select(AuditEvent.action).where(AuditEvent.team_id == TEAM)
        return list(await session.scalars(query.order_by(AuditEvent.seq)))


def _never_sent_to_slack(fake_slack, *secrets):
    everything = json.dumps([(c.method, c.args) for c in fake_slack.calls])
    for secret in secrets:
        assert secret not in everything


def _verify_requests(fake_onesignal):
    return fake_onesignal.requests_to("GET", "/notifications")


# --- opening ----------------------------------------------------------------------------------


async def test_a_non_admin_is_refused_and_no_form_opens(app, fake_slack):
    sent = await app.post_command("setup", user="U0BOB")
    reply = await sent.reply()

    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Only PushOps admins can set PushOps up (`/push setup`).")
    assert fake_slack.calls_to("views.open") == []


async def test_setup_takes_nothing_after_it(app, fake_slack):
    reply = await (await app.post_command("setup apps")).reply()

    assert "takes nothing after it" in reply["text"]
    assert fake_slack.calls_to("views.open") == []


async def test_an_admin_gets_the_home_with_apps_log_channel_approvals_and_roles(
    app, fake_slack, fake_onesignal
):
    _, view, sent = await _open(app, fake_slack)

    call = fake_slack.calls_to("views.open")[0]
    assert call.args["trigger_id"]
    assert view["callback_id"] == const.CALLBACK_SETUP
    shown = _text(view)
    assert f"*default* (default) · app id `{fake_onesignal.app.id}`" in shown
    assert "Not set: results go only to the person who sent." in shown
    assert "Off: no send needs approval." in shown
    assert "Senders: nobody named, so everyone but guests may send" in shown
    assert "Responders: nobody named" in shown
    assert sent.replies() == []  # the modal is the answer


async def test_a_member_given_the_admin_role_may_open_setup(app, fake_slack, database):
    async with database.sessions.begin() as session:
        await workspaces.add_member(
            session=session, team_id=TEAM, subject_id="U0BOB", role=Role.ADMIN, actor=ADMIN
        )

    await _open(app, fake_slack, user="U0BOB")


# --- adding and replacing apps: the key checked with OneSignal first --------------------------


async def test_adding_an_app_checks_its_key_with_onesignal_then_saves_it_encrypted(
    app, fake_slack, fake_onesignal, database, keyring, second
):
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_ADD_APP)
    assert form["callback_id"] == const.CALLBACK_SETUP_APP

    response = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_APP,
        _app_values("second", second.id, second.rest_api_key, default=True),
        metadata=form["private_metadata"],
    )

    ack = response.json()
    assert ack["response_action"] == "update"
    assert "Checking the REST API key of *second*" in _text(ack["view"])
    home = (await fake_slack.wait_for("views.update", count=2)).args["view"]
    assert "Saved *second*: OneSignal accepted its REST API key. It is the default app." in _text(
        home
    )
    [check] = _verify_requests(fake_onesignal)
    assert check.query["app_id"] == [second.id]
    assert check.headers["authorization"] == f"Key {second.rest_api_key}"
    apps = await _apps(database, keyring)
    assert apps["second"] == (second.id, True, second.rest_api_key)
    assert apps["default"][1] is False
    assert (await _actions(database))[-1] == "app.added"
    assert second.rest_api_key not in response.text
    _never_sent_to_slack(fake_slack, second.rest_api_key)


@pytest.mark.parametrize(
    ("problem", "field", "message"),
    [
        ("wrong key", const.BLOCK_SETUP_APP_KEY, "OneSignal refused this REST API key"),
        ("unknown app", const.BLOCK_SETUP_APP_ID, "OneSignal knows no app"),
        ("unreachable", None, "OneSignal could not be reached"),
    ],
)
async def test_a_key_onesignal_does_not_confirm_brings_the_form_back_with_the_problem(
    app, fake_slack, fake_onesignal, database, keyring, second, problem, field, message
):
    app_id, key = second.id, second.rest_api_key
    if problem == "wrong key":
        key = fake_api_key()
    elif problem == "unknown app":
        app_id = str(uuid.uuid4())
    else:
        fake_onesignal.faults.drop_connections(times=2, path="/notifications")
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_ADD_APP)
    before = await _actions(database)

    await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_APP,
        _app_values("second", app_id, key),
        metadata=form["private_metadata"],
    )

    again = (await fake_slack.wait_for("views.update", count=2)).args["view"]
    assert again["callback_id"] == const.CALLBACK_SETUP_APP
    blocks = again["blocks"]
    [warning] = [i for i, b in enumerate(blocks) if message in _text(b)]
    if field is not None:  # right under the field
        assert blocks[warning - 1]["block_id"] == field
    by_block = {b.get("block_id"): b for b in blocks}
    assert by_block[const.BLOCK_SETUP_APP_NAME]["element"]["initial_value"] == "second"
    assert by_block[const.BLOCK_SETUP_APP_ID]["element"]["initial_value"] == app_id
    assert "initial_value" not in by_block[const.BLOCK_SETUP_APP_KEY]["element"]
    assert "second" not in await _apps(database, keyring)
    assert await _actions(database) == before
    _never_sent_to_slack(fake_slack, key)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (_app_values("my app", str(uuid.uuid4()), "os_v2_app_x"), "setup_app_name", "usable"),
        (_app_values("second", "12345", "os_v2_app_x"), "setup_app_id", "not a OneSignal app id"),
        (_app_values("second", str(uuid.uuid4()), ""), "setup_app_key", "Paste the app's"),
        (_app_values("default", str(uuid.uuid4()), "os_v2_app_x"), "setup_app_name", "exists"),
    ],
)
async def test_bad_fields_are_refused_inline_without_asking_onesignal(
    app, fake_slack, fake_onesignal, database, keyring, values, field, message
):
    view_id, _, _ = await _open(app, fake_slack)
    await _click(app, fake_slack, view_id, const.ACTION_SETUP_ADD_APP)
    before = await _apps(database, keyring)

    response = await _submit(app, view_id, const.CALLBACK_SETUP_APP, values)

    ack = response.json()
    assert ack["response_action"] == "errors"
    assert list(ack["errors"]) == [field] and message in ack["errors"][field]
    assert _verify_requests(fake_onesignal) == []
    assert await _apps(database, keyring) == before


async def test_replacing_a_key_checks_the_new_one_and_keeps_the_app(
    app, fake_slack, fake_onesignal, database, keyring, second
):
    async with database.sessions.begin() as session:
        await workspaces.add_app(
            session=session,
            keyring=keyring,
            team_id=TEAM,
            name="second",
            onesignal_app_id=second.id,
            api_key=SecretStr(fake_api_key()),  # rotated at OneSignal since
            added_by=ADMIN,
        )
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_REPLACE_APP, "second")
    assert json.loads(form["private_metadata"]) == {"replace": "second"}
    assert const.BLOCK_SETUP_APP_NAME not in _text(form)

    await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_APP,
        _app_values(None, second.id, second.rest_api_key),
        metadata=form["private_metadata"],
    )

    home = (await fake_slack.wait_for("views.update", count=2)).args["view"]
    assert "Saved *second*" in _text(home)
    assert (await _apps(database, keyring))["second"][2] == second.rest_api_key
    assert (await _actions(database))[-1] == "app.replaced"
    _never_sent_to_slack(fake_slack, second.rest_api_key)


# --- default app, removal, log channel ----------------------------------------------------------


async def test_making_an_app_the_default_and_removing_it(
    app, fake_slack, database, keyring, second
):
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
    view_id, _, _ = await _open(app, fake_slack)

    home = await _click(app, fake_slack, view_id, const.ACTION_SETUP_DEFAULT_APP, "second")
    assert "*second* is now the default app." in _text(home)
    assert (await _apps(database, keyring))["second"][1] is True

    home = await _click(app, fake_slack, view_id, const.ACTION_SETUP_REMOVE_APP, "second")
    assert "Removed *second* and its key." in _text(home)
    assert set(await _apps(database, keyring)) == {"default"}
    assert (await _actions(database))[-2:] == ["app.default", "app.removed"]

    home = await _click(app, fake_slack, view_id, const.ACTION_SETUP_REMOVE_APP, "second")
    gone = "There is no OneSignal app named `second` any more; the apps below are the ones"
    assert f"{gone} there are now." in _text(home)


async def test_choosing_and_clearing_the_log_channel(app, fake_slack, database):
    view_id, _, _ = await _open(app, fake_slack)

    home = await _click(
        app,
        fake_slack,
        view_id,
        const.ACTION_SETUP_LOG_CHANNEL,
        type="conversations_select",
        selected_conversation="C0LOG",
    )
    assert "Results of sends will be posted in <#C0LOG>." in _text(home)
    async with database.sessions() as session:
        workspace = await workspaces.get_workspace(session=session, team_id=TEAM)
        assert workspace is not None and workspace.log_channel_id == "C0LOG"

    home = await _click(app, fake_slack, view_id, const.ACTION_SETUP_LOG_OFF)
    assert "no longer posted in a channel" in _text(home)
    async with database.sessions() as session:
        workspace = await workspaces.get_workspace(session=session, team_id=TEAM)
        assert workspace is not None and workspace.log_channel_id is None


# --- roles and approvals ------------------------------------------------------------------------


def _roles_values(change, role, users=(), groups=""):
    return {
        const.BLOCK_SETUP_ROLE_CHANGE: {
            F: {"type": "radio_buttons", "selected_option": {"value": change}}
        },
        const.BLOCK_SETUP_ROLE: {F: {"type": "static_select", "selected_option": {"value": role}}},
        const.BLOCK_SETUP_ROLE_USERS: {
            F: {"type": "multi_users_select", "selected_users": list(users)}
        },
        const.BLOCK_SETUP_ROLE_GROUPS: _input(groups),
    }


async def _members(database):
    async with database.sessions() as session:
        members = await workspaces.list_members(session=session, team_id=TEAM)
        return {(m.subject_id, m.role.value) for m in members}


async def test_giving_and_taking_a_role_to_people_and_user_groups(app, fake_slack, database):
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_ROLES)
    assert form["callback_id"] == const.CALLBACK_SETUP_ROLES

    given = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_ROLES,
        _roles_values("give", "approver", ["U0BOB"], "S0ONCALL"),
    )

    ack = given.json()
    assert ack["response_action"] == "update"
    assert ack["view"]["callback_id"] == const.CALLBACK_SETUP
    assert "<@U0BOB>, <!subteam^S0ONCALL> now hold the approver role." in _text(ack["view"])
    assert "Approvers: <!subteam^S0ONCALL>, <@U0BOB>" in _text(ack["view"])
    assert await _members(database) == {("U0BOB", "approver"), ("S0ONCALL", "approver")}

    taken = await _submit(
        app, view_id, const.CALLBACK_SETUP_ROLES, _roles_values("remove", "approver", ["U0BOB"])
    )

    assert "<@U0BOB> no longer holds the approver role." in _text(taken.json()["view"])
    assert await _members(database) == {("S0ONCALL", "approver")}
    assert (await _actions(database))[-3:] == ["member.added", "member.added", "member.removed"]


async def _many_hold_roles(database, users, groups):
    """`users` people and `groups` user groups hold roles (shared out among the three)."""
    roles = [MemberRole.SENDER, MemberRole.APPROVER, MemberRole.ADMIN]
    subjects = [f"U{i:09d}" for i in range(users)] + [f"S{i:09d}" for i in range(groups)]
    async with database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=TEAM)
        for i, subject in enumerate(subjects):
            await workspaces.add_member(
                session=session, team_id=TEAM, subject_id=subject, role=roles[i % 3], actor=ADMIN
            )
    return subjects


async def test_setup_opens_and_trims_roles_held_by_200_people_and_130_groups(
    app, fake_slack, database
):
    subjects = await _many_hold_roles(database, users=200, groups=130)

    view_id, home, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_ROLES)
    trimmed = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_ROLES,
        _roles_values("remove", "sender", subjects[0:150:3], "S000000000, S000000003"),
    )
    given = await _submit(
        app, view_id, const.CALLBACK_SETUP_ROLES, _roles_values("give", "approver", subjects[:200])
    )

    roles = _text(next(b for b in home["blocks"] if "*Roles*" in _text(b)))
    for label in ("Admins", "Senders", "Approvers"):
        held = rf"{label} \(110; \*Change\* lists them all\): <[@!][^…]+, … and \d+ more"
        assert re.search(held, roles), roles
    assert all(f"<@{u}>" in _text(form) for u in subjects[:200])  # every holder, to trim from
    assert all(f"<!subteam^{g}>" in _text(form) for g in subjects[200:])
    notice = _text(trimmed.json()["view"]["blocks"][0])
    assert "<@U000000000>, <@U000000003>, <@U000000006>" in notice and "no longer hold" in notice
    notice = _text(given.json()["view"]["blocks"][0])
    assert re.search(r"<@U000000000>, <@U000000002>, <@U000000003>, .*, … and \d+ more now", notice)
    members = await _members(database)
    assert ("U000000000", "sender") not in members and ("S000000000", "sender") not in members
    assert len([m for m in members if m[1] == "approver"]) == 110 + 133  # 67 held it already


async def test_the_responder_role_is_given_like_the_others(app, fake_slack, database):
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_ROLES)
    roles = next(b for b in form["blocks"] if b.get("block_id") == const.BLOCK_SETUP_ROLE)
    assert "responder" in [o["value"] for o in roles["element"]["options"]]

    given = await _submit(
        app, view_id, const.CALLBACK_SETUP_ROLES, _roles_values("give", "responder", (), "S0ONCALL")
    )

    home = _text(given.json()["view"])
    assert "<!subteam^S0ONCALL> now holds the responder role." in home
    assert "Responders: <!subteam^S0ONCALL>" in home
    assert "Responders (on call) cancel any send and look users up" in home
    assert await _members(database) == {("S0ONCALL", "responder")}


async def test_a_role_change_naming_nobody_is_refused_inline(app, fake_slack, database):
    view_id, _, _ = await _open(app, fake_slack)
    await _click(app, fake_slack, view_id, const.ACTION_SETUP_ROLES)

    response = await _submit(
        app, view_id, const.CALLBACK_SETUP_ROLES, _roles_values("give", "admin")
    )

    assert response.json() == {
        "response_action": "errors",
        "errors": {const.BLOCK_SETUP_ROLE_USERS: "Choose at least one person or user group."},
    }
    assert await _members(database) == set()


async def test_a_role_form_meeting_a_busy_database_saves_nothing_and_says_so(
    app, fake_slack, database
):
    view_id, _, _ = await _open(app, fake_slack)
    await _click(app, fake_slack, view_id, const.ACTION_SETUP_ROLES)

    async with held_by_another_writer(database):
        response = await _submit(
            app, view_id, const.CALLBACK_SETUP_ROLES, _roles_values("give", "sender", ["U0BOB"])
        )

    assert response.json() == {
        "response_action": "errors",
        "errors": {
            const.BLOCK_SETUP_ROLE: "PushOps is busy; nothing was saved. Save again in a moment."
        },
    }
    assert await _members(database) == set()


async def test_a_role_form_waits_for_slack_only_so_long_and_then_saves_nothing(
    app, fake_slack, database
):
    view_id, _, _ = await _open(app, fake_slack)
    await _click(app, fake_slack, view_id, const.ACTION_SETUP_ROLES)
    fake_slack.add_user("U0CHIEF", is_admin=True)  # not asked about yet
    fake_slack.delay("users.info", 1.5)

    response = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_ROLES,
        _roles_values("give", "sender", ["U0BOB"]),
        user="U0CHIEF",
    )

    error = response.json()["errors"][const.BLOCK_SETUP_ROLE]
    assert error.startswith("Slack was slow") and "nothing was saved" in error
    assert await _members(database) == set()


def _policy_values(mode, approvals, channel, users=None):
    values = {
        const.BLOCK_SETUP_POLICY_MODE: {
            F: {"type": "radio_buttons", "selected_option": {"value": mode}}
        },
        const.BLOCK_SETUP_POLICY_APPROVALS: {
            F: {"type": "static_select", "selected_option": {"value": approvals}}
        },
        const.BLOCK_SETUP_POLICY_CHANNEL: {
            F: {"type": "conversations_select", "selected_conversation": channel}
        },
    }
    if users is not None:
        values[const.BLOCK_SETUP_POLICY_USERS] = {F: {"type": "number_input", "value": users}}
    return values


async def _policy(database):
    async with database.sessions() as session:
        workspace = await workspaces.get_workspace(session=session, team_id=TEAM)
        assert workspace is not None
        return ApprovalPolicy.from_settings(workspace.settings)


async def test_until_senders_are_named_the_home_warns_that_everyone_may_send(
    app, fake_slack, database
):
    view_id, home, _ = await _open(app, fake_slack)
    assert home["blocks"][0]["text"]["text"].startswith(
        ":warning: *Everyone in this workspace may send pushes* (guests excepted), because "
        "nobody is named a sender yet; each may cancel their own."
    )
    assert (
        buttons(home["blocks"])[const.ACTION_SETUP_NAME_SENDERS]["text"]["text"] == "Name senders"
    )

    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_NAME_SENDERS)
    role = next(b for b in form["blocks"] if b.get("block_id") == const.BLOCK_SETUP_ROLE)
    assert role["element"]["initial_option"]["value"] == "sender"
    given = await _submit(
        app, view_id, const.CALLBACK_SETUP_ROLES, _roles_values("give", "sender", ["U0BOB"])
    )

    home = given.json()["view"]
    assert "<@U0BOB> now holds the sender role." in _text(home)
    assert "Everyone in this workspace may send" not in _text(home)
    assert const.ACTION_SETUP_NAME_SENDERS not in buttons(home["blocks"])


async def test_setting_the_approval_policy(app, fake_slack, database):
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_POLICY)
    assert form["callback_id"] == const.CALLBACK_SETUP_POLICY

    missing = await _submit(
        app, view_id, const.CALLBACK_SETUP_POLICY, _policy_values("segments", "2", None)
    )
    assert missing.json()["errors"] == {
        const.BLOCK_SETUP_POLICY_CHANNEL: "Choose the channel where approvers are asked."
    }
    assert await _policy(database) == ApprovalPolicy()

    saved = await _submit(
        app, view_id, const.CALLBACK_SETUP_POLICY, _policy_values("segments", "2", "C0APPROVE")
    )

    shown = _text(saved.json()["view"])
    assert "Saved the approval policy." in shown
    assert (
        "Sends to a segment or to more than 100 listed users need 2 approvals by distinct "
        "approvers, asked in <#C0APPROVE>."
    ) in shown
    assert await _policy(database) == ApprovalPolicy("segments", 2, "C0APPROVE")
    assert (await _actions(database))[-1] == "workspace.updated"


async def test_the_policy_form_sets_how_many_listed_users_a_send_may_reach_unapproved(
    app, fake_slack, database
):
    view_id, _, _ = await _open(app, fake_slack)
    form = await _click(app, fake_slack, view_id, const.ACTION_SETUP_POLICY)
    field = next(b for b in form["blocks"] if b.get("block_id") == const.BLOCK_SETUP_POLICY_USERS)
    assert field["element"]["initial_value"] == "100"

    wrong = await _submit(
        app, view_id, const.CALLBACK_SETUP_POLICY, _policy_values("segments", "1", "C0A", "-1")
    )
    saved = await _submit(
        app, view_id, const.CALLBACK_SETUP_POLICY, _policy_values("segments", "1", "C0A", "25")
    )

    assert const.BLOCK_SETUP_POLICY_USERS in wrong.json()["errors"]
    assert "more than 25 listed users need 1 approval" in _text(saved.json()["view"])
    assert (await _policy(database)).user_threshold == 25


async def test_the_policy_every_send_says_that_test_sends_wait_too(app, fake_slack, database):
    view_id, _, _ = await _open(app, fake_slack)
    await _click(app, fake_slack, view_id, const.ACTION_SETUP_POLICY)

    saved = await _submit(
        app, view_id, const.CALLBACK_SETUP_POLICY, _policy_values("all", "1", "C0APPROVE")
    )

    shown = _text(saved.json()["view"])
    assert (
        "Every send, test sends included, needs 1 approval by distinct approvers, "
        "asked in <#C0APPROVE>."
    ) in shown
    assert "but tests" not in shown  # test sends wait for approval under this policy


# --- every click and form re-checks the admin ---------------------------------------------------


async def test_a_non_admin_clicking_or_submitting_is_refused_and_nothing_is_written(
    app, fake_slack, fake_onesignal, database, keyring, second
):
    view_id, _, _ = await _open(app, fake_slack)  # opened by an admin; acted on by Bob
    before = (await _apps(database, keyring), await _members(database), await _actions(database))

    refused = await _click(
        app, fake_slack, view_id, const.ACTION_SETUP_REMOVE_APP, "default", user="U0BOB"
    )
    roles = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_ROLES,
        _roles_values("give", "admin", ["U0BOB"]),
        user="U0BOB",
    )
    app_form = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_APP,
        _app_values("second", second.id, second.rest_api_key),
        user="U0BOB",
    )

    for shown in (_text(refused), _text(roles.json()["view"]), _text(app_form.json()["view"])):
        assert "Only PushOps admins can set PushOps up" in shown
    assert _verify_requests(fake_onesignal) == []
    events = await wait_for_denials(database, 3)
    assert sorted((e.actor, e.action, e.details["what"], e.details["why"]) for e in events) == [
        ("U0BOB", "setup.denied", f"click {const.ACTION_SETUP_REMOVE_APP}", "not_admin"),
        ("U0BOB", "setup.denied", "save an app", "not_admin"),
        ("U0BOB", "setup.denied", "save roles", "not_admin"),
    ]
    after = (await _apps(database, keyring), await _members(database), await _actions(database))
    assert after == (*before[:2], [*before[2], *["setup.denied"] * 3])


async def test_a_non_admin_learns_nothing_of_app_names_from_the_app_form(
    app, fake_slack, database, second
):
    view_id, _, _ = await _open(app, fake_slack)

    taken = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_APP,
        _app_values("default", second.id, second.rest_api_key),
        user="U0BOB",
    )
    free = await _submit(
        app,
        view_id,
        const.CALLBACK_SETUP_APP,
        _app_values("unused", second.id, second.rest_api_key),
        user="U0BOB",
    )

    assert taken.json() == free.json()  # the same refusal whether the name exists or not
    assert "Only PushOps admins can set PushOps up" in _text(taken.json()["view"])
    assert "exists already" not in taken.text
