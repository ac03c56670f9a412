"""`pushops db|apps|keys|audit`: the operator's tools around the database and its secrets.

Every expected failure ends with one line on standard error and exit code 1 (`bot.cli_common`);
usage errors exit 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bot.checkpoints import STDOUT, CheckpointPublisher, FileSink
from bot.cli_common import (
    CliError,
    audited,
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
)
from bot.settings import Settings
from bot.words import plural
from storage import workspaces
from storage.audit import AuditKeys, iter_audit_events
from storage.audit_chain import Checkpoint, verify_audit_chain
from storage.crypto import KEY_FILE_NAME, KeyRing, generate_key, key_file_ring
from storage.db import Database, display_url
from storage.errors import DuplicateAppName
from storage.migrations import current_revision, upgrade
from storage.models import AuditEvent
from storage.rotation import rotate_audit_keys, rotate_secrets

EXPORT_FIELDS: Final = (
    "team_id",
    "seq",
    "id",
    "created_at",
    "actor",
    "action",
    "target",
    "outcome",
    "details",
    "prev_hash",
    "hash",
    "mac",
    "mac_key_id",
)


# --- parser -----------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Add the `db`, `apps`, `keys` and `audit` groups to the `pushops` parser."""
    _add_db(subparsers)
    _add_apps(subparsers)
    _add_keys(subparsers)
    _add_audit(subparsers)


def _group(subparsers: Any, name: str, help_text: str) -> Any:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _add_db(subparsers: Any) -> None:
    actions = _group(subparsers, "db", "Manage the database schema.")
    upgrade_parser = actions.add_parser(
        "upgrade", help="Upgrade the database to this version's schema (creates it if empty)."
    )
    upgrade_parser.set_defaults(handler=sync(_db_upgrade))


def _add_apps(subparsers: Any) -> None:
    actions = _group(subparsers, "apps", "Manage the OneSignal apps of each workspace.")
    add = actions.add_parser(
        "add",
        help="Add a OneSignal app; its REST API key is read from ONESIGNAL_API_KEY or prompted.",
        description="Add a OneSignal app to a workspace. The REST API key is read from "
        "ONESIGNAL_API_KEY, or prompted for without echo; never from the command line.",
    )
    add.add_argument("--team", required=True, help="Slack workspace id (T…)")
    add.add_argument("--name", required=True, help="name used with --app in Slack")
    add.add_argument("--app-id", required=True, help="OneSignal app id (a UUID)")
    add.add_argument("--default", action="store_true", help="make it the workspace default")
    add.add_argument("--replace", action="store_true", help="replace the app of that name")
    add.add_argument("--no-verify", action="store_true", help="save without asking OneSignal")
    add.set_defaults(handler=sync(_apps_add))
    listing = actions.add_parser("list", help="List apps (keys masked).")
    listing.add_argument("--team", help="only this workspace")
    listing.set_defaults(handler=sync(_apps_list))
    remove = actions.add_parser("remove", help="Remove an app and its key.")
    remove.add_argument("--team", required=True, help="Slack workspace id (T…)")
    remove.add_argument("--name", required=True, help="the app's name")
    remove.set_defaults(handler=sync(_apps_remove))


def _add_keys(subparsers: Any) -> None:
    actions = _group(subparsers, "keys", "Manage the keys that encrypt secrets at rest.")
    generate = actions.add_parser(
        "generate", help="Print a new key for PUSHOPS_SECRET_KEY (and nothing else)."
    )
    generate.set_defaults(handler=_keys_generate)
    rotate = actions.add_parser(
        "rotate",
        help="Re-encrypt every secret under the first key of PUSHOPS_SECRET_KEY.",
        description="Re-encrypt every stored secret under the first key of PUSHOPS_SECRET_KEY. "
        "Rotating: put the new key first (PUSHOPS_SECRET_KEY=new,old) in every running "
        "process, run this, then remove the old key.",
    )
    rotate.set_defaults(handler=sync(_keys_rotate))


def _add_audit(subparsers: Any) -> None:
    actions = _group(subparsers, "audit", "Check, checkpoint and export the audit log.")
    verify = actions.add_parser(
        "verify",
        help="Check that no audit event was edited, added or removed.",
        description="Check every workspace's audit chain and its MACs under PUSHOPS_SECRET_KEY. "
        "With --checkpoints, also prove that the database still extends every checkpoint in "
        "FILE (not rolled back, its end not cut, no workspace deleted).",
    )
    verify.add_argument("--team", help="only this workspace")
    verify.add_argument(
        "--checkpoints", metavar="FILE", help="checkpoints as JSON lines (`-`: standard input)"
    )
    verify.set_defaults(handler=sync(_audit_verify))
    checkpoint = actions.add_parser(
        "checkpoint",
        help="Publish each workspace's audit head now (to PUSHOPS_AUDIT_CHECKPOINTS).",
        description="Append each workspace's audit head (team, sequence number, MAC) as a JSON "
        "line to the file PUSHOPS_AUDIT_CHECKPOINTS names (standard output when it is `-` or "
        "unset). Chains written before the audit key are anchored first.",
    )
    checkpoint.add_argument("--team", help="only this workspace")
    checkpoint.set_defaults(handler=sync(_audit_checkpoint))
    export = actions.add_parser("export", help="Write the audit log as CSV or JSON lines.")
    export.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    export.add_argument("--team", help="only this workspace")
    export.add_argument(
        "--since", type=_parse_since, help="only events at or after this time (ISO 8601, UTC)"
    )
    export.set_defaults(handler=sync(_audit_export))


def _parse_since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; use e.g. 2026-01-31 or 2026-01-31T09:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# --- running ----------------------------------------------------------------------------------

# --- db ---------------------------------------------------------------------------------------


async def _db_upgrade(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        before = await current_revision(database.engine)
        await upgrade(database.engine)
        after = await current_revision(database.engine)
        where = display_url(settings.resolved_database_url)
        if before == after:
            print(f"The database at {where} is up to date (revision {after}).")
        else:
            print(f"Upgraded the database at {where} from {before or 'empty'} to {after}.")
        return 0

    return await with_database(settings, work, migrated=False)


# --- apps -------------------------------------------------------------------------------------


async def _apps_add(args: argparse.Namespace) -> int:
    settings = cli_settings()
    workspaces.validate_team_id(args.team)
    workspaces.validate_app_name(args.name)
    app_id = workspaces.validate_onesignal_app_id(args.app_id)

    async def work(database: Database) -> int:
        api_key = read_api_key(settings.onesignal_api_key)
        if not args.replace:
            await _refuse_duplicate(database, args.team, args.name)
        if not args.no_verify:
            await verify_key(settings, app_id, api_key)
        # Last, once nothing else can refuse: without PUSHOPS_SECRET_KEY this makes the key file.
        keyring = new_keyring(settings)
        try:
            async with audited(database, keyring).sessions.begin() as session:
                app = await workspaces.add_app(
                    session=session,
                    keyring=keyring,
                    team_id=args.team,
                    name=args.name,
                    onesignal_app_id=app_id,
                    api_key=api_key,
                    added_by=operator(),
                    make_default=args.default,
                    replace=args.replace,
                )
        except DuplicateAppName as error:  # added meanwhile by someone else
            raise CliError(_duplicate(error)) from None
        default = " (default)" if app.is_default else ""
        checked = "" if args.no_verify else ", key checked with OneSignal"
        print(f"Saved app {app.name!r}{default} in workspace {app.team_id}{checked}.")
        return 0

    return await with_database(settings, work)


async def _refuse_duplicate(database: Database, team_id: str, name: str) -> None:
    async with database.sessions() as session:
        if await workspaces.get_app(session=session, team_id=team_id, name=name) is not None:
            raise CliError(_duplicate(DuplicateAppName(team_id, name)))


def _duplicate(error: DuplicateAppName) -> str:
    return f"{str(error).rstrip('.')}: add --replace to replace its app id and key."


async def _apps_list(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        async with database.sessions() as session:
            apps = await workspaces.list_apps(session=session, team_id=args.team)
        if not apps:
            print("No OneSignal app is configured" + (f" in {args.team}." if args.team else "."))
            return 0
        keyring = existing_keyring(settings)
        rows = [("TEAM", "NAME", "DEFAULT", "ONESIGNAL APP ID", "REST API KEY")]
        rows += [
            (
                a.team_id,
                a.name,
                "yes" if a.is_default else "",
                a.onesignal_app_id,
                masked_key(a, keyring),
            )
            for a in apps
        ]
        print_table(rows, sys.stdout)
        return 0

    return await with_database(settings, work)


async def _apps_remove(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        keyed = audited(database, existing_keyring(settings))  # the removal is audited
        async with keyed.sessions.begin() as session:
            await workspaces.remove_app(
                session=session, team_id=args.team, name=args.name, actor=operator()
            )
        print(f"Removed app {args.name!r} and its key from workspace {args.team}.")
        return 0

    return await with_database(settings, work)


# --- keys -------------------------------------------------------------------------------------


def _keys_generate(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


async def _keys_rotate(args: argparse.Namespace) -> int:
    settings = cli_settings()

    async def work(database: Database) -> int:
        keyring = existing_keyring(settings)
        _refuse_a_stale_key_file(settings)
        keyed = audited(database, keyring)
        report = await rotate_secrets(
            session_factory=keyed.sessions, keyring=keyring, actor=operator()
        )
        print(
            f"Re-encrypted {plural(report.reencrypted, 'secret')} under key "
            f"{keyring.primary_key_id}; {report.current} already were."
        )
        audit = await rotate_audit_keys(database=keyed, actor=operator())
        print(
            f"Anchored the audit chains of {plural(len(audit.anchored), 'workspace')} under key "
            f"{keyring.primary_key_id}."
        )
        failures = report.failures + audit.failures
        for failure in failures:
            print(f"error: {failure}", file=sys.stderr)
        if failures:
            return 1
        _after_rotation(settings, keyring)
        return 0

    return await with_database(settings, work)


def _after_rotation(settings: Settings, keyring: KeyRing) -> None:
    """Say what the operator may do next: drop the old keys, or how to rotate a generated one."""
    if settings.secret_key is None:
        print(
            "PUSHOPS_SECRET_KEY is not set: the key is the one PushOps generated in "
            f"{settings.data_dir / KEY_FILE_NAME}. To rotate it, set "
            "PUSHOPS_SECRET_KEY=NEW,<the file's content>, delete the file, and run "
            "`pushops keys rotate` again."
        )
    if len(keyring.key_ids) > 1:
        others = ", ".join(keyring.key_ids[1:])
        print(
            f"Every secret and audit chain is under key {keyring.primary_key_id}; the old "
            f"{'key' if len(keyring.key_ids) == 2 else 'keys'} {others} can be removed."
        )


def _refuse_a_stale_key_file(settings: Settings) -> None:
    """Refuse to rotate beside a generated key file that PUSHOPS_SECRET_KEY overrides.

    PushOps reads that file only while PUSHOPS_SECRET_KEY is unset; after a rotation it would
    hold a key nothing is encrypted under, and a process started without the setting would
    use it. Rewriting the file would put the new key on disk where the operator chose the
    environment, so the operator deletes it, knowingly.
    """
    if settings.secret_key is None:
        return
    path = settings.data_dir / KEY_FILE_NAME
    in_file = key_file_ring(settings.data_dir)
    if in_file is None:
        return
    ring = KeyRing.from_text(settings.secret_key.get_secret_value())
    kept = set(in_file.key_ids) <= set(ring.key_ids)
    then = (
        f"PUSHOPS_SECRET_KEY holds its key too: delete {path}"
        if kept
        else "PUSHOPS_SECRET_KEY does not hold its key: if secrets were saved under it, put "
        f"its content after the new key (PUSHOPS_SECRET_KEY=NEW,OLD), then delete {path}"
    )
    raise CliError(
        f"{path} holds key {in_file.primary_key_id}, generated while PUSHOPS_SECRET_KEY was "
        "unset. PushOps no longer reads it, and after this rotation nothing would be encrypted "
        f"under it, yet a process started without PUSHOPS_SECRET_KEY would use it. {then}, "
        "and run `pushops keys rotate` again."
    )


# --- audit ------------------------------------------------------------------------------------


async def _audit_verify(args: argparse.Namespace) -> int:
    settings = cli_settings()
    checkpoints = _read_checkpoints(args.checkpoints) if args.checkpoints else None

    async def work(database: Database) -> int:
        keys = AuditKeys.from_keyring(existing_keyring(settings))
        async with database.sessions() as session:
            report = await verify_audit_chain(
                session=session, keys=keys, team_id=args.team, checkpoints=checkpoints or ()
            )
        if not report.ok:
            for problem in report.breaks:
                print(f"Audit chain broken: {problem}", file=sys.stderr)
            return 1
        summary = (
            f"Audit chain intact: {plural(report.events, 'event')} in "
            f"{plural(report.workspaces, 'workspace')}"
        )
        if checkpoints is not None:
            summary += f", {_extending(report.checkpoints)} in {args.checkpoints}"
        print(summary + ".")
        return 0

    return await with_database(settings, work)


def _extending(count: int) -> str:
    if count == 0:
        return "with no checkpoint"
    return "extending the 1 checkpoint" if count == 1 else f"extending all {count:,} checkpoints"


def _read_checkpoints(path: str) -> list[Checkpoint]:
    """The checkpoints in the file at `path` (`-`: standard input), one JSON line each."""
    text = sys.stdin.read() if path == STDOUT else Path(path).read_text(encoding="utf-8")
    checkpoints = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            checkpoints.append(Checkpoint.parse(line))
        except ValueError as error:
            raise CliError(f"{path}, line {number}: not an audit checkpoint ({error}).") from None
    return checkpoints


async def _audit_checkpoint(args: argparse.Namespace) -> int:
    settings = cli_settings()
    sink = FileSink(settings.audit_checkpoints or STDOUT)
    # With the lines on standard output, everything else goes to standard error.
    say = sys.stderr if sink.target == STDOUT else sys.stdout

    async def work(database: Database) -> int:
        keyed = audited(database, existing_keyring(settings))  # anchoring is audited
        assert keyed.audit_keys is not None
        publisher = CheckpointPublisher(
            database=keyed, keys=keyed.audit_keys, actor=operator(), interval=0, sinks=[sink]
        )
        anchored = await publisher.anchor()
        report = await publisher.publish(team_id=args.team)
        if anchored.anchored:
            print(
                f"Anchored the audit chains of {plural(len(anchored.anchored), 'workspace')} "
                "written before the audit key.",
                file=say,
            )
        problems = [*anchored.failures, *map(str, report.problems), *report.failures]
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        written = 0 if report.failures else len(report.checkpoints)
        print(f"Wrote {plural(written, 'audit checkpoint')} to {sink.description}.", file=say)
        return 1 if problems else 0

    return await with_database(settings, work)


def _export_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "team_id": event.team_id,
        "seq": event.seq,
        "id": str(event.id),
        "created_at": event.created_at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "mac": event.mac,
        "mac_key_id": event.mac_key_id,
    }


async def _audit_export(args: argparse.Namespace) -> int:
    settings = cli_settings()
    out = sys.stdout

    async def work(database: Database) -> int:
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS) if args.format == "csv" else None
        if writer is not None:
            writer.writeheader()
        async with database.sessions() as session:
            async for event in iter_audit_events(
                session=session, team_id=args.team, since=args.since
            ):
                row = _export_row(event)
                if writer is None:
                    out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                else:
                    row["details"] = json.dumps(row["details"], sort_keys=True)
                    writer.writerow({name: csv_cell(value) for name, value in row.items()})
        return 0

    return await with_database(settings, work)


_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """`value` safe to open in a spreadsheet: text that would start a formula gets a `'`.

    Actors and targets come from Slack users (an external id, a name), and Excel, LibreOffice
    and Google Sheets run a cell starting with = + - @ (or a tab or CR before one) as a formula
    (OWASP "CSV injection"). The JSON lines export keeps every value exact.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
