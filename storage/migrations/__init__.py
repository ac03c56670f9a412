"""Alembic migrations, configured in code so an installed package can upgrade its database.

`pushops db upgrade` and `serve` call `upgrade()`; developers make a new revision with
`python -m storage.migrations revision --autogenerate -m "what changed"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent

# Any constant works; it only has to be the same in every PushOps process.
_PG_MIGRATION_LOCK: Final = 0x70757368  # "push"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic `Config` for our scripts; no alembic.ini is needed or read."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The URL travels in `attributes`, not in the ini options, whose `%` interpolation
    # would mangle percent-encoded passwords.
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of PushOps."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder holds no revision"
    return head


def is_known_revision(revision: str) -> bool:
    """Whether `revision` ships with this version of PushOps (a newer version's is unknown)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`, in one transaction.

    Several processes starting together is safe: PostgreSQL takes an advisory lock for the
    length of the transaction; SQLite's BEGIN IMMEDIATE (see storage.db) serialises already.
    """

    def run(connection: sa.Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
