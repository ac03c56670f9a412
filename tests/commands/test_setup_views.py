"""The setup modal's builders: within Slack's limits, and never carrying a key."""

import json

import pytest

from bot import const
from bot.policy import ApprovalPolicy, Role
from commands.setup import roles_notice
from commands.setup_forms import RoleChange
from commands.views.setup import (
    MAX_APPS_SHOWN,
    AppFormState,
    AppRow,
    SetupState,
    app_form_view,
    checking_view,
    home_view,
    message_view,
    policy_form_view,
    policy_text,
    roles_form_view,
    roles_text,
)

APP_ID = "8f1c2d3e-0000-4000-8000-000000000001"


def _all_views():
    state = SetupState(
        apps=tuple(AppRow(f"app{i}", APP_ID, i == 0) for i in range(60)),
        log_channel_id="C0LOG",
        policy=ApprovalPolicy("all", 2, "C0APPR"),
        members={Role.ADMIN: ("U0A",), Role.APPROVER: ("S0GROUP", "U0B")},
    )
    return [
        home_view(state, notice="Saved"),
        app_form_view(AppFormState()),
        app_form_view(AppFormState(replace="app1", app_id=APP_ID, errors={"": "x"})),
        checking_view("app1", APP_ID),
        message_view("No."),
        roles_form_view(state.members),
        policy_form_view(state.policy),
    ]


@pytest.mark.parametrize("view", _all_views(), ids=lambda v: v["callback_id"])
def test_every_view_keeps_within_slacks_modal_limits(view):
    assert len(view["blocks"]) <= 100
    assert len(view["title"]["text"]) <= 24
    assert len(view.get("submit", {}).get("text", "")) <= 24
    assert len(view.get("private_metadata", "")) <= 3000
    block_ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    assert not inputs or "submit" in view  # Slack requires a submit button with inputs


def test_the_home_lists_apps_with_their_buttons_and_says_how_many_are_hidden():
    home = home_view(SetupState(apps=tuple(AppRow(f"a{i}", APP_ID) for i in range(40))))

    text = json.dumps(home)
    assert text.count(const.ACTION_SETUP_REPLACE_APP) == MAX_APPS_SHOWN
    assert "and 10 more: `pushops apps list`" in text


def test_the_default_app_has_no_make_default_button_and_removal_is_confirmed():
    home = home_view(SetupState(apps=(AppRow("main", APP_ID, is_default=True),)))

    [actions] = [b for b in home["blocks"] if b.get("block_id") == "setup_app:main"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == [const.ACTION_SETUP_REPLACE_APP, const.ACTION_SETUP_REMOVE_APP]
    assert actions["elements"][1]["confirm"]["style"] == "danger"


def test_the_app_form_shows_earlier_values_but_never_a_key_and_errors_under_their_field():
    form = app_form_view(
        AppFormState(
            name="main",
            app_id=APP_ID,
            errors={const.BLOCK_SETUP_APP_KEY: "OneSignal refused this REST API key"},
        )
    )

    blocks = form["blocks"]
    by_id = {b.get("block_id"): i for i, b in enumerate(blocks)}
    key = blocks[by_id[const.BLOCK_SETUP_APP_KEY]]
    assert "initial_value" not in key["element"]
    assert "refused" in json.dumps(blocks[by_id[const.BLOCK_SETUP_APP_KEY] + 1])
    assert blocks[by_id[const.BLOCK_SETUP_APP_ID]]["element"]["initial_value"] == APP_ID
    assert json.loads(form["private_metadata"]) == {"replace": ""}


def test_policy_and_roles_read_as_sentences():
    assert policy_text(ApprovalPolicy()) == "Off: no send needs approval."
    assert policy_text(ApprovalPolicy("all", 1, "C1")) == (
        "Every send, test sends included, needs 1 approval by distinct approvers, asked in <#C1>."
    )
    assert policy_text(ApprovalPolicy("segments", 2, "C1", user_threshold=100)) == (
        "Sends to a segment or to more than 100 listed users need 2 approvals by distinct "
        "approvers, asked in <#C1>."
    )
    text = roles_text({Role.APPROVER: ("S0OPS", "U0B"), Role.RESPONDER: ("S0ONCALL",)})
    assert "Approvers: <!subteam^S0OPS>, <@U0B>" in text
    assert "Senders: nobody named, so everyone but guests may send" in text
    assert "Responders: <!subteam^S0ONCALL>" in text
    assert "Admins: nobody named" in text


def test_the_policy_form_starts_from_the_current_policy():
    form = policy_form_view(ApprovalPolicy("segments", 3, "C0APPR"))

    fields = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
    assert fields[const.BLOCK_SETUP_POLICY_MODE]["initial_option"]["value"] == "segments"
    assert fields[const.BLOCK_SETUP_POLICY_APPROVALS]["initial_option"]["value"] == "3"
    assert fields[const.BLOCK_SETUP_POLICY_CHANNEL]["initial_conversation"] == "C0APPR"
    assert fields[const.BLOCK_SETUP_POLICY_USERS]["initial_value"] == "100"
    assert fields[const.BLOCK_SETUP_POLICY_USERS]["type"] == "number_input"


def test_the_home_warns_that_everyone_may_send_only_until_senders_are_named():
    open_to_all = json.dumps(home_view(SetupState(members={Role.APPROVER: ("U0B",)})))
    named = json.dumps(home_view(SetupState(members={Role.SENDER: ("S0TEAM",)})))

    assert "Everyone in this workspace may send pushes* (guests excepted)" in open_to_all
    assert "each may cancel their own" in open_to_all
    assert const.ACTION_SETUP_NAME_SENDERS in open_to_all
    assert "Everyone in this workspace may send" not in named
    assert const.ACTION_SETUP_NAME_SENDERS not in named


@pytest.mark.parametrize(
    ("change", "changed", "notice"),
    [
        (RoleChange(True, Role.SENDER, ("U0B",)), ["U0B"], "<@U0B> now holds the sender role."),
        (
            RoleChange(True, Role.SENDER, ("U0B", "S0T")),
            ["U0B", "S0T"],
            "<@U0B>, <!subteam^S0T> now hold the sender role.",
        ),
        (
            RoleChange(False, Role.APPROVER, ("U0B",)),
            ["U0B"],
            "<@U0B> no longer holds the approver role.",
        ),
        (
            RoleChange(True, Role.SENDER, ("U0B",)),
            [],
            "Nothing changed: <@U0B> already held the sender role.",
        ),
        (
            RoleChange(False, Role.SENDER, ("U0B", "U0C")),
            [],
            "Nothing changed: none of them held the sender role.",
        ),
    ],
)
def test_a_roles_notice_agrees_with_how_many_it_names(change, changed, notice):
    assert roles_notice(change, changed) == notice
