"""An event's `details` are stored as their canonical JSON text, the text their hash covers, and
`pushops audit verify` hashes that text as it is; a text in any other form is parsed first, as
it always was. Either way the verdict is the one parsing every text would give: the same
details in another form verify, any change to them fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from storage import queries
from storage.audit import canonical_json
from storage.db import Database
from tests.plugins.database import DEFAULT_TEAM
from tests.storage.auditkit import log_events, stored_events

DETAILS: dict[str, Any] = {"zeta": "é ü", "alpha": [1, 2.5, None], "mid": {"b": True, "a": 'x"y'}}
CANONICAL = '{"alpha":[1,2.5,null],"mid":{"a":"x\\"y","b":true},"zeta":"é ü"}'


@pytest.fixture
async def logged(database, storage_factory) -> None:
    """Event #1 with DETAILS, then two more."""
    await storage_factory.workspace(DEFAULT_TEAM)
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session, team_id=DEFAULT_TEAM, actor="U0ALICE", action="t", details=DETAILS
        )
    await log_events(database, DEFAULT_TEAM, 2)


async def _stored_text(database: Database, seq: int) -> str:
    async with database.engine.connect() as connection:
        text = await connection.scalar(
            sa.text("SELECT CAST(details AS TEXT) FROM audit_events WHERE seq = :seq"),
            {"seq": seq},
        )
    assert isinstance(text, str)
    return text


async def _store_text(database: Database, seq: int, text: str) -> None:
    """Set the stored text of event `seq`'s details, as raw SQL would."""
    if database.engine.dialect.name == "postgresql":
        value: Any = sa.cast(sa.bindparam("text", text, type_=sa.Text), sa.JSON)
    else:
        value = sa.bindparam("text", text, type_=sa.Text)
    statement = sa.update(sa.table("audit_events", sa.column("details"), sa.column("seq")))
    async with database.engine.begin() as connection:
        await connection.execute(statement.where(sa.column("seq") == seq).values(details=value))
    assert await _stored_text(database, seq) == text


async def test_details_are_stored_as_the_canonical_text_their_hash_covers(database, logged):
    assert canonical_json(DETAILS) == CANONICAL
    assert await _stored_text(database, 1) == CANONICAL
    assert await _stored_text(database, 2) == '{"n":0}'
    (first, *_) = await stored_events(database, DEFAULT_TEAM)
    assert first.details == DETAILS  # read back as they were given


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(DETAILS),  # what earlier releases stored: spaces, insertion order, \u escapes
        '{"zeta":"é ü","mid":{"b":true,"a":"x\\"y"},"alpha":[1,2.5,null]}',  # compact, unsorted
        '{"alpha":[1,2.5,null],"mid":{"a":"x\\"y","b":true},"zeta":"\\u00e9 \\u00fc"}',
        '{"alpha":[1,2.50,null],"mid":{"a":"x\\"y","b":true},"zeta":"é ü"}',  # 2.50 is 2.5
    ],
    ids=["json.dumps", "unsorted", "escaped", "number written otherwise"],
)
async def test_the_same_details_stored_in_another_form_still_verify(
    database, logged, run_cli, text
):
    await _store_text(database, 1, text)

    result = await run_cli("audit", "verify")

    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == "Audit chain intact: 3 events in 1 workspace.\n"


@pytest.mark.parametrize(
    "text",
    [
        CANONICAL.replace("é ü", "é u"),
        CANONICAL.replace("2.5", "2.6"),
        CANONICAL.replace('"b":true', '"b":false'),
        CANONICAL.replace('"alpha"', '"alpha":[],"beta"'),
        CANONICAL.replace(',"zeta":"é ü"', ""),
        json.dumps({**DETAILS, "zeta": "é u"}),  # changed, and in the earlier form
    ],
    ids=["text", "number", "flag", "key added", "key removed", "json.dumps"],
)
async def test_a_change_within_the_details_text_is_a_break(database, logged, run_cli, text):
    await _store_text(database, 1, text)

    result = await run_cli("audit", "verify")

    assert result.code == 1
    (first, *_) = await stored_events(database, DEFAULT_TEAM)
    assert result.stderr == (
        f"Audit chain broken: workspace {DEFAULT_TEAM}, event #1 ({first.id}): its content does "
        "not match its hash (edited or moved)\n"
    )


async def test_details_whose_text_holds_a_key_separator_verify(database, storage_factory, run_cli):
    # '": ' inside a value: canonical text, though it looks like the earlier form
    details = {"note": 'say "a": b, "c": d'}
    await storage_factory.workspace(DEFAULT_TEAM)
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session, team_id=DEFAULT_TEAM, actor="U0ALICE", action="t", details=details
        )
    assert await _stored_text(database, 1) == canonical_json(details)

    assert (await run_cli("audit", "verify")).code == 0

    await _store_text(database, 1, canonical_json({"note": 'say "a": b, "c": e'}))
    result = await run_cli("audit", "verify")
    assert result.code == 1
    assert "event #1" in result.stderr and "its content does not match its hash" in result.stderr


async def test_details_that_are_not_json_any_more_are_a_break_not_a_crash(
    database, storage_factory, run_cli
):
    if database.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL refuses a text that is not JSON in a JSON column; SQLite keeps it")
    await storage_factory.workspace(DEFAULT_TEAM)
    await log_events(database, DEFAULT_TEAM, 2)
    (first, _) = await stored_events(database, DEFAULT_TEAM)
    await _store_text(database, 1, '{"n":0')

    result = await run_cli("audit", "verify")

    assert result.code == 1
    assert result.stderr == (
        f"Audit chain broken: workspace {DEFAULT_TEAM}, event #1 ({first.id}): its content does "
        "not match its hash (edited or moved)\n"
    )
