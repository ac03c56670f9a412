"""Migrations: an empty database upgrades to the head, and the models match the migrations."""

from __future__ import annotations

import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import queries
from storage.audit import AuditKeys, event_hash
from storage.audit_chain import anchor_audit_chains, verify_audit_chain
from storage.db import Database
from storage.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    is_known_revision,
    upgrade,
)
from storage.models import (
    GENESIS_HASH,
    AuditEvent,
    Base,
    Send,
    SendNotification,
    Workspace,
    utcnow,
)

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TABLES = {
    "workspaces",
    "onesignal_apps",
    "members",
    "user_links",
    "sends",
    "send_notifications",
    "series",
    "approvals",
    "audit_events",
    "slack_requests",
    "slack_outbox",
    "slack_installations",
    "slack_bots",
    "slack_oauth_states",
    "alembic_version",
}


async def _diff(database: Database, metadata: sa.MetaData) -> list[object]:
    def compare(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        with warnings.catch_warnings():
            # SQLite's reflection cannot read an index on an expression (PostgreSQL's can, and
            # compares it); the models' one is created by migration 0011 on both.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expr")
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


async def test_audit_events_from_before_the_macs_are_kept_and_anchored_after_the_upgrade(
    database_url, keyring
):
    keys = AuditKeys.from_keyring(keyring)
    database = Database.open(database_url, audit_keys=keys)
    try:
        await upgrade(database.engine, "0004")  # the release before audit MACs
        async with database.engine.begin() as connection:
            await connection.execute(sa.insert(Workspace).values(team_id="T0OLD", name="Old"))
            head = await _write_as_before_the_macs(connection, "T0OLD", 2)
            await connection.execute(
                sa.update(Workspace)
                .where(Workspace.team_id == "T0OLD")
                .values(audit_head_seq=2, audit_head_hash=head)
            )

        await upgrade(database.engine)
        async with database.sessions() as session:
            before = await verify_audit_chain(session=session)
        anchored = await anchor_audit_chains(
            session_factory=database.sessions, keys=keys, actor="worker:w1"
        )
        async with database.sessions() as session:
            after = await verify_audit_chain(session=session)
    finally:
        await database.dispose()

    assert [str(problem) for problem in before.breaks] == [
        "workspace T0OLD, the chain: its last event #2 carries no MAC, so the chain is not "
        "anchored by the audit key (written before it, or its MACs were removed); PushOps "
        "anchors such a chain when it starts, and so does `pushops audit checkpoint`"
    ]
    assert (anchored.anchored, anchored.failures) == (["T0OLD"], [])
    assert after.ok and after.events == 3


_COLUMNS_BEFORE_THE_MACS = (
    *("id", "team_id", "seq", "created_at", "actor", "action", "target", "outcome", "details"),
    *("prev_hash", "hash"),
)


async def _write_as_before_the_macs(connection: AsyncConnection, team_id: str, count: int) -> str:
    """`count` events with the columns of the release before MACs (none for them); the head."""
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        event = AuditEvent(
            id=uuid.uuid4(),
            team_id=team_id,
            seq=seq,
            created_at=utcnow(),
            actor="U0ALICE",
            action="app.added",
            target="",
            outcome="ok",
            details={},
            prev_hash=prev,
        )
        event.hash = prev = event_hash(prev, event)
        values = {name: getattr(event, name) for name in _COLUMNS_BEFORE_THE_MACS}
        await connection.execute(sa.insert(AuditEvent).values(values))
    return prev


async def test_the_batches_of_sends_from_before_the_lookup_table_fill_it(database_url):
    database = Database.open(database_url)
    first, second, third = (f"0b7f1c0d-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
    try:
        await upgrade(database.engine, "0007")  # the release before `send_notifications`
        async with database.engine.begin() as connection:
            await connection.execute(sa.insert(Workspace).values(team_id="T0OLD", name="Old"))
            batched = await _old_send(
                connection, "AAAAAA", first, [{"index": 0, "notification_id": first},
                                              {"index": 1, "notification_id": second}]
            )  # fmt: skip
            single = await _old_send(connection, "BBBBBB", third, [])  # an id, no batch records
            await _old_send(connection, "CCCCCC", None, [])  # scheduled: nothing yet

        await upgrade(database.engine)
        async with database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(SendNotification))).all()
        async with database.sessions() as session:
            found = await queries.find_send(session=session, team_id="T0OLD", ref=second)
    finally:
        await database.dispose()

    assert sorted((r.notification_id, r.send_id, r.batch, r.team_id) for r in rows) == [
        (first, batched, 0, "T0OLD"),
        (second, batched, 1, "T0OLD"),
        (third, single, 0, "T0OLD"),
    ]
    assert found is not None and found.id == batched


async def _old_send(
    connection: AsyncConnection,
    short_id: str,
    notification_id: str | None,
    batches: list[dict[str, object]],
) -> uuid.UUID:
    """A send row as the release before `send_notifications` wrote it; its id."""
    send_id = uuid.uuid4()
    now = utcnow()
    values = {
        "id": send_id,
        "short_id": short_id,
        "team_id": "T0OLD",
        "app_name": "default",
        "requester_id": "U0ALICE",
        "content": {},
        "audience": {},
        "is_test": False,
        "timezone": "UTC",
        "state": "sent" if notification_id else "scheduled",
        "approvals_required": 0,
        "approvals_received": 0,
        "notification_id": notification_id,
        "batches": batches,
        "slack_messages": {},
        "attempts": 1,
        "created_at": now,
        "updated_at": now,
    }
    # Only the columns of that release: the model's later ones (`options`) are not there yet.
    columns = Send.__table__.c
    table = sa.table("sends", *(sa.column(name, columns[name].type) for name in values))
    await connection.execute(sa.insert(table).values(values))
    return send_id


async def test_the_list_indexes_are_there_on_both_databases(database):
    async with database.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            query = "SELECT indexname FROM pg_indexes WHERE tablename = 'sends'"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sends'"
        names = set((await connection.execute(sa.text(query))).scalars())

    assert {"ix_sends_team_id_state_due_at", "ix_sends_team_id_ended"} <= names


def test_a_process_on_a_current_database_loads_no_migration_machinery(tmp_path):
    """Alembic and Mako are a tenth of `serve`'s idle memory; a database already at the head
    (every start but the first after an upgrade) needs neither to be checked or "upgraded"."""
    url = f"sqlite:///{tmp_path / 'pushops.db'}"
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "PUSHOPS_SECRET_KEY": ""}
    migrate = [sys.executable, "-m", "bot", "db", "upgrade"]
    assert subprocess.run(migrate, cwd=tmp_path, env=env, timeout=60, check=False).returncode == 0
    program = (
        "import asyncio, sys\n"
        "import bot.cli_serve, bot.diagnostics, bot.cli_common\n"
        "from storage.db import Database\n"
        "from storage.migrations import current_revision, head_revision, is_known_revision\n"
        "from storage.migrations import upgrade\n"
        "async def main():\n"
        f"    database = Database.open({url!r})\n"
        "    await upgrade(database.engine)\n"
        "    at = await current_revision(database.engine)\n"
        "    await database.dispose()\n"
        "    print(at == head_revision(), is_known_revision(at))\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True True\n[]\n"


def test_the_revisions_known_without_alembic_are_alembic_s():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == scripts.get_current_head()
    for script in scripts.walk_revisions():
        assert is_known_revision(script.revision)
    assert not is_known_revision("9999") and not is_known_revision("")
