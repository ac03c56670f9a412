"""Migrations: an empty database upgrades to the head, and the models match the migrations."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage.db import Database
from storage.migrations import current_revision, head_revision, upgrade
from storage.models import Base

EXPECTED_TABLES = {
    "workspaces",
    "onesignal_apps",
    "members",
    "user_links",
    "sends",
    "approvals",
    "audit_events",
    "slack_requests",
    "slack_installations",
    "slack_bots",
    "slack_oauth_states",
    "alembic_version",
}


async def _diff(database: Database, metadata: sa.MetaData) -> list[object]:
    def compare(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with database.engine.connect() as connection:
        return await connection.run_sync(compare)


async def _tables(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_an_empty_database_upgrades_to_the_head_and_matches_the_models(database_url):
    database = Database.open(database_url)
    try:
        assert await current_revision(database.engine) is None
        await upgrade(database.engine)
        assert await current_revision(database.engine) == head_revision()
        assert await _tables(database) == EXPECTED_TABLES
        assert await _diff(database, Base.metadata) == []
        await upgrade(database.engine)  # a second upgrade is a no-op
        assert await current_revision(database.engine) == head_revision()
    finally:
        await database.dispose()


async def test_the_comparison_sees_a_model_the_migrations_lack(database):
    extended = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extended)
    sa.Table("webhooks", extended, sa.Column("id", sa.Integer, primary_key=True))
    extended.tables["sends"].append_column(sa.Column("priority", sa.Integer))

    diff = await _diff(database, extended)

    kinds = {entry[0] for entry in diff if isinstance(entry, tuple)}
    assert {"add_table", "add_column"} <= kinds


def test_db_upgrade_runs_from_an_installed_package_without_alembic_ini(tmp_path):
    # A subprocess in another folder: nothing of the checkout's layout is on hand but the package.
    url = f"sqlite:///{tmp_path / 'sub' / 'pushops.db'}"
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "PUSHOPS_SECRET_KEY": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"from empty to {head_revision()}" in done.stdout
    assert (tmp_path / "sub" / "pushops.db").exists()
    assert done.stderr == ""
