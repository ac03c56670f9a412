"""`pushops prune --older-than DURATION [--team T] [--dry-run]` as an operator runs it: which
sends go (only finished ones, old enough), what goes with them, and an audit log that still
verifies afterwards, and still shows tampering with what remains."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import (
    AuditEvent,
    OneSignalApp,
    OutboxKind,
    OutboxMessage,
    Send,
    SendNotification,
    SendState,
    utcnow,
)
from storage.notifications import SendBatches, record_notifications
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM

OLD = utcnow() - timedelta(days=100)
RECENT = utcnow() - timedelta(days=1)


async def _send(
    factory: Any, app: OneSignalApp, state: SendState, ended: Any, **columns: Any
) -> Send:
    return await factory.send(
        app, state=state, updated_at=ended, due_at=ended, finished_at=ended, **columns
    )


async def _short_ids(database: Database) -> set[str]:
    async with database.sessions() as session:
        return set(await session.scalars(sa.select(Send.short_id)))


async def _count(database: Database, model: Any) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


@pytest.fixture
async def history(database, storage_factory) -> dict[str, Send]:
    """Sends of every kind, old and recent, in two workspaces."""
    app = await storage_factory.app()
    other = await storage_factory.app(team_id=OTHER_TEAM)
    sends = {state.value: await _send(storage_factory, app, state, OLD) for state in SendState}
    sends["recent"] = await _send(storage_factory, app, SendState.SENT, RECENT)
    sends["other"] = await _send(storage_factory, other, SendState.SENT, OLD)
    sends["owed"] = await _send(storage_factory, app, SendState.SENT, OLD)
    async with database.sessions.begin() as session:
        sent = sends["sent"]
        batches = [{"index": 0, "notification_id": "n-0"}, {"index": 1, "notification_id": "n-1"}]
        await record_notifications(
            session=session, recorded=[SendBatches(DEFAULT_TEAM, sent.id, batches, "n-0")]
        )
        session.add(_owed_message(sends["owed"]))
    return sends


def _owed_message(send: Send) -> OutboxMessage:
    return OutboxMessage(
        team_id=send.team_id,
        key=f"log:{send.id}",
        send_id=send.id,
        kind=OutboxKind.MESSAGE,
        purpose="log",
        destination="C0LOG",
        payload={},
    )


FINISHED = ("sent", "failed", "cancelled", "rejected", "expired")


async def test_a_dry_run_counts_and_changes_nothing(database, run_cli, history):
    before = await _short_ids(database)
    events = await _count(database, AuditEvent)

    result = await run_cli("prune", "--older-than", "90d", "--dry-run")

    assert result.code == 0, result.stderr
    assert "Would delete 6 finished sends that ended before" in result.stdout
    assert "(2 workspaces); nothing was changed (--dry-run)." in result.stdout
    assert await _short_ids(database) == before
    assert await _count(database, AuditEvent) == events


async def test_prune_deletes_only_old_finished_sends_and_the_audit_log_still_verifies(
    database, run_cli, history
):
    result = await run_cli("prune", "--older-than", "90d")
    verified = await run_cli("audit", "verify")

    assert result.code == 0, result.stderr
    assert "Deleted 6 finished sends" in result.stdout and "(2 workspaces)" in result.stdout
    kept = {history[name].short_id for name in history if name not in {*FINISHED, "other"}}
    assert await _short_ids(database) == kept
    assert await _count(database, SendNotification) == 0
    assert verified.code == 0, verified.stderr
    assert "Audit chain intact" in verified.stdout
    async with database.sessions() as session:
        pruned = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "sends.pruned"))
        ).all()
    assert sorted((e.team_id, e.details["sends"]) for e in pruned) == [
        (OTHER_TEAM, 1),
        (DEFAULT_TEAM, 5),
    ]


async def test_after_a_prune_tampering_with_what_remains_still_shows(database, run_cli, history):
    assert (await run_cli("prune", "--older-than", "90d")).code == 0
    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.team_id == DEFAULT_TEAM, AuditEvent.seq == 2)
            .values(actor="U0SOMEONEELSE")
        )

    verified = await run_cli("audit", "verify")

    assert verified.code == 1
    assert f"workspace {DEFAULT_TEAM}" in verified.stderr and "#2" in verified.stderr


async def test_team_limits_the_prune_to_one_workspace(database, run_cli, history):
    result = await run_cli("prune", "--older-than", "12w", "--team", OTHER_TEAM)

    assert result.code == 0, result.stderr
    assert "Deleted 1 finished send that ended before" in result.stdout
    assert history["other"].short_id not in await _short_ids(database)
    assert history["sent"].short_id in await _short_ids(database)


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("90", "'90' is not a duration; use a number and a unit: 12h, 90d, 26w or 1y"),
        ("ninety days", "'ninety days' is not a duration"),
        ("3 months", "'3 months' is not a duration"),
        ("0d", "'0d' is zero: every finished send would go"),
        ("-5d", "'-5d' is not a duration"),
    ],
)
async def test_a_bad_duration_is_refused_clearly(database, run_cli, history, duration, message):
    before = await _short_ids(database)

    result = await run_cli("prune", f"--older-than={duration}")

    assert result.code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert await _short_ids(database) == before


async def test_an_unknown_workspace_is_refused(database, run_cli, history):
    result = await run_cli("prune", "--older-than", "1y", "--team", "T0NOBODY")

    assert result.code == 1
    assert result.stderr.strip() == "error: No workspace T0NOBODY is known to PushOps."
