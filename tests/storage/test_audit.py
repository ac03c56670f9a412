"""Invariant 8 (docs/design.md): a hash-chained audit log whose tampering `pushops audit verify`
names."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta
from itertools import pairwise

import pytest
import sqlalchemy as sa

from storage import queries
from storage.audit import REDACTED, redact
from storage.db import Database
from storage.models import AuditEvent, utcnow
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM
from tests.storage.auditkit import log_events, stored_events


@pytest.fixture
async def logged(database, storage_factory):
    """Five events in DEFAULT_TEAM, two in OTHER_TEAM."""
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)
    await log_events(database, DEFAULT_TEAM, 5)
    await log_events(database, OTHER_TEAM, 2)
    return await stored_events(database, DEFAULT_TEAM)


async def test_events_chain_per_workspace_and_verify_holds(database, logged, run_cli):
    assert [event.seq for event in logged] == [1, 2, 3, 4, 5]
    assert logged[0].prev_hash == "0" * 64
    assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(logged))
    (other_first, _) = await stored_events(database, OTHER_TEAM)
    assert other_first.seq == 1 and other_first.prev_hash == "0" * 64

    result = await run_cli("audit", "verify")

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == "Audit chain intact: 7 events in 2 workspaces.\n"


async def _execute(database: Database, statement: str, **params: object) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(sa.text(statement), params)


_SWAP_2_AND_4 = [  # (team_id, seq) is unique, so the swap goes through a free number
    "UPDATE audit_events SET seq = 1000 WHERE team_id = :team AND seq = 2",
    "UPDATE audit_events SET seq = 2 WHERE team_id = :team AND seq = 4",
    "UPDATE audit_events SET seq = 4 WHERE team_id = :team AND seq = 1000",
]


@pytest.mark.parametrize(
    ("statements", "broken_index", "reason"),
    [
        (
            ["UPDATE audit_events SET actor = 'U0MALLORY' WHERE team_id = :team AND seq = 3"],
            2,
            "#3 ({id}): its content does not match its hash",
        ),
        (
            ["UPDATE audit_events SET details = '{\"n\": 99}' WHERE team_id = :team AND seq = 5"],
            4,
            "#5 ({id}): its content does not match its hash",
        ),
        (
            ["DELETE FROM audit_events WHERE team_id = :team AND seq = 2"],
            2,
            "#3 ({id}): event #2 is missing before it",
        ),
        # the old 4th event now sits at #2
        (_SWAP_2_AND_4, 3, "#2 ({id}): it does not follow the event before it"),
    ],
    ids=["edited", "details-edited", "deleted", "reordered"],
)
async def test_tampering_by_raw_sql_fails_verify_and_names_the_event(
    database, logged, run_cli, statements, broken_index, reason
):
    for statement in statements:
        await _execute(database, statement, team=DEFAULT_TEAM)

    result = await run_cli("audit", "verify")

    assert result.code == 1
    expected = f"Audit chain broken: workspace {DEFAULT_TEAM}, event "
    assert expected + reason.format(id=logged[broken_index].id) in result.stderr
    assert OTHER_TEAM not in result.stderr  # the other chain holds
    assert (await run_cli("audit", "verify", "--team", OTHER_TEAM)).code == 0


async def test_removing_the_last_events_is_seen_too(database, logged, run_cli):
    await _execute(
        database, "DELETE FROM audit_events WHERE team_id = :team AND seq >= 4", team=DEFAULT_TEAM
    )

    result = await run_cli("audit", "verify", "--team", DEFAULT_TEAM)

    assert result.code == 1
    assert "the chain ends at event #3 but the workspace records #5" in result.stderr


async def test_concurrent_appends_in_one_workspace_never_fork_the_chain(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    writers = database.another(pool_size=8, max_overflow=0)
    try:
        await asyncio.gather(
            *(log_events(writers, DEFAULT_TEAM, 5, action=f"writer.{n}") for n in range(8))
        )
    finally:
        await writers.dispose()

    async with database.sessions() as session:
        report = await queries.verify_audit_chain(session=session, team_id=DEFAULT_TEAM)
    assert report.ok and report.events == 40
    assert [event.seq for event in await stored_events(database, DEFAULT_TEAM)] == list(
        range(1, 41)
    )


def test_details_are_redacted_by_key_and_by_value():
    details = {
        "api_key": "anything",
        "nested": {"bot_token": "x", "fine": "kept", "list": ["xoxb-123-456", "ok"]},
        "header": "Key os_v2_app_abcdef",
        "note": "made with os_v2_app_abcdef inside",
        "count": 3,
        "when": utcnow().date(),
    }
    cleaned = redact(details)
    assert cleaned["api_key"] == REDACTED
    assert cleaned["nested"] == {"bot_token": REDACTED, "fine": "kept", "list": [REDACTED, "ok"]}
    assert cleaned["header"] == REDACTED and cleaned["note"] == REDACTED
    assert cleaned["count"] == 3 and isinstance(cleaned["when"], str)


async def test_an_appended_event_never_stores_a_secret(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    async with database.sessions.begin() as session:
        event = await queries.append_audit(
            session=session,
            team_id=DEFAULT_TEAM,
            actor="U0ADMIN",
            action="app.added",
            details={"rest_api_key": "os_v2_app_secret_value_123"},
        )
    async with database.engine.connect() as connection:
        raw = await connection.scalar(
            sa.select(AuditEvent.details).where(AuditEvent.id == event.id)
        )
    assert raw == {"rest_api_key": REDACTED}


async def test_export_writes_csv_and_json_lines_filtered_by_team_and_time(
    database, logged, run_cli
):
    jsonl = await run_cli("audit", "export", "--format", "jsonl", "--team", DEFAULT_TEAM)
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert jsonl.code == 0
    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[2]["id"] == str(logged[2].id) and rows[2]["hash"] == logged[2].hash
    assert rows[2]["details"] == {"n": 2} and rows[2]["target"] == "thing 2"

    every = await run_cli("audit", "export", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(every.stdout)))
    assert every.code == 0
    assert [(row["team_id"], row["seq"]) for row in table] == [  # by workspace, then seq
        (OTHER_TEAM, "1"),
        (OTHER_TEAM, "2"),
        *((DEFAULT_TEAM, str(n)) for n in range(1, 6)),
    ]
    assert json.loads(table[2]["details"]) == {"n": 0}

    later = (utcnow() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert (await run_cli("audit", "export", "--since", later)).stdout == ""
    earlier = (utcnow() - timedelta(days=1)).date().isoformat()
    assert len((await run_cli("audit", "export", "--since", earlier)).stdout.splitlines()) == 7


@pytest.mark.parametrize(
    "cell",
    ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(1)", "\tcmd", "\rcmd"],
)
async def test_csv_export_defuses_cells_a_spreadsheet_would_run(
    database, storage_factory, run_cli, cell
):
    # Targets and actors come from Slack users (an external id looked up, a user's name).
    await storage_factory.workspace(DEFAULT_TEAM)
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session, team_id=DEFAULT_TEAM, actor=cell, action="user.lookup", target=cell
        )

    every = await run_cli("audit", "export", "--format", "csv")
    jsonl = await run_cli("audit", "export", "--format", "jsonl")

    [row] = list(csv.DictReader(io.StringIO(every.stdout)))
    assert (row["actor"], row["target"]) == ("'" + cell, "'" + cell)
    assert row["action"] == "user.lookup" and row["details"] == "{}"  # ordinary cells untouched
    [line] = [json.loads(text) for text in jsonl.stdout.splitlines()]
    assert (line["actor"], line["target"]) == (cell, cell)  # JSON lines keep the exact value


async def test_a_bad_since_is_a_usage_error(run_cli):
    result = await run_cli("audit", "export", "--since", "yesterday-ish")
    assert result.code == 2
    assert "'yesterday-ish' is not a date or time" in result.stderr
