"""`pushops prune`: delete finished sends older than a duration, keeping the audit log whole.

Expected failures (a duration it cannot read, an unknown workspace, no database) end with one
line on standard error and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import Any, Final

from bot.cli_common import audited, cli_settings, new_keyring, operator, sync, with_database
from bot.words import plural
from storage import workspaces
from storage.db import Database
from storage.models import utcnow
from storage.retention import PruneReport, prune_sends

_UNITS: Final = {
    **dict.fromkeys(("h", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "week", "weeks"), timedelta(weeks=1)),
    **dict.fromkeys(("y", "year", "years"), timedelta(days=365)),
}
_DURATION: Final = re.compile(r"(\d{1,6})\s*([a-z]+)", re.ASCII)
_FORMS: Final = "a number and a unit: 12h, 90d, 26w or 1y"


def parse_duration(text: str) -> timedelta:
    """`text` (like `90d`) as a duration; `argparse.ArgumentTypeError` saying what is wrong."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None or found[2] not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use {_FORMS}")
    if int(found[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is zero: every finished send would go")
    return int(found[1]) * _UNITS[found[2]]


def add_parser(subparsers: Any) -> None:
    """Add `prune` to the `pushops` parser."""
    prune = subparsers.add_parser(
        "prune",
        help="Delete finished sends older than a duration (the audit log is kept).",
        description="Delete the sends that ended (sent, failed, cancelled, rejected or expired) "
        "longer ago than --older-than, with their approvals and notification ids. Scheduled, "
        "sending and pending sends are never deleted; every audit event is kept, and each "
        "workspace's log records the prune.",
    )
    prune.add_argument(
        "--older-than",
        required=True,
        type=parse_duration,
        metavar="DURATION",
        help=f"how long ago a send must have ended ({_FORMS})",
    )
    prune.add_argument("--team", help="only this workspace")
    prune.add_argument("--dry-run", action="store_true", help="count, and delete nothing")
    prune.set_defaults(handler=sync(_prune))


async def _prune(args: argparse.Namespace) -> int:
    settings = cli_settings()
    if args.team is not None:
        workspaces.validate_team_id(args.team)
    before = utcnow() - args.older_than

    async def work(database: Database) -> int:
        keyed = database if args.dry_run else audited(database, new_keyring(settings))
        report = await prune_sends(
            session_factory=keyed.sessions,
            before=before,
            actor=operator(),
            team_id=args.team,
            dry_run=args.dry_run,
        )
        print(_summary(report, args.older_than))
        return 0

    return await with_database(settings, work)


def _summary(report: PruneReport, older_than: timedelta) -> str:
    what = f"{plural(report.sends, 'finished send')} that ended before {_when(report.before)}"
    where = plural(len(report.by_team), "workspace")
    if report.dry_run:
        return f"Would delete {what} ({where}); nothing was changed (--dry-run)."
    return f"Deleted {what} ({where}); the audit log is kept whole."


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")
