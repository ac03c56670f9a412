"""Alembic migrations, configured in code so an installed package can upgrade its database.

`pushops db upgrade` and `serve` call `upgrade()`; developers make a new revision with
`python -m storage.migrations revision --autogenerate -m "what changed"`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:  # imported where used: see `upgrade`
    from alembic.config import Config

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent
_VERSION_TABLE: Final = "alembic_version"  # where Alembic keeps the revision a database is at
# A revision script's own id and its parent's, as every script here states them.
_REVISION: Final = re.compile(r'^revision\b[^=\n]*=\s*"([^"]+)"', re.MULTILINE)
_PARENT: Final = re.compile(r'^down_revision\b[^=\n]*=\s*(?:None|"([^"]+)")', re.MULTILINE)

# Any constant works; it only has to be the same in every PushOps process.
_PG_MIGRATION_LOCK: Final = 0x70757368  # "push"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic `Config` for our scripts; no alembic.ini is needed or read."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The URL travels in `attributes`, not in the ini options, whose `%` interpolation
    # would mangle percent-encoded passwords.
    if url is not None:
        config.attributes["url"] = url
    return config


# Alembic and Mako take a tenth of a serving process's memory, for good once imported, and
# every start checks the revision: what a current database needs is read here without them
# (tests/storage/test_migrations.py checks it agrees with Alembic's reading). Alembic itself
# is imported only to change the schema.


@functools.cache
def _revisions() -> dict[str, str | None]:
    """Each revision shipped with this version of PushOps -> the one it follows."""
    found: dict[str, str | None] = {}
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revision, parent = _REVISION.search(text), _PARENT.search(text)
        if revision is not None and parent is not None:
            found[revision[1]] = parent[1]
    return found


def head_revision() -> str:
    """The newest revision shipped with this version of PushOps."""
    revisions = _revisions()
    heads = set(revisions) - set(revisions.values())
    assert len(heads) == 1, f"the migrations folder should have one head, not {sorted(heads)}"
    return heads.pop()


def is_known_revision(revision: str) -> bool:
    """Whether `revision` ships with this version of PushOps (a newer version's is unknown)."""
    return revision in _revisions()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_stored_revision)


def _stored_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table(_VERSION_TABLE):
        return None
    stored = connection.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars()
    versions = list(stored)
    if len(versions) > 1:  # as Alembic: one line of history, one revision
        raise RuntimeError(f"the database records several revisions: {sorted(versions)}")
    return versions[0] if versions else None


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`, in one transaction.

    Several processes starting together is safe: PostgreSQL takes an advisory lock for the
    length of the transaction; SQLite's BEGIN IMMEDIATE (see storage.db) serialises already.
    A database already at the head is left as it is without loading Alembic.
    """
    if revision == "head" and await current_revision(engine) == head_revision():
        return
    from alembic import command

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
