"""`pushops diagnostics [--team T]`: print the redacted diagnostics document (bot.diagnostics)
of one workspace, or of every workspace, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.cli_common import CliError, cli_settings, sync, with_database, workspace_service
from bot.diagnostics import collect
from storage.crypto import KeyRing, generate_key, read_keyring
from storage.db import Database
from storage.workspaces import get_workspace, list_workspaces, validate_team_id


def add_parser(subparsers: Any) -> None:
    """Add `diagnostics` to the `pushops` parser."""
    text = (
        "Print one redacted JSON document of versions, settings, apps, roles, the scheduler, "
        "recent failed sends and the online check, to hand over when something goes wrong."
    )
    parser = subparsers.add_parser("diagnostics", help=text, description=text)
    parser.add_argument("--team", help="only this workspace (default: every workspace)")
    parser.add_argument(
        "--offline", action="store_true", help="leave out the check that asks OneSignal and Slack"
    )
    parser.set_defaults(handler=sync(_diagnostics))


async def _diagnostics(args: argparse.Namespace) -> int:
    settings = cli_settings()
    if args.team:
        validate_team_id(args.team)

    async def work(database: Database) -> int:
        async with database.sessions() as session:
            if args.team and await get_workspace(session=session, team_id=args.team) is None:
                raise CliError(f"PushOps knows no workspace {args.team}.")
            teams = (
                [args.team]
                if args.team
                else [w.team_id for w in await list_workspaces(session=session)]
            )
        keyring = read_keyring(secret_key=settings.secret_key, data_dir=settings.data_dir)
        # Reading needs no key: without one, the service gets a ring of its own that opens
        # nothing, and the document says each stored key is unreadable.
        ring = keyring or KeyRing.from_text(generate_key())
        document = await collect(
            settings=settings,
            database=database,
            keyring=keyring,
            workspaces=workspace_service(settings, database, ring),
            team_ids=teams,
            scope=args.team,
            online=not args.offline,
        )
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0

    return await with_database(settings, work)
