"""Developer entry to Alembic with PushOps' configuration: `python -m storage.migrations …`."""

from __future__ import annotations

import os
import sys

from alembic.config import CommandLine

from storage.migrations import alembic_config


def main(argv: list[str] | None = None) -> None:
    """Run an Alembic command (revision, history, upgrade…) against `DATABASE_URL`.

    `revision --autogenerate` compares the models with a database at the head revision;
    a scratch SQLite file will do: `DATABASE_URL=sqlite:////tmp/x.db`.
    """
    cli = CommandLine(prog="python -m storage.migrations")
    options = cli.parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(os.environ.get("DATABASE_URL")), options)


if __name__ == "__main__":
    main()
