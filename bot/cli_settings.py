"""`pushops roles|policy|export-settings|import-settings`: a workspace's roles, approval policy
and apps from the command line, and as a YAML file kept in version control.

Every change goes through the workspace service (`bot.workspaces`), the one `/push setup`
uses, so it writes the same rows and audit events; the actor is `cli:` and the operator's
name (`--actor`, else the OS user). Running processes see a change within a few seconds
(they keep roles, apps and the policy that long; `bot.workspaces.TEAM_TTL`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import SecretStr

from bot.cli_common import (
    CliError,
    cli_settings,
    existing_keyring,
    masked_key,
    new_keyring,
    operator,
    print_table,
    read_api_key,
    sync,
    verify_key,
    with_database,
    workspace_service,
)
from bot.policy import ApprovalMode, ApprovalPolicy, PolicyError, Role
from bot.settings import Settings
from bot.settings_file import (
    AppSetting,
    Changes,
    SettingsFileError,
    WorkspaceSettings,
    changes,
    channel_error,
    key_variable,
    parse,
    render,
    subject_error,
)
from bot.words import plural
from bot.workspaces import Snapshot, Workspaces, is_usergroup_id
from storage.crypto import KeyRing
from storage.db import Database
from storage.workspaces import validate_team_id

# --- parser -----------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Add `roles`, `policy`, `export-settings` and `import-settings` to the parser."""
    _add_roles(subparsers)
    _add_policy(subparsers)
    export = subparsers.add_parser(
        "export-settings",
        help="Print a workspace's apps (keys masked), roles and policy as YAML.",
    )
    export.add_argument("--team", required=True, help="Slack workspace id (T…)")
    export.set_defaults(handler=sync(_export))
    imported = subparsers.add_parser(
        "import-settings",
        help="Apply a settings file made by export-settings; shows the difference first.",
        description="Apply a settings file: print what changes, then change it. Keys are "
        "never read from the file: an app new to the workspace takes its key from "
        "ONESIGNAL_API_KEY_<NAME>, ONESIGNAL_API_KEY (one such app) or a prompt, checked "
        "with OneSignal before anything is saved.",
    )
    imported.add_argument("file", metavar="FILE", help="the YAML file (`-`: standard input)")
    imported.add_argument("--dry-run", action="store_true", help="show the difference only")
    imported.add_argument("--no-verify", action="store_true", help="save keys unchecked")
    _actor_option(imported)
    imported.set_defaults(handler=sync(_import))


def _actor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--actor", help="who makes the change, for the audit log (default: the OS user)"
    )


def _team_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", required=True, help="Slack workspace id (T…)")


def _add_roles(subparsers: Any) -> None:
    text = "List, give and take PushOps roles (as /push setup does)."
    actions = subparsers.add_parser("roles", help=text, description=text).add_subparsers(
        dest="roles_command", metavar="ACTION", required=True
    )
    listing = actions.add_parser("list", help="Who holds which role.")
    _team_option(listing)
    listing.add_argument(
        "--role", choices=[role.value for role in Role], help="only the holders of this role"
    )
    listing.set_defaults(handler=sync(_roles_list))
    for name, give in (("add", True), ("remove", False)):
        verb = "Give a role to" if give else "Take a role from"
        action = actions.add_parser(name, help=f"{verb} a user or user group.")
        _team_option(action)
        action.add_argument("--role", required=True, choices=[role.value for role in Role])
        who = action.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="Slack user id (U… or W…)")
        who.add_argument("--group", help="Slack user group id (S…)")
        _actor_option(action)
        action.set_defaults(handler=sync(_roles_change), give=give)


def _add_policy(subparsers: Any) -> None:
    text = "Show or set the approval policy and log channel (as /push setup does)."
    actions = subparsers.add_parser("policy", help=text, description=text).add_subparsers(
        dest="policy_command", metavar="ACTION", required=True
    )
    show = actions.add_parser("show", help="The approval policy and log channel.")
    _team_option(show)
    show.set_defaults(handler=sync(_policy_show))
    change = actions.add_parser(
        "set", help="Change what is given; the rest stays as it is.", description=__doc__
    )
    _team_option(change)
    change.add_argument("--mode", choices=get_args(ApprovalMode), help="which sends need approval")
    change.add_argument("--approvals", type=int, metavar="N", help="approvals needed (1-5)")
    change.add_argument("--channel", help="channel id where approvers are asked (C…)")
    change.add_argument(
        "--user-threshold",
        type=int,
        metavar="N",
        help="under segments: most listed users a send may have without approval",
    )
    change.add_argument("--log-channel", help="channel id for results of sends (`none`: none)")
    _actor_option(change)
    change.set_defaults(handler=sync(_policy_set))


# --- the workspace service --------------------------------------------------------------------


async def _snapshot(workspaces: Workspaces, team_id: str) -> Snapshot:
    """The workspace as it is; CliError when PushOps does not know it."""
    validate_team_id(team_id)
    snapshot = await workspaces.snapshot(team_id)
    if snapshot.workspace is None:
        raise CliError(
            f"PushOps knows no workspace {team_id}: check the id (Slack's About this "
            "workspace); a workspace is known once the app is installed or used there."
        )
    return snapshot


async def _settings_of(
    workspaces: Workspaces, keyring: KeyRing, team_id: str, *, replacing_policy: bool = False
) -> WorkspaceSettings:
    """The workspace's settings; CliError for an unknown one, or for a stored policy that does
    not parse (unless `replacing_policy`: then it is None, to be set anew)."""
    snapshot = await _snapshot(workspaces, team_id)
    assert snapshot.workspace is not None
    roles: dict[Role, tuple[str, ...]] = {role: () for role in Role}
    for member in snapshot.members:
        roles[member.role] = (*roles[member.role], member.subject_id)
    policy: ApprovalPolicy | None = None
    try:
        policy = ApprovalPolicy.from_settings(snapshot.workspace.settings)
    except PolicyError as error:
        if not replacing_policy:
            raise CliError(f"{error}: set it again with `pushops policy set`.") from None
    apps = [
        AppSetting(app.name, app.onesignal_app_id, app.is_default, masked_key(app, keyring))
        for app in snapshot.apps
    ]
    return WorkspaceSettings(
        team_id=team_id,
        apps=tuple(apps),
        roles=roles,
        policy=policy,
        log_channel=snapshot.workspace.log_channel_id,
    )


# --- roles ------------------------------------------------------------------------------------


async def _roles_list(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        snapshot = await _snapshot(
            workspace_service(settings, database, existing_keyring(settings)), args.team
        )
        members = [m for m in snapshot.members if args.role in (None, m.role.value)]
        if not members:
            which = "a PushOps role" if args.role is None else f"the {args.role} role"
            print(f"Nobody holds {which} in {args.team}.")
            return 0
        rows = [("ROLE", "HOLDER", "KIND", "GIVEN BY")]
        rows += [
            (
                m.role.value,
                m.subject_id,
                "group" if m.subject_id.startswith("S") else "user",
                m.added_by,
            )
            for m in members
        ]
        print_table(rows, sys.stdout)
        return 0

    return await with_database(settings, work)


async def _roles_change(args: argparse.Namespace) -> int:
    settings = cli_settings()
    subject = _subject(args)
    role = Role(args.role)

    async def work(database: Database) -> int:
        workspaces = workspace_service(settings, database, new_keyring(settings))
        await _snapshot(workspaces, args.team)
        changed = await workspaces.change_roles(
            team_id=args.team,
            enterprise_id=None,
            actor=operator(args.actor),
            role=role,
            give=args.give,
            subjects=[subject],
        )
        if not changed:
            held = "already held" if args.give else "did not hold"
            print(f"Nothing changed: {subject} {held} the {role.value} role in {args.team}.")
        else:
            done = "now holds" if args.give else "no longer holds"
            print(f"{subject} {done} the {role.value} role in {args.team}.")
        return 0

    return await with_database(settings, work)


def _subject(args: argparse.Namespace) -> str:
    """The user (`--user`) or user group (`--group`) named, if it is one."""
    subject: str = args.user or args.group
    if subject_error(subject) is None and is_usergroup_id(subject) == bool(args.group):
        return subject
    kind = "a Slack user id (U… or W…)" if args.user else "a Slack user group id (S…)"
    option = "--user" if args.user else "--group"
    raise CliError(f"{subject!r} is not {kind}; {option} takes one.")


# --- policy -----------------------------------------------------------------------------------


async def _policy_show(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        keyring = existing_keyring(settings)
        current = await _settings_of(
            workspace_service(settings, database, keyring), keyring, args.team
        )
        policy = current.policy or ApprovalPolicy()
        rows = [
            ("mode", policy.mode),
            ("approvals", str(policy.approvals)),
            ("channel", policy.channel_id or "none"),
            ("user threshold", str(policy.user_threshold)),
            ("log channel", current.log_channel or "none"),
        ]
        print_table(rows, sys.stdout)
        return 0

    return await with_database(settings, work)


def _policy_options(args: argparse.Namespace) -> dict[str, Any]:
    wanted = {
        "mode": args.mode,
        "approvals": args.approvals,
        "channel_id": args.channel,
        "user_threshold": args.user_threshold,
    }
    for channel in (args.channel, None if args.log_channel == "none" else args.log_channel):
        problem = channel and channel_error(channel)
        if problem:
            raise CliError(f"{problem}.")
    return {name: value for name, value in wanted.items() if value is not None}


async def _policy_set(args: argparse.Namespace) -> int:
    settings = cli_settings()
    options = _policy_options(args)
    if not options and args.log_channel is None:
        raise CliError(
            "Nothing to set: give --mode, --approvals, --channel, --user-threshold or "
            "--log-channel."
        )

    async def work(database: Database) -> int:
        keyring = new_keyring(settings)
        workspaces = workspace_service(settings, database, keyring)
        current = await _settings_of(workspaces, keyring, args.team, replacing_policy=True)
        actor = operator(args.actor)
        if options:
            try:
                policy = dataclasses.replace(current.policy or ApprovalPolicy(), **options)
            except PolicyError as error:
                raise CliError(str(error)) from None
            await workspaces.set_policy(
                team_id=args.team, enterprise_id=None, actor=actor, policy=policy
            )
            print(f"Saved the approval policy of {args.team}: {_describe(policy)}.")
        if args.log_channel is not None:
            channel = None if args.log_channel == "none" else args.log_channel
            await workspaces.set_log_channel(
                team_id=args.team, enterprise_id=None, actor=actor, channel_id=channel
            )
            print(f"Results of sends in {args.team} go to {channel or 'no channel'}.")
        return 0

    return await with_database(settings, work)


def _describe(policy: ApprovalPolicy) -> str:
    if not policy.enabled:
        return "no send needs approval"
    which = "every send" if policy.mode == "all" else "sends to segments"
    extra = (
        f" or to more than {plural(policy.user_threshold, 'listed user')}"
        if policy.mode == "segments"
        else ""
    )
    return (
        f"{which}{extra} need {plural(policy.approvals, 'approval')}, asked in {policy.channel_id}"
    )


# --- export and import ------------------------------------------------------------------------


async def _export(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        keyring = existing_keyring(settings)
        current = await _settings_of(
            workspace_service(settings, database, keyring), keyring, args.team
        )
        sys.stdout.write(render(current))
        return 0

    return await with_database(settings, work)


def _read_file(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "standard input"
    return Path(path).read_text(encoding="utf-8"), path


async def _import(args: argparse.Namespace) -> int:
    settings = cli_settings()
    text, source = _read_file(args.file)
    try:
        wanted = parse(text, source=source)
    except SettingsFileError as error:
        raise CliError(str(error)) from None

    async def work(database: Database) -> int:
        keyring = new_keyring(settings) if not args.dry_run else existing_keyring(settings)
        workspaces = workspace_service(settings, database, keyring)
        current = await _settings_of(workspaces, keyring, wanted.team_id)
        todo = changes(current, wanted)
        if not todo:
            print(f"Nothing to change in {wanted.team_id}: it already has these settings.")
            return 0
        print(f"Changes to {wanted.team_id}:")
        for line in todo.lines(current):
            print(f"  {line}")
        if args.dry_run:
            print("Dry run: nothing was changed.")
            return 0
        keys = await _keys(settings, todo.add_apps, verify=not args.no_verify)
        await _apply(workspaces, wanted.team_id, todo, keys, operator(args.actor))
        print(f"Applied {plural(len(todo.lines(current)), 'change')} to {wanted.team_id}.")
        return 0

    return await with_database(settings, work)


async def _keys(
    settings: Settings, apps: Sequence[AppSetting], *, verify: bool
) -> dict[str, SecretStr]:
    """The key of each app to add, read and (unless not `verify`) checked before any change.

    ONESIGNAL_API_KEY serves only when one app needs a key: with several it would name none.
    """
    keys: dict[str, SecretStr] = {}
    shared = settings.onesignal_api_key if len(apps) == 1 else None
    for app in apps:
        variable = key_variable(app.name)
        named = os.environ.get(variable, "").strip()
        offered = SecretStr(named) if named else shared
        keys[app.name] = read_api_key(offered, what=f" of app {app.name}", variable=variable)
        if verify:
            await verify_key(settings, app.onesignal_app_id, keys[app.name])
    return keys


async def _apply(
    workspaces: Workspaces, team_id: str, todo: Changes, keys: dict[str, SecretStr], actor: str
) -> None:
    """Make the changes, each through the service as /push setup makes it, in order."""
    for app in todo.add_apps:
        await workspaces.add_app(
            team_id=team_id,
            enterprise_id=None,
            actor=actor,
            name=app.name,
            onesignal_app_id=app.onesignal_app_id,
            api_key=keys[app.name],
            make_default=app.default,
            replace=app.name in todo.replaced,
        )
    if todo.make_default:
        await workspaces.set_default_app(team_id=team_id, name=todo.make_default, actor=actor)
    for name in todo.remove_apps:
        await workspaces.remove_app(team_id=team_id, name=name, actor=actor)
    for give, pairs in ((True, todo.give), (False, todo.take)):
        for role, subject in pairs:
            await workspaces.change_roles(
                team_id=team_id,
                enterprise_id=None,
                actor=actor,
                role=role,
                give=give,
                subjects=[subject],
            )
    if todo.policy is not None:
        await workspaces.set_policy(
            team_id=team_id, enterprise_id=None, actor=actor, policy=todo.policy
        )
    if todo.log_channel is not None:
        await workspaces.set_log_channel(
            team_id=team_id, enterprise_id=None, actor=actor, channel_id=todo.log_channel[0]
        )
