"""The `pushops` command line: serve the bot and operate its storage.

Each command group lives in its own module and adds itself to the parser through
`add_parser(subparsers)`; the module is imported only when the group is named, so
`pushops keys generate` does not pay for Slack or the scheduler.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# group name -> module that defines `add_parser(subparsers)` for it
GROUPS: dict[str, str] = {
    "serve": "bot.cli_serve",
    "check": "bot.cli_serve",
    "worker": "bot.cli_worker",
    "db": "bot.cli_storage",
    "apps": "bot.cli_storage",
    "keys": "bot.cli_storage",
    "audit": "bot.cli_storage",
    "prune": "bot.cli_prune",
    "roles": "bot.cli_settings",
    "policy": "bot.cli_settings",
    "export-settings": "bot.cli_settings",
    "import-settings": "bot.cli_settings",
    "diagnostics": "bot.cli_diagnostics",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that group's module is imported."""
    parser = argparse.ArgumentParser(prog="pushops", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [GROUPS[only]] if only in GROUPS else sorted(set(GROUPS.values()))
    for name in dict.fromkeys(modules):
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `pushops` command; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(args_list)
    result: int = args.handler(args)
    return result
