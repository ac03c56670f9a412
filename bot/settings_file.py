"""A workspace's settings as a YAML document (`pushops export-settings|import-settings`): its
OneSignal apps (never their keys), who holds which role, the approval policy and log channel.

Pure: reading and writing the document and the difference between two of them; the commands
that read the database and apply a difference are in `bot.cli_settings`. A section the
document leaves out (`apps`, `roles` or `policy`) is left as it is; a section it has is the
whole truth, so a role holder missing from `roles` loses the role.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.cli_common import MASK
from bot.policy import ApprovalPolicy, PolicyError, Role
from storage.errors import InvalidInput
from storage.workspaces import validate_app_name, validate_onesignal_app_id, validate_team_id

USER_ID: Final = re.compile(r"^[UW][A-Z0-9]{2,31}$")
GROUP_ID: Final = re.compile(r"^S[A-Z0-9]{2,31}$")
CHANNEL_ID: Final = re.compile(r"^[CG][A-Z0-9]{2,31}$")


class SettingsFileError(ValueError):
    """A settings document that cannot be used; the message names the line."""


@dataclass(frozen=True)
class AppSetting:
    """One OneSignal app of a workspace: its name, id, whether it is the default, and (in an
    export only) its masked key."""

    name: str
    onesignal_app_id: str
    default: bool = False
    masked_key: str = ""


@dataclass(frozen=True)
class WorkspaceSettings:
    """A workspace's settings; None for a section the document leaves out."""

    team_id: str
    apps: tuple[AppSetting, ...] | None = None
    roles: Mapping[Role, tuple[str, ...]] | None = None
    policy: ApprovalPolicy | None = None
    log_channel: str | None = None


def subject_error(subject: str) -> str | None:
    """Why `subject` is not a Slack user (U…/W…) or user group (S…) id; None when it is one."""
    if USER_ID.match(subject) or GROUP_ID.match(subject):
        return None
    return f"{subject!r} is not a Slack user id (U… or W…) or user group id (S…)"


def channel_error(channel: str) -> str | None:
    """Why `channel` is not a Slack channel id (C… or G…); None when it is one."""
    if CHANNEL_ID.match(channel):
        return None
    return f"{channel!r} is not a Slack channel id (like C0123ABCD)"


# --- writing ----------------------------------------------------------------------------------


def render(settings: WorkspaceSettings) -> str:
    """The document for `settings` (every section), with a header saying what it is."""
    document: dict[str, Any] = {"team": settings.team_id}
    document["apps"] = [
        {
            "name": app.name,
            "onesignal_app_id": app.onesignal_app_id,
            "default": app.default,
            "key": app.masked_key,
        }
        for app in settings.apps or ()
    ]
    roles = settings.roles or {}
    document["roles"] = {role.value: list(roles.get(role, ())) for role in Role}
    policy = settings.policy or ApprovalPolicy()
    document["policy"] = {
        "mode": policy.mode,
        "approvals": policy.approvals,
        "channel": policy.channel_id,
        "user_threshold": policy.user_threshold,
        "log_channel": settings.log_channel,
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return HEADER + body


HEADER: Final = (
    "# PushOps settings of one workspace (`pushops import-settings FILE` applies them).\n"
    "# Keys are masked and never read from this file: an app new to the workspace (or with a\n"
    "# new onesignal_app_id) takes its key from ONESIGNAL_API_KEY_<NAME> (the name upper-cased,\n"
    "# '-' and '.' as '_'), ONESIGNAL_API_KEY, or a prompt. A section left out is left as it is.\n"
)


# --- reading ----------------------------------------------------------------------------------


def parse(text: str, *, source: str = "the file") -> WorkspaceSettings:
    """The settings in a document; SettingsFileError naming the line of what is wrong."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise SettingsFileError(f"{source}{line}: not YAML ({error.problem}).") from None
    except yaml.YAMLError as error:
        raise SettingsFileError(f"{source}: not YAML ({error}).") from None
    finally:
        loader.dispose()
    if root is None:
        raise SettingsFileError(f"{source} is empty.")
    return _Reader(source).workspace(root)


@dataclass
class _Reader:
    source: str
    constructor: yaml.SafeLoader = field(init=False)

    def __post_init__(self) -> None:
        self.constructor = yaml.SafeLoader("")

    def fail(self, node: Node, message: str) -> SettingsFileError:
        return SettingsFileError(f"{self.source}, line {node.start_mark.line + 1}: {message}.")

    def mapping(self, node: Node, what: str, allowed: Iterable[str]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)")
        found: dict[str, Node] = {}
        names = list(allowed)
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if name not in names:
                raise self.fail(key, f"unknown key {name!r} in {what}; use {', '.join(names)}")
            if name in found:
                raise self.fail(key, f"{name!r} appears twice in {what}")
            found[name] = value
        return found

    def items(self, node: Node, what: str) -> list[Node]:
        if isinstance(node, ScalarNode) and self.value(node) is None:
            return []
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def value(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return node  # a mapping or list where a value belongs: the caller's checks refuse it
        return self.constructor.construct_object(node, deep=True)

    def text(self, node: Node, what: str, *, optional: bool = False) -> str | None:
        value = self.value(node)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{what} must be text")
        return value.strip()

    def number(self, node: Node, what: str) -> int:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(node, f"{what} must be a whole number")
        return value

    def checked(self, node: Node, check: Any, value: str) -> str:
        try:
            result: str = check(value)
        except InvalidInput as error:
            raise self.fail(node, str(error).rstrip(".")) from None
        return result

    def workspace(self, root: Node) -> WorkspaceSettings:
        parts = self.mapping(root, "the document", ("team", "apps", "roles", "policy"))
        if "team" not in parts:
            raise self.fail(root, "the document names no workspace (team: T…)")
        team = self.checked(parts["team"], validate_team_id, self.text(parts["team"], "team") or "")
        policy = self.policy(parts["policy"]) if "policy" in parts else None
        return WorkspaceSettings(
            team_id=team,
            apps=self.apps(parts["apps"]) if "apps" in parts else None,
            roles=self.roles(parts["roles"]) if "roles" in parts else None,
            policy=policy[0] if policy else None,
            log_channel=policy[1] if policy else None,
        )

    def apps(self, node: Node) -> tuple[AppSetting, ...]:
        apps: list[AppSetting] = []
        defaults = 0
        for item in self.items(node, "apps"):
            fields = self.mapping(item, "an app", ("name", "onesignal_app_id", "default", "key"))
            for required in ("name", "onesignal_app_id"):
                if required not in fields:
                    raise self.fail(item, f"an app needs its {required}")
            name = self.checked(
                fields["name"], validate_app_name, self.text(fields["name"], "name") or ""
            )
            if any(app.name == name for app in apps):
                raise self.fail(fields["name"], f"the app {name!r} is listed twice")
            app_id = self.text(fields["onesignal_app_id"], "onesignal_app_id") or ""
            app_id = self.checked(fields["onesignal_app_id"], validate_onesignal_app_id, app_id)
            default = self.value(fields["default"]) if "default" in fields else False
            if not isinstance(default, bool):
                raise self.fail(fields["default"], "default must be true or false")
            if "key" in fields:
                self.masked(fields["key"])
            defaults += default
            if defaults > 1:
                raise self.fail(item, "only one app can be the default")
            apps.append(AppSetting(name, app_id, default))
        return tuple(apps)

    def masked(self, node: Node) -> None:
        key = self.value(node)
        if key in (None, "") or (isinstance(key, str) and key.startswith(MASK)):
            return
        raise self.fail(
            node,
            "a key is never read from the file (it would end up in version control): remove "
            "it and give it in ONESIGNAL_API_KEY_<NAME> or at the prompt",
        )

    def roles(self, node: Node) -> dict[Role, tuple[str, ...]]:
        parts = self.mapping(node, "roles", [role.value for role in Role])
        roles: dict[Role, tuple[str, ...]] = {role: () for role in Role}
        for name, holders in parts.items():
            subjects: list[str] = []
            for item in self.items(holders, f"the {name} role"):
                subject = self.text(item, f"a holder of the {name} role") or ""
                problem = subject_error(subject)
                if problem:
                    raise self.fail(item, problem)
                if subject not in subjects:
                    subjects.append(subject)
            roles[Role(name)] = tuple(subjects)
        return roles

    def policy(self, node: Node) -> tuple[ApprovalPolicy, str | None]:
        allowed = ("mode", "approvals", "channel", "user_threshold", "log_channel")
        parts = self.mapping(node, "policy", allowed)
        channels = {
            name: self.channel(parts[name], name) if name in parts else None
            for name in ("channel", "log_channel")
        }
        try:
            policy = ApprovalPolicy(
                mode=self.text(parts["mode"], "mode") if "mode" in parts else "off",  # type: ignore[arg-type]  # checked by ApprovalPolicy
                approvals=self.number(parts["approvals"], "approvals")
                if "approvals" in parts
                else 1,
                channel_id=channels["channel"],
                user_threshold=self.number(parts["user_threshold"], "user_threshold")
                if "user_threshold" in parts
                else ApprovalPolicy().user_threshold,
            )
        except PolicyError as error:
            at = {"mode": "mode", "approvals": "approvals", "channel_id": "channel"}
            where = parts.get(at.get(error.field, "user_threshold"), node)
            raise self.fail(where, str(error).rstrip(".")) from None
        return policy, channels["log_channel"]

    def channel(self, node: Node, what: str) -> str | None:
        channel = self.text(node, what, optional=True)
        if channel is None:
            return None
        problem = channel_error(channel)
        if problem:
            raise self.fail(node, problem)
        return channel


# --- the difference ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Changes:
    """What applying a document changes, in the order it is applied."""

    add_apps: tuple[AppSetting, ...] = ()
    """Apps new to the workspace, or whose onesignal_app_id changes (each needs a key)."""
    make_default: str | None = None
    remove_apps: tuple[str, ...] = ()
    give: tuple[tuple[Role, str], ...] = ()
    take: tuple[tuple[Role, str], ...] = ()
    policy: ApprovalPolicy | None = None
    log_channel: tuple[str | None] | None = None
    """The new log channel (in a 1-tuple, as None means none), or None to leave it."""
    replaced: frozenset[str] = frozenset()
    """Names among `add_apps` that exist already (their id and key are replaced)."""

    def __bool__(self) -> bool:
        return bool(
            self.add_apps
            or self.make_default
            or self.remove_apps
            or self.give
            or self.take
            or self.policy is not None
            or self.log_channel is not None
        )

    def lines(self, current: WorkspaceSettings) -> list[str]:
        """The difference, one line each: `+` added, `-` removed, `~` changed."""
        lines = [
            f"{'~' if app.name in self.replaced else '+'} app {app.name}: "
            f"onesignal_app_id {app.onesignal_app_id}" + (" (default)" if app.default else "")
            for app in self.add_apps
        ]
        if self.make_default:
            lines.append(f"~ app {self.make_default}: becomes the default")
        lines += [f"- app {name} (and its key)" for name in self.remove_apps]
        lines += [f"+ role {role.value}: {subject}" for role, subject in self.give]
        lines += [f"- role {role.value}: {subject}" for role, subject in self.take]
        if self.policy is not None:
            lines += _policy_lines(current.policy or ApprovalPolicy(), self.policy)
        if self.log_channel is not None:
            lines.append(
                f"~ policy log_channel: {current.log_channel or 'none'} -> "
                f"{self.log_channel[0] or 'none'}"
            )
        return lines


def _policy_lines(old: ApprovalPolicy, new: ApprovalPolicy) -> list[str]:
    pairs = {
        "mode": (old.mode, new.mode),
        "approvals": (old.approvals, new.approvals),
        "channel": (old.channel_id or "none", new.channel_id or "none"),
        "user_threshold": (old.user_threshold, new.user_threshold),
    }
    return [f"~ policy {name}: {a} -> {b}" for name, (a, b) in pairs.items() if a != b]


def changes(current: WorkspaceSettings, wanted: WorkspaceSettings) -> Changes:
    """What makes `current` what `wanted` says (its left-out sections change nothing)."""
    found: dict[str, Any] = {}
    if wanted.apps is not None:
        found.update(_app_changes(current.apps or (), wanted.apps))
    if wanted.roles is not None:
        now = current.roles or {}
        found["give"] = _missing(wanted.roles, now)
        found["take"] = _missing(now, wanted.roles)
    if wanted.policy is not None:
        if wanted.policy != (current.policy or ApprovalPolicy()):
            found["policy"] = wanted.policy
        if wanted.log_channel != current.log_channel:
            found["log_channel"] = (wanted.log_channel,)
    return Changes(**found)


def _missing(
    these: Mapping[Role, tuple[str, ...]], there: Mapping[Role, tuple[str, ...]]
) -> tuple[tuple[Role, str], ...]:
    """(role, holder) in `these` but not `there`."""
    return tuple(
        (role, subject)
        for role in Role
        for subject in these.get(role, ())
        if subject not in there.get(role, ())
    )


def _app_changes(now: tuple[AppSetting, ...], wanted: tuple[AppSetting, ...]) -> dict[str, Any]:
    by_name = {app.name: app for app in now}
    add = tuple(
        app
        for app in wanted
        if app.name not in by_name or by_name[app.name].onesignal_app_id != app.onesignal_app_id
    )
    added = {app.name for app in add}
    default = next((app.name for app in wanted if app.default), None)
    current_default = next((app.name for app in now if app.default), None)
    make_default = (
        default if default and default != current_default and default not in added else None
    )
    return {
        "add_apps": add,
        "replaced": frozenset(added & set(by_name)),
        "make_default": make_default,
        "remove_apps": tuple(app.name for app in now if app.name not in {a.name for a in wanted}),
    }


def key_variable(app_name: str) -> str:
    """The environment variable holding the key of app `app_name` for an import."""
    return "ONESIGNAL_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", app_name.upper())
