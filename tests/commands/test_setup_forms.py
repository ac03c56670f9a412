"""Reading the setup forms: each bad field named for an inline error, never echoing the key."""

import json
import uuid

import pytest

from bot import const
from bot.policy import ApprovalPolicy, Role
from commands.setup_forms import (
    FormErrors,
    parse_app_form,
    parse_group_ids,
    parse_policy_form,
    parse_roles_form,
)

F = const.ACTION_SETUP_FIELD
KEY = "os_v2_app_" + "k" * 60
APP_ID = str(uuid.uuid4())


def text(value):
    return {F: {"type": "plain_text_input", "value": value}}


def selected(value):
    return {F: {"type": "static_select", "selected_option": {"value": value} if value else None}}


def app_values(name="main", app_id=APP_ID, key=KEY, default=False):
    chosen = [{"value": "default"}] if default else []
    return {
        const.BLOCK_SETUP_APP_NAME: text(name),
        const.BLOCK_SETUP_APP_ID: text(app_id),
        const.BLOCK_SETUP_APP_KEY: text(key),
        const.BLOCK_SETUP_APP_DEFAULT: {F: {"type": "checkboxes", "selected_options": chosen}},
    }


def test_a_good_app_form_gives_its_entry_with_the_key_kept_secret():
    entry = parse_app_form(app_values(app_id=APP_ID.upper(), key=f" {KEY} ", default=True), "")

    assert (entry.name, entry.app_id, entry.make_default, entry.replace) == (
        "main",
        APP_ID,
        True,
        False,
    )
    assert entry.api_key.get_secret_value() == KEY
    assert KEY not in repr(entry)


def test_the_replace_form_takes_its_name_from_the_metadata():
    values = app_values(name="")
    del values[const.BLOCK_SETUP_APP_NAME]

    entry = parse_app_form(values, json.dumps({"replace": "stale"}))

    assert (entry.name, entry.replace) == ("stale", True)


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        (const.BLOCK_SETUP_APP_NAME, app_values(name="my app"), "not a usable app name"),
        (const.BLOCK_SETUP_APP_ID, app_values(app_id="12345"), "not a OneSignal app id"),
        (const.BLOCK_SETUP_APP_KEY, app_values(key=""), "Paste the app's REST API key"),
        (const.BLOCK_SETUP_APP_KEY, app_values(key=KEY + " extra"), "has no spaces"),
        (const.BLOCK_SETUP_APP_KEY, app_values(key="k" * 501), "far longer"),
    ],
)
def test_each_bad_app_field_is_named_and_the_key_never_echoed(field, values, message):
    with pytest.raises(FormErrors) as refused:
        parse_app_form(values, "")

    assert list(refused.value.errors) == [field]
    assert message in refused.value.errors[field]
    assert KEY not in str(refused.value) and "kkkkkkkk" not in str(refused.value)


def test_several_bad_fields_are_all_named():
    with pytest.raises(FormErrors) as refused:
        parse_app_form(app_values(name="", app_id="", key=""), "not json")

    assert set(refused.value.errors) == {
        const.BLOCK_SETUP_APP_NAME,
        const.BLOCK_SETUP_APP_ID,
        const.BLOCK_SETUP_APP_KEY,
    }


def roles_values(change="give", role="approver", users=(), groups=""):
    return {
        const.BLOCK_SETUP_ROLE_CHANGE: {
            F: {"type": "radio_buttons", "selected_option": {"value": change}}
        },
        const.BLOCK_SETUP_ROLE: selected(role),
        const.BLOCK_SETUP_ROLE_USERS: {
            F: {"type": "multi_users_select", "selected_users": list(users)}
        },
        const.BLOCK_SETUP_ROLE_GROUPS: text(groups),
    }


def test_a_role_change_for_people_and_groups():
    change = parse_roles_form(
        roles_values(users=["U0BOB", "U0BOB"], groups="s0oncall, <!subteam^S0OPS|@ops>")
    )

    assert change.give and change.role is Role.APPROVER
    assert change.subjects == ("U0BOB", "S0ONCALL", "S0OPS")
    assert not parse_roles_form(roles_values(change="remove", users=["U0BOB"])).give


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (roles_values(), const.BLOCK_SETUP_ROLE_USERS, "at least one person or user group"),
        (roles_values(role=None, users=["U1"]), const.BLOCK_SETUP_ROLE, "Choose a role"),
        (
            roles_values(groups="oncall"),
            const.BLOCK_SETUP_ROLE_GROUPS,
            "oncall is not a user group",
        ),
    ],
)
def test_a_role_change_without_whom_or_with_a_bad_group_is_refused(values, field, message):
    with pytest.raises(FormErrors) as refused:
        parse_roles_form(values)

    assert message in refused.value.errors[field]


def test_group_ids_are_split_on_commas_and_spaces():
    assert parse_group_ids(" S0A1,S0B2  s0c3 ,") == (["S0A1", "S0B2", "S0C3"], [])
    assert parse_group_ids("S0A1 @oncall") == (["S0A1"], ["@oncall"])


def policy_values(mode="segments", approvals="2", channel="C0APPROVE", users=None):
    values = {
        const.BLOCK_SETUP_POLICY_MODE: {
            F: {"type": "radio_buttons", "selected_option": {"value": mode}}
        },
        const.BLOCK_SETUP_POLICY_APPROVALS: selected(approvals),
        const.BLOCK_SETUP_POLICY_CHANNEL: {
            F: {"type": "conversations_select", "selected_conversation": channel}
        },
    }
    if users is not None:
        values[const.BLOCK_SETUP_POLICY_USERS] = {F: {"type": "number_input", "value": users}}
    return values


def test_the_policy_form_gives_a_policy():
    assert parse_policy_form(policy_values()) == ApprovalPolicy("segments", 2, "C0APPROVE")
    assert parse_policy_form(policy_values(mode="off", channel=None)) == ApprovalPolicy(approvals=2)


def test_the_policy_form_reads_how_many_listed_users_need_no_approval():
    assert parse_policy_form(policy_values(users="25")).user_threshold == 25
    assert parse_policy_form(policy_values(users="0")).user_threshold == 0
    assert parse_policy_form(policy_values()).user_threshold == 100  # not sent: the default


@pytest.mark.parametrize("users", ["-3", "20001", "1.5", "many"])
def test_a_listed_users_threshold_out_of_range_is_refused_on_its_field(users):
    with pytest.raises(FormErrors) as refused:
        parse_policy_form(policy_values(users=users))

    assert list(refused.value.errors) == [const.BLOCK_SETUP_POLICY_USERS]
    assert "0 to 20,000" in refused.value.errors[const.BLOCK_SETUP_POLICY_USERS]


def test_a_policy_needing_approvals_without_a_channel_is_refused_on_the_channel():
    with pytest.raises(FormErrors) as refused:
        parse_policy_form(policy_values(mode="all", channel=None))

    assert refused.value.errors == {
        const.BLOCK_SETUP_POLICY_CHANNEL: "Choose the channel where approvers are asked."
    }
