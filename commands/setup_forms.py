"""Reading the `/push setup` forms: submitted values in, a checked entry (or field errors) out.

Pure and fast, so it runs before the ack and a bad field gets Slack's inline error. No
message here ever contains the REST API key that was typed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import SecretStr

from bot import const
from bot.policy import DEFAULT_USER_THRESHOLD, ApprovalPolicy, PolicyError, Role
from bot.workspaces import InvalidInput, validate_app_name, validate_onesignal_app_id

MAX_KEY_LENGTH: Final = 500  # OneSignal keys are about 100 characters
_GROUP_ID: Final = re.compile(r"^S[A-Z0-9]{2,31}$")
_GROUP_MENTION: Final = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>$")

Values = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""A view's `state.values`: block id -> action id -> the element's state."""


class FormErrors(Exception):
    """Fields a person must correct: block id -> what is wrong (Slack shows it under the field)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def _field(values: Values, block_id: str) -> Mapping[str, Any]:
    return values.get(block_id, {}).get(const.ACTION_SETUP_FIELD, {})


def _text(values: Values, block_id: str) -> str:
    return str(_field(values, block_id).get("value") or "").strip()


def _selected(values: Values, block_id: str) -> str | None:
    option = _field(values, block_id).get("selected_option") or {}
    value = option.get("value")
    return str(value) if value else None


# --- the app form --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppEntry:
    """A checked app form: what to verify with OneSignal and save.

    `replace` is True when the form replaces the key of the existing app `name`.
    """

    name: str
    app_id: str
    api_key: SecretStr
    make_default: bool = False
    replace: bool = False


def replaced_app(private_metadata: str) -> str | None:
    """The app whose key the form replaces (from its metadata), or None when adding."""
    try:
        data = json.loads(private_metadata or "{}")
    except json.JSONDecodeError:
        return None
    name = data.get("replace") if isinstance(data, dict) else None
    return str(name) if name else None


def parse_app_form(values: Values, private_metadata: str) -> AppEntry:
    """The app form's entry; FormErrors naming each bad field."""
    replace = replaced_app(private_metadata)
    errors: dict[str, str] = {}
    name = replace or _text(values, const.BLOCK_SETUP_APP_NAME)
    try:
        validate_app_name(name)
    except InvalidInput as error:
        errors[const.BLOCK_SETUP_APP_NAME] = str(error)
    try:
        app_id = validate_onesignal_app_id(_text(values, const.BLOCK_SETUP_APP_ID))
    except InvalidInput as error:
        errors[const.BLOCK_SETUP_APP_ID] = str(error)
    key = _text(values, const.BLOCK_SETUP_APP_KEY)
    key_problem = _key_problem(key)
    if key_problem:
        errors[const.BLOCK_SETUP_APP_KEY] = key_problem
    if errors:
        raise FormErrors(errors)
    chosen = _field(values, const.BLOCK_SETUP_APP_DEFAULT).get("selected_options") or []
    return AppEntry(name, app_id, SecretStr(key), bool(chosen), replace is not None)


def _key_problem(key: str) -> str | None:
    # Fixed sentences only: the key itself must never be echoed back.
    if not key:
        return "Paste the app's REST API key (OneSignal: Settings > Keys & IDs)."
    if len(key) > MAX_KEY_LENGTH:
        return "That is far longer than a REST API key; paste only the key."
    if any(char.isspace() for char in key):
        return "A REST API key has no spaces; paste only the key."
    return None


# --- the roles form ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleChange:
    """Give (or take away) `role` for users and user groups."""

    give: bool
    role: Role
    subjects: tuple[str, ...]


def parse_roles_form(values: Values) -> RoleChange:
    """The roles form's change; FormErrors naming each bad field."""
    errors: dict[str, str] = {}
    role_value = _selected(values, const.BLOCK_SETUP_ROLE)
    if role_value not in {role.value for role in Role}:
        errors[const.BLOCK_SETUP_ROLE] = "Choose a role."
    users = [
        str(u) for u in _field(values, const.BLOCK_SETUP_ROLE_USERS).get("selected_users") or []
    ]
    groups, bad = parse_group_ids(_text(values, const.BLOCK_SETUP_ROLE_GROUPS))
    if bad:
        errors[const.BLOCK_SETUP_ROLE_GROUPS] = (
            f"{bad[0][:40]} is not a user group id; they look like S0123ABCD."
        )
    elif not users and not groups:
        errors[const.BLOCK_SETUP_ROLE_USERS] = "Choose at least one person or user group."
    if errors:
        raise FormErrors(errors)
    give = _selected(values, const.BLOCK_SETUP_ROLE_CHANGE) != "remove"
    return RoleChange(give, Role(str(role_value)), tuple(dict.fromkeys(users + groups)))


def parse_group_ids(text: str) -> tuple[list[str], list[str]]:
    """User group ids (S…, or `<!subteam^S…>` mentions) from `text`: (good, bad)."""
    good: list[str] = []
    bad: list[str] = []
    for word in re.split(r"[,\s]+", text.strip()):
        if not word:
            continue
        mention = _GROUP_MENTION.match(word)
        group = mention.group(1) if mention else word.upper()
        if _GROUP_ID.match(group):
            good.append(group)
        else:
            bad.append(word)
    return good, bad


# --- the approvals form --------------------------------------------------------------------------


def parse_policy_form(values: Values) -> ApprovalPolicy:
    """The approval policy the form describes; FormErrors naming the field to change."""
    mode = _selected(values, const.BLOCK_SETUP_POLICY_MODE) or "off"
    count = _selected(values, const.BLOCK_SETUP_POLICY_APPROVALS) or "1"
    channel = _field(values, const.BLOCK_SETUP_POLICY_CHANNEL).get("selected_conversation")
    users = _text(values, const.BLOCK_SETUP_POLICY_USERS) or str(DEFAULT_USER_THRESHOLD)
    try:
        return ApprovalPolicy(
            mode=mode,  # type: ignore[arg-type]  # checked by ApprovalPolicy itself
            approvals=int(count) if count.isdigit() else 0,
            channel_id=str(channel) if channel else None,
            user_threshold=int(users) if users.isdigit() else -1,
        )
    except PolicyError as error:
        block = _POLICY_BLOCKS.get(error.field, const.BLOCK_SETUP_POLICY_MODE)
        raise FormErrors({block: str(error)}) from None


_POLICY_BLOCKS: Final = {
    "mode": const.BLOCK_SETUP_POLICY_MODE,
    "approvals": const.BLOCK_SETUP_POLICY_APPROVALS,
    "channel_id": const.BLOCK_SETUP_POLICY_CHANNEL,
    "user_threshold": const.BLOCK_SETUP_POLICY_USERS,
}
