"""Tampering with any column of one event in the middle of a long chain is named by
`pushops audit verify`: the event is read in a later page than the first, after thousands of
events that verify, and the break names it (or the event after it, for one moved away)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa

from storage.audit import AuditEntry, append_audit_entries
from storage.db import Database
from storage.models import AuditEvent
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM

LENGTH = 4_500  # more than two of verify's pages
MIDDLE = 3_001
_EVENTS = cast(sa.Table, AuditEvent.__table__)

Change = Callable[[dict[str, Any]], dict[str, Any]]
"""The columns to set on the middle event, given it as stored."""

# column -> (new values, the event named: 0 the middle one, 1 the next, what verify says)
CASES: dict[str, tuple[Change, int, str]] = {
    "id": (lambda e: {"id": uuid.uuid4()}, 0, "its content does not match its hash"),
    "team_id": (
        lambda e: {"team_id": OTHER_TEAM, "seq": 1_000_000},
        1,
        f"event #{MIDDLE} is missing before it (removed)",
    ),
    "seq": (lambda e: {"seq": 1_000_000}, 1, f"event #{MIDDLE} is missing before it (removed)"),
    "created_at": (
        lambda e: {"created_at": e["created_at"] + timedelta(microseconds=1)},
        0,
        "its content does not match its hash",
    ),
    "actor": (lambda e: {"actor": "U0MALLORY"}, 0, "its content does not match its hash"),
    "action": (lambda e: {"action": "send.cancelled"}, 0, "its content does not match its hash"),
    "target": (lambda e: {"target": "send 0000AA"}, 0, "its content does not match its hash"),
    "outcome": (lambda e: {"outcome": "denied"}, 0, "its content does not match its hash"),
    "details": (
        lambda e: {"details": {**e["details"], "n": -1}},
        0,
        "its content does not match its hash",
    ),
    "details, a key added": (
        lambda e: {"details": {**e["details"], "extra": None}},
        0,
        "its content does not match its hash",
    ),
    "prev_hash": (
        lambda e: {"prev_hash": "f" * 64},
        0,
        "it does not follow the event before it",
    ),
    "hash": (lambda e: {"hash": "e" * 64}, 0, "its content does not match its hash"),
    "mac": (lambda e: {"mac": "d" * 64}, 0, "its MAC does not match"),
    "mac removed": (
        lambda e: {"mac": None, "mac_key_id": None},
        0,
        "it carries no MAC, though event #1 before it does",
    ),
}


async def _log(database: Database, team_id: str, count: int) -> None:
    entries = [
        AuditEntry(
            "U0ALICE",
            "send.sent",
            f"send {n:06d}",
            details={"send_id": str(uuid.uuid4()), "n": n, "é": [n, "ü"]},
        )
        for n in range(count)
    ]
    async with database.sessions.begin() as session:
        await append_audit_entries(session=session, team_id=team_id, entries=entries)


@pytest.fixture
async def long_chain(database, storage_factory) -> None:
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)
    await _log(database, DEFAULT_TEAM, LENGTH)


async def _row(database: Database, seq: int) -> dict[str, Any]:
    async with database.engine.connect() as connection:
        query = sa.select(_EVENTS).where(_EVENTS.c.team_id == DEFAULT_TEAM, _EVENTS.c.seq == seq)
        return dict((await connection.execute(query)).one()._mapping)


@pytest.mark.parametrize("case", CASES)
async def test_tampering_with_any_column_mid_chain_is_named(database, long_chain, run_cli, case):
    change, named, reason = CASES[case]
    result = await run_cli("audit", "verify")
    assert (result.code, result.stdout) == (
        0,
        f"Audit chain intact: {LENGTH:,} events in 2 workspaces.\n",
    )
    stored = await _row(database, MIDDLE)
    before, values = stored["id"], change(stored)
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(_EVENTS)
            .where(_EVENTS.c.team_id == DEFAULT_TEAM, _EVENTS.c.seq == MIDDLE)
            .values(**values)
        )

    result = await run_cli("audit", "verify", "--team", DEFAULT_TEAM)

    # The event named: the next one for a moved event, else the middle one as it is now.
    broken = (await _row(database, MIDDLE + 1))["id"] if named else values.get("id", before)
    seq = MIDDLE + named
    assert result.code == 1
    assert result.stderr.startswith(
        f"Audit chain broken: workspace {DEFAULT_TEAM}, event #{seq} ({broken}): {reason}"
    ), result.stderr
