"""The `/push setup` modal: its home (apps, log channel, approvals, roles) and its forms.

One modal whose content changes: a button in the home replaces it with a form, a form's
"Back" or a saved form brings the home back. No builder ever takes a REST API key: the key
typed into the app form is never drawn again, in any view, metadata or error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bot import const
from bot.policy import MAX_APPROVALS, MAX_USER_THRESHOLD, ApprovalPolicy, Role
from commands._format import Block, code, context, escape, section
from commands.views.limits import SECTION_TEXT, pack, summarize

View = dict[str, Any]

TITLE: Final = "PushOps setup"
MAX_APPS_SHOWN: Final = 30
"""Apps listed in the home (two blocks each; a modal holds at most 100 blocks)."""
ROLE_SHOWN: Final = 900
"""Characters of one role's holders in the home (three roles share one section); the roles
form lists every holder."""
HOLDERS_LISTED: Final = 2000
"""Holders of one role listed in the roles form: at most 25 characters each, they fill at
most 17 sections a role, and the form with its fields stays within a modal's 100 blocks."""
F: Final = const.ACTION_SETUP_FIELD

ROLE_LABELS: Final[Mapping[Role, str]] = {
    Role.ADMIN: "Admin",
    Role.SENDER: "Sender",
    Role.APPROVER: "Approver",
    Role.RESPONDER: "Responder",
}
ROLE_RIGHTS: Final = (
    "Senders send, cancel any send and look users up. Responders (on call) cancel any send "
    "and look users up, but neither send nor approve. Approvers approve sends that need it. "
    "Admins hold every role. Everyone else sees sends and cancels their own. Guests hold "
    "only the roles given to them by name, not those of their user groups."
)
"""What each role may do, under the roles in the home and in the roles form."""
MODE_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "off": ("Off", "No send needs approval."),
    "segments": (
        "Sends to segments",
        "A send to a segment, or to many listed users, needs approval.",
    ),
    "all": ("Every send", "Every send needs approval, test sends included."),
}


@dataclass(frozen=True)
class AppRow:
    """A configured OneSignal app as the home lists it (never its key)."""

    name: str
    onesignal_app_id: str
    is_default: bool = False
    from_settings: bool = False


OPEN_SENDING: Final = (
    "*Everyone in this workspace may send pushes* (guests excepted), because nobody is named "
    "a sender yet; each may cancel their own. That suits a small team; name senders to let "
    "only them (and admins) send."
)
"""The warning admins see until someone holds the sender role."""


def open_sending_blocks(action_id: str) -> list[Block]:
    """The warning that everyone may send, with the button naming senders (`action_id`)."""
    name = button("Name senders", action_id, style="primary")
    return [{**section(f":warning: {OPEN_SENDING}"), "accessory": name}]


@dataclass(frozen=True)
class SetupState:
    """What the setup home shows.

    Attributes:
        members: role -> the users (U…/W…) and user groups (S…) holding it.
        policy_problem: why the stored approval policy cannot be read (shown, to be fixed).
    """

    apps: tuple[AppRow, ...] = ()
    log_channel_id: str | None = None
    policy: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    policy_problem: str | None = None
    members: Mapping[Role, tuple[str, ...]] = field(default_factory=dict)

    @property
    def senders_named(self) -> bool:
        """Whether anyone holds the sender role (until then everyone may send)."""
        return bool(self.members.get(Role.SENDER))


# --- pieces --------------------------------------------------------------------------------------


def _text(value: str, *, emoji: bool = True) -> dict[str, Any]:
    return {"type": "plain_text", "text": value, "emoji": emoji}


def button(
    label: str,
    action_id: str,
    value: str = "",
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A button element."""
    element: dict[str, Any] = {"type": "button", "action_id": action_id, "text": _text(label)}
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def _actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def _modal(callback_id: str, blocks: list[Block], **extra: Any) -> View:
    view: View = {
        "type": "modal",
        "callback_id": callback_id,
        "title": _text(extra.pop("title", TITLE)),
        "close": _text(extra.pop("close", "Close")),
        "blocks": blocks,
    }
    if "submit" in extra:
        view["submit"] = _text(extra.pop("submit"))
    view.update(extra)
    return view


def _input(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    hint: str | None = None,
    optional: bool = False,
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": {**element, "action_id": F},
        "optional": optional,
    }
    if hint:
        block["hint"] = _text(hint)
    return block


def _option(value: str, label: str, description: str | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"text": _text(label), "value": value}
    if description:
        option["description"] = _text(description)
    return option


def subject_mention(subject_id: str) -> str:
    """A stored role holder as Slack shows it: a user or a user group mention."""
    if subject_id.startswith("S"):
        return f"<!subteam^{subject_id}>"
    return f"<@{subject_id}>"


def banner(message: str, *, ok: bool = True) -> Block:
    """A line at the top of a view saying what just happened (or went wrong)."""
    return section(f"{':white_check_mark:' if ok else ':warning:'} {message}")


# --- the home ------------------------------------------------------------------------------------


def home_view(state: SetupState, *, notice: str | None = None, ok: bool = True) -> View:
    """The setup home; `notice` says what the last step did (`ok=False`: what went wrong)."""
    blocks: list[Block] = [banner(notice, ok=ok)] if notice else []
    if not state.senders_named:
        blocks += open_sending_blocks(const.ACTION_SETUP_NAME_SENDERS)
    blocks += apps_blocks(state.apps)
    blocks += [{"type": "divider"}, *log_channel_blocks(state.log_channel_id)]
    blocks += [{"type": "divider"}, policy_block(state.policy, state.policy_problem)]
    blocks += [{"type": "divider"}, *roles_blocks(state.members)]
    return _modal(const.CALLBACK_SETUP, blocks, close="Done")


def apps_blocks(apps: Sequence[AppRow]) -> list[Block]:
    """Each app with its buttons, then "Add an app"."""
    blocks: list[Block] = [section("*OneSignal apps*")]
    if not apps:
        blocks.append(
            context("No app yet. Add one: PushOps checks its REST API key with OneSignal first.")
        )
    for app in apps[:MAX_APPS_SHOWN]:
        blocks += [section(app_line(app)), app_actions(app)]
    if len(apps) > MAX_APPS_SHOWN:
        hidden = len(apps) - MAX_APPS_SHOWN
        blocks.append(context(f"…and {hidden} more: `pushops apps list` shows every app."))
    blocks.append(_actions(button("Add an app", const.ACTION_SETUP_ADD_APP, style="primary")))
    return blocks


def app_line(app: AppRow) -> str:
    """An app's name, whether it is the default, its OneSignal app id."""
    parts = [f"*{escape(app.name)}*"]
    if app.is_default:
        parts.append("(default)")
    parts.append(f"· app id {code(app.onesignal_app_id)}")
    if app.from_settings:
        parts.append("· from ONESIGNAL_APP_ID: the settings win at the next start")
    return " ".join(parts)


def app_actions(app: AppRow) -> Block:
    """Make default (unless it is), Replace key, Remove (confirmed)."""
    elements = []
    if not app.is_default:
        elements.append(button("Make default", const.ACTION_SETUP_DEFAULT_APP, app.name))
    elements.append(button("Replace key", const.ACTION_SETUP_REPLACE_APP, app.name))
    confirm = {
        "title": _text("Remove this app?"),
        "text": {
            "type": "mrkdwn",
            "text": f"PushOps forgets *{escape(app.name)}* and its key. "
            "Past sends keep their history.",
        },
        "confirm": _text("Remove"),
        "deny": _text("Keep it"),
        "style": "danger",
    }
    elements.append(
        button("Remove", const.ACTION_SETUP_REMOVE_APP, app.name, style="danger", confirm=confirm)
    )
    return _actions(*elements, block_id=f"setup_app:{app.name}")


def log_channel_blocks(channel_id: str | None) -> list[Block]:
    """Where results of sends are posted, with a channel picker (and a way to stop)."""
    text = (
        f"*Log channel*\nResults of sends are posted in <#{channel_id}>."
        if channel_id
        else "*Log channel*\nNot set: results go only to the person who sent."
    )
    picker: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": const.ACTION_SETUP_LOG_CHANNEL,
        "placeholder": _text("Choose a channel"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel_id:
        picker["initial_conversation"] = channel_id
    blocks: list[Block] = [{**section(text), "accessory": picker}]
    if channel_id:
        blocks.append(_actions(button("Stop posting results", const.ACTION_SETUP_LOG_OFF)))
    return blocks


def policy_text(policy: ApprovalPolicy) -> str:
    """The approval policy in a sentence."""
    if policy.mode == "off":
        return "Off: no send needs approval."
    # Test sends wait too under "every send": `/push me` links any external id without proof
    # that it is the caller's, so a test send can reach anyone (`bot.policy.approvals_required`).
    who = (
        f"Sends to a segment or to more than {users_words(policy.user_threshold)} need"
        if policy.mode == "segments"
        else "Every send, test sends included, needs"
    )
    plural = "approval" if policy.approvals == 1 else "approvals"
    return (
        f"{who} {policy.approvals} {plural} by distinct approvers, asked in <#{policy.channel_id}>."
    )


def users_words(count: int) -> str:
    """`100 listed users`, `1 listed user`."""
    return f"{count:,} listed user{'' if count == 1 else 's'}"


def policy_block(policy: ApprovalPolicy, problem: str | None = None) -> Block:
    """The approval policy with its "Change" button."""
    text = f"*Approvals*\n{escape(problem) if problem else policy_text(policy)}"
    return {**section(text), "accessory": button("Change", const.ACTION_SETUP_POLICY)}


def roles_text(members: Mapping[Role, Sequence[str]]) -> str:
    """Who holds each role; a long list shows what fits (ROLE_SHOWN) and counts the rest."""
    lines = ["*Roles*"]
    for role, label in ROLE_LABELS.items():
        holders = members.get(role) or ()
        if not holders:
            nobody = ", so everyone but guests may send" if role is Role.SENDER else ""
            lines.append(f"{label}s: nobody named{nobody}")
            continue
        shown, hidden = summarize(holders, ROLE_SHOWN, render=subject_mention)
        count = f" ({len(holders):,}; *Change* lists them all)" if hidden else ""
        lines.append(f"{label}s{count}: {shown}")
    return "\n".join(lines)


def holders_blocks(members: Mapping[Role, Sequence[str]]) -> list[Block]:
    """Every holder of each role, for the roles form (the home shows only the first ones);
    past HOLDERS_LISTED of one role, the rest are counted."""
    blocks = []
    for role, label in ROLE_LABELS.items():
        holders = members.get(role) or ()
        if not holders:
            blocks.append(section(f"*{label}s*: nobody named"))
            continue
        head = f"*{label}s* ({len(holders):,})"
        mentions = [subject_mention(s) for s in holders[:HOLDERS_LISTED]]
        if len(holders) > HOLDERS_LISTED:
            mentions.append(f"… and {len(holders) - HOLDERS_LISTED:,} more")
        texts = pack(mentions, limit=SECTION_TEXT - len(head) - 1, joiner=", ")
        blocks += [section(f"{head}\n{texts[0]}"), *(section(text) for text in texts[1:])]
    return blocks


def roles_blocks(members: Mapping[Role, Sequence[str]]) -> list[Block]:
    """The role holders, a "Change" button, and who is an admin anyway."""
    return [
        {**section(roles_text(members)), "accessory": button("Change", const.ACTION_SETUP_ROLES)},
        context(
            f"Slack workspace admins and owners, and the users in PUSHOPS_ADMINS, are always "
            f"admins. {ROLE_RIGHTS}"
        ),
    ]


# --- the app form --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppFormState:
    """What the app form shows again (never the key).

    Attributes:
        replace: the name of the app whose key is replaced; None when adding an app.
        errors: block id -> problem, drawn under that field (after the check with OneSignal,
            when Slack's inline errors are no longer possible); "" for the whole form.
    """

    replace: str | None = None
    name: str = ""
    app_id: str = ""
    make_default: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)


def app_form_metadata(replace: str | None) -> str:
    """The app form's private_metadata: which app it replaces, nothing else."""
    return json.dumps({"replace": replace or ""})


def app_form_view(form: AppFormState) -> View:
    """The form adding an app (name, app id, key, default?) or replacing an app's key."""
    blocks: list[Block] = []
    if form.errors.get(""):
        blocks.append(banner(form.errors[""], ok=False))
    blocks += _name_blocks(form)
    blocks.append(
        _input(
            const.BLOCK_SETUP_APP_ID,
            "OneSignal App ID",
            _plain_input(form.app_id, "8f1c2d3e-…"),
            hint="OneSignal: Settings > Keys & IDs.",
        )
    )
    blocks += _error_under(form, const.BLOCK_SETUP_APP_ID)
    blocks.append(
        _input(
            const.BLOCK_SETUP_APP_KEY,
            "REST API key",
            _plain_input("", "os_v2_app_…"),
            hint="Checked with OneSignal, then stored encrypted. PushOps never shows it again.",
        )
    )
    blocks += _error_under(form, const.BLOCK_SETUP_APP_KEY)
    if form.replace is None:
        blocks.append(_default_checkbox(form.make_default))
    blocks.append(_actions(button("Back", const.ACTION_SETUP_BACK)))
    title = "Replace a key" if form.replace else "Add a OneSignal app"
    return _modal(
        const.CALLBACK_SETUP_APP,
        blocks,
        title=title,
        submit="Check and save",
        close="Cancel",
        private_metadata=app_form_metadata(form.replace),
    )


def _name_blocks(form: AppFormState) -> list[Block]:
    if form.replace is not None:
        return [section(f"New app id and REST API key for *{escape(form.replace)}*.")]
    name_input = _input(
        const.BLOCK_SETUP_APP_NAME,
        "Name in PushOps",
        _plain_input(form.name, "main"),
        hint="What `/push send --app NAME` uses: letters, digits, '.', '_' or '-'.",
    )
    return [name_input, *_error_under(form, const.BLOCK_SETUP_APP_NAME)]


def _plain_input(initial: str, placeholder: str) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "placeholder": _text(placeholder)}
    if initial:
        element["initial_value"] = initial
    return element


def _default_checkbox(checked: bool) -> Block:
    option = _option("default", "Make this the default app")
    element: dict[str, Any] = {"type": "checkboxes", "options": [option]}
    if checked:
        element["initial_options"] = [option]
    return _input(const.BLOCK_SETUP_APP_DEFAULT, "Default", element, optional=True)


def _error_under(form: AppFormState, block_id: str) -> list[Block]:
    problem = form.errors.get(block_id)
    return [context(f":warning: {escape(problem)}")] if problem else []


def checking_view(name: str, app_id: str) -> View:
    """Shown while OneSignal checks the key (no key in it)."""
    text = (
        f"Checking the REST API key of *{escape(name)}* (app id {code(app_id)}) with "
        "OneSignal… This takes a few seconds."
    )
    return _modal(const.CALLBACK_SETUP, [section(text)], close="Close")


def message_view(message: str, *, ok: bool = False) -> View:
    """A view that only says something (a refusal, a failure)."""
    return _modal(const.CALLBACK_SETUP, [banner(message, ok=ok)], close="Close")


# --- the roles form ------------------------------------------------------------------------------


def roles_form_view(members: Mapping[Role, Sequence[str]], role: Role | None = None) -> View:
    """Give or take a role, for users and user groups at once (`role` chosen to start with)."""
    change = [_option("give", "Give the role"), _option("remove", "Take the role away")]
    roles = [_option(each.value, label) for each, label in ROLE_LABELS.items()]
    chosen: dict[str, Any] = (
        {"initial_option": roles[list(ROLE_LABELS).index(role)]} if role else {}
    )
    blocks: list[Block] = [
        _input(
            const.BLOCK_SETUP_ROLE_CHANGE,
            "Change",
            {"type": "radio_buttons", "options": change, "initial_option": change[0]},
        ),
        _input(
            const.BLOCK_SETUP_ROLE,
            "Role",
            {
                "type": "static_select",
                "options": roles,
                "placeholder": _text("Choose a role"),
                **chosen,
            },
        ),
        _input(
            const.BLOCK_SETUP_ROLE_USERS,
            "People",
            {"type": "multi_users_select", "placeholder": _text("Choose people")},
            optional=True,
        ),
        _input(
            const.BLOCK_SETUP_ROLE_GROUPS,
            "User groups",
            _plain_input("", "S0123ABCD, S0456EFGH"),
            hint="User group ids, separated by commas (a group's ⋮ menu > Copy group ID).",
            optional=True,
        ),
        *holders_blocks(members),
        context(ROLE_RIGHTS),
        _actions(button("Back", const.ACTION_SETUP_BACK)),
    ]
    return _modal(const.CALLBACK_SETUP_ROLES, blocks, title="Roles", submit="Save", close="Cancel")


# --- the approvals form --------------------------------------------------------------------------


def policy_form_view(policy: ApprovalPolicy) -> View:
    """Which sends need approval, how many approvals, and the approvals channel."""
    modes = [_option(mode, *MODE_LABELS[mode]) for mode in MODE_LABELS]
    counts = [_option(str(n), str(n)) for n in range(1, MAX_APPROVALS + 1)]
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "placeholder": _text("Choose a channel"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if policy.channel_id:
        channel["initial_conversation"] = policy.channel_id
    blocks: list[Block] = [
        _input(
            const.BLOCK_SETUP_POLICY_MODE,
            "Which sends need approval",
            {
                "type": "radio_buttons",
                "options": modes,
                "initial_option": modes[list(MODE_LABELS).index(policy.mode)],
            },
        ),
        _input(
            const.BLOCK_SETUP_POLICY_APPROVALS,
            "Approvals needed",
            {
                "type": "static_select",
                "options": counts,
                "initial_option": counts[policy.approvals - 1],
            },
            hint="By distinct approvers; the requester never approves their own send.",
        ),
        _input(
            const.BLOCK_SETUP_POLICY_CHANNEL,
            "Approvals channel",
            channel,
            hint="Approvers are asked there, with Approve and Reject buttons.",
            optional=True,
        ),
        _input(
            const.BLOCK_SETUP_POLICY_USERS,
            "Listed users a send may reach without approval",
            {
                "type": "number_input",
                "is_decimal_allowed": False,
                "min_value": "0",
                "max_value": str(MAX_USER_THRESHOLD),
                "initial_value": str(policy.user_threshold),
            },
            hint='Under "Sends to segments": a send listing more external ids (--user) '
            "needs approval like a segment. A test send to your own linked id never does.",
        ),
        _actions(button("Back", const.ACTION_SETUP_BACK)),
    ]
    return _modal(
        const.CALLBACK_SETUP_POLICY, blocks, title="Approvals", submit="Save", close="Cancel"
    )
