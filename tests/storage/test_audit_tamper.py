"""Someone with write access to the database but not PUSHOPS_SECRET_KEY rewrites the audit log.

Each case tampers with raw SQL, as such a person would, computing SHA-256 hashes where that
helps them (the hashing code is public), and `pushops audit verify` must name the break:
through the MACs alone, or against checkpoints taken before the tampering where only going
back in time was done (every state left then really existed once).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from storage import workspaces
from storage.audit import event_hash
from storage.db import Database
from storage.models import (
    GENESIS_HASH,
    AuditEvent,
    MemberRole,
    Workspace,
)
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM
from tests.storage.auditkit import log_events, stored_events

Tamper = Callable[[Database], Awaitable[None]]


@pytest.fixture
async def logged(database, storage_factory) -> list[AuditEvent]:
    """Five events in DEFAULT_TEAM (with a member, so deleting it takes more), two in OTHER_TEAM."""
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)
    async with database.sessions.begin() as session:
        await workspaces.add_member(
            session=session,
            team_id=DEFAULT_TEAM,
            subject_id="U0BOB",
            role=MemberRole.APPROVER,
            actor="U0ALICE",
        )
    await log_events(database, DEFAULT_TEAM, 4)
    await log_events(database, OTHER_TEAM, 2)
    return await stored_events(database, DEFAULT_TEAM)


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    """Where `pushops audit checkpoint` writes in these tests (PUSHOPS_AUDIT_CHECKPOINTS)."""
    return tmp_path / "checkpoints.jsonl"


@pytest.fixture
def checkpoint(run_cli, checkpoints) -> Callable[[], Awaitable[Any]]:
    async def take() -> Any:
        result = await run_cli(
            "audit", "checkpoint", env={"PUSHOPS_AUDIT_CHECKPOINTS": str(checkpoints)}
        )
        assert result.code == 0, result.stderr
        return result

    return take


# --- what the attacker does ---------------------------------------------------------------------


async def _sql(database: Database, statement: str, **params: object) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(sa.text(statement), {"team": DEFAULT_TEAM, **params})


async def _rehash_from(database: Database, seq: int, **columns: Any) -> None:
    """Set `columns` on every event from `seq` on, then recompute their SHA-256 chain and head."""
    async with database.sessions.begin() as session:
        events = list(
            await session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.team_id == DEFAULT_TEAM)
                .order_by(AuditEvent.seq)
            )
        )
        prev = GENESIS_HASH
        for event in events:
            if event.seq >= seq:
                for name, value in columns.items():
                    setattr(event, name, value)
                event.prev_hash = prev
                event.hash = event_hash(prev, event)
            prev = event.hash
        workspace = await session.get(Workspace, DEFAULT_TEAM)
        assert workspace is not None
        workspace.audit_head_seq, workspace.audit_head_hash = events[-1].seq, prev


async def _edit(database: Database) -> None:
    await _sql(
        database, "UPDATE audit_events SET actor = 'U0MALLORY' WHERE team_id = :team AND seq = 3"
    )


async def _delete(database: Database) -> None:
    await _sql(database, "DELETE FROM audit_events WHERE team_id = :team AND seq = 2")


async def _reorder(database: Database) -> None:  # (team_id, seq) is unique: via a free number
    await _sql(database, "UPDATE audit_events SET seq = 1000 WHERE team_id = :team AND seq = 2")
    await _sql(database, "UPDATE audit_events SET seq = 2 WHERE team_id = :team AND seq = 4")
    await _sql(database, "UPDATE audit_events SET seq = 4 WHERE team_id = :team AND seq = 1000")


async def _renumber(database: Database) -> None:
    """Event #3 removed and the later ones moved down to close the gap, the head moved too."""
    await _sql(database, "DELETE FROM audit_events WHERE team_id = :team AND seq = 3")
    for seq in (4, 5):
        await _sql(
            database,
            "UPDATE audit_events SET seq = :new WHERE team_id = :team AND seq = :old",
            old=seq,
            new=seq - 1,
        )
    await _sql(database, "UPDATE workspaces SET audit_head_seq = 4 WHERE team_id = :team")


async def _rehash(database: Database) -> None:
    await _rehash_from(database, 3, details={"n": 99})


async def _rehash_and_drop_macs(database: Database) -> None:
    await _rehash_from(database, 3, details={"n": 99}, mac=None, mac_key_id=None)


async def _rehash_everything_without_macs(database: Database) -> None:
    await _rehash_from(database, 1, actor="U0MALLORY", mac=None, mac_key_id=None)


async def _forge(database: Database, *, mac: str | None) -> None:
    """A sixth event, `approval.approve` by someone who never approved, hashed right."""
    last = (await stored_events(database, DEFAULT_TEAM))[-1]
    async with database.sessions.begin() as session:
        forged = AuditEvent(
            id=uuid.uuid4(),
            team_id=DEFAULT_TEAM,
            seq=6,
            created_at=last.created_at,
            actor="U0MALLORY",
            action="approval.approve",
            target="send 7K3M9Q",
            outcome="ok",
            details={},
            prev_hash=last.hash,
        )
        forged.hash = event_hash(last.hash, forged)
        forged.mac, forged.mac_key_id = mac, last.mac_key_id if mac else None
        session.add(forged)
        await session.flush()
        workspace = await session.get(Workspace, DEFAULT_TEAM)
        assert workspace is not None
        workspace.audit_head_seq, workspace.audit_head_hash = 6, forged.hash


async def _forge_with_a_copied_mac(database: Database) -> None:
    await _forge(database, mac=(await stored_events(database, DEFAULT_TEAM))[-1].mac)


async def _forge_without_mac(database: Database) -> None:
    await _forge(database, mac=None)


async def _truncate(database: Database) -> None:
    """The last two events removed and the head moved back to the one left last."""
    third = (await stored_events(database, DEFAULT_TEAM))[2]
    await _sql(database, "DELETE FROM audit_events WHERE team_id = :team AND seq > 3")
    await _sql(
        database,
        "UPDATE workspaces SET audit_head_seq = 3, audit_head_hash = :hash WHERE team_id = :team",
        hash=third.hash,
    )


async def _wipe(database: Database) -> None:
    await _sql(database, "DELETE FROM audit_events WHERE team_id = :team")
    await _sql(
        database,
        "UPDATE workspaces SET audit_head_seq = 0, audit_head_hash = :genesis "
        "WHERE team_id = :team",
        genesis=GENESIS_HASH,
    )


async def _delete_workspace(database: Database) -> None:
    for table in ("audit_events", "members", "workspaces"):
        await _sql(database, f"DELETE FROM {table} WHERE team_id = :team")  # the table name is ours


CHECKPOINT = "the checkpoint of {at}"

# case id -> (tampering, the broken event's number or None for the chain, what verify says)
WITHOUT_CHECKPOINTS: dict[str, tuple[Tamper, int | None, str]] = {
    "edited": (_edit, 3, "its content does not match its hash (edited or moved)"),
    "deleted": (_delete, 3, "event #2 is missing before it (removed)"),
    "reordered": (_reorder, 2, "it does not follow the event before it"),
    "renumbered": (_renumber, 3, "it does not follow the event before it"),
    "rehashed": (_rehash, 3, "its MAC does not match (written or rewritten without the audit key)"),
    "rehashed, MACs dropped": (
        _rehash_and_drop_macs,
        3,
        "it carries no MAC, though event #1 before it does",
    ),
    "rehashed whole, no MACs": (
        _rehash_everything_without_macs,
        None,
        "its last event #5 carries no MAC, so the chain is not anchored by the audit key",
    ),
    "forged, copied MAC": (_forge_with_a_copied_mac, 6, "its MAC does not match"),
    "forged, no MAC": (_forge_without_mac, 6, "it carries no MAC, though event #1 before it does"),
}


@pytest.mark.parametrize("case", WITHOUT_CHECKPOINTS)
async def test_tampering_is_named_by_verify_through_the_macs(database, logged, run_cli, case):
    tamper, seq, reason = WITHOUT_CHECKPOINTS[case]
    assert (await run_cli("audit", "verify")).code == 0

    await tamper(database)

    result = await run_cli("audit", "verify")
    assert result.code == 1
    if seq is None:
        where = "the chain"
    else:
        [broken] = [
            event for event in await stored_events(database, DEFAULT_TEAM) if event.seq == seq
        ]
        where = f"event #{seq} ({broken.id})"
    assert f"Audit chain broken: workspace {DEFAULT_TEAM}, {where}: {reason}" in result.stderr
    assert OTHER_TEAM not in result.stderr  # the other workspace's chain holds
    assert (await run_cli("audit", "verify", "--team", OTHER_TEAM)).code == 0


# case id -> (tampering, what verify --checkpoints says about the chain)
WITH_CHECKPOINTS: dict[str, tuple[Tamper, str]] = {
    "end cut, head moved back": (
        _truncate,
        "the chain ends at event #3, but {checkpoint} recorded event #5 (events were removed "
        "from the end, or the database was rolled back)",
    ),
    "log wiped, head reset": (
        _wipe,
        "it has no audit events, but {checkpoint} recorded its event #5 (its log was wiped)",
    ),
    "workspace deleted": (
        _delete_workspace,
        "the workspace is gone from the database, but {checkpoint} recorded its event #5 "
        "(the workspace was deleted)",
    ),
}


@pytest.mark.parametrize("case", WITH_CHECKPOINTS)
async def test_going_back_in_time_is_named_against_the_checkpoints(
    database, logged, run_cli, checkpoint, checkpoints, case
):
    tamper, reason = WITH_CHECKPOINTS[case]
    await checkpoint()
    [taken] = [
        json.loads(line)
        for line in checkpoints.read_text().splitlines()
        if json.loads(line)["team_id"] == DEFAULT_TEAM
    ]
    at = taken["at"].replace("T", " ").replace("Z", " UTC")

    await tamper(database)

    result = await run_cli("audit", "verify", "--checkpoints", str(checkpoints))
    assert result.code == 1
    expected = reason.format(checkpoint=CHECKPOINT.format(at=at))
    assert result.stderr == f"Audit chain broken: workspace {DEFAULT_TEAM}, the chain: {expected}\n"


async def test_a_log_rolled_back_and_written_again_differs_from_its_checkpoint(
    database, logged, run_cli, checkpoint, checkpoints
):
    """An old backup restored, and PushOps (with its key) writing on from there."""
    await checkpoint()
    await _truncate(database)
    await log_events(database, DEFAULT_TEAM, 2, first=100)  # new #4 and #5, keyed

    assert (await run_cli("audit", "verify")).code == 0  # every state a real one
    result = await run_cli("audit", "verify", "--checkpoints", str(checkpoints))

    fifth = (await stored_events(database, DEFAULT_TEAM))[4]
    assert result.code == 1
    assert f"workspace {DEFAULT_TEAM}, event #5 ({fifth.id}): it is not the event " in (
        result.stderr
    )
    assert "(the log was rewritten from here on, or rolled back and written again)" in (
        result.stderr
    )


async def test_a_log_rewritten_without_macs_and_then_anchored_differs_from_its_checkpoint(
    database, logged, run_cli, checkpoint, checkpoints
):
    """A chain with no MAC at all looks like one from before the key, and gets anchored; the
    checkpoints taken earlier still tell."""
    await checkpoint()
    await _rehash_everything_without_macs(database)
    await checkpoint()  # anchors the rewritten chain with an `audit.keyed` event

    assert (await run_cli("audit", "verify")).code == 0
    result = await run_cli("audit", "verify", "--checkpoints", str(checkpoints))

    assert result.code == 1
    assert f"workspace {DEFAULT_TEAM}, event #5 (" in result.stderr
    assert "it is not the event the checkpoint of" in result.stderr


async def test_the_untouched_log_extends_its_checkpoints(
    database, logged, run_cli, checkpoint, checkpoints
):
    await checkpoint()
    await log_events(database, DEFAULT_TEAM, 3, first=10)
    await checkpoint()

    result = await run_cli("audit", "verify", "--checkpoints", str(checkpoints))

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == (
        "Audit chain intact: 10 events in 2 workspaces, extending all 4 checkpoints in "
        f"{checkpoints}.\n"
    )
