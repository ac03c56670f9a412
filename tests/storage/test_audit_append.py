"""Appending to the audit chain: batches, awkward details, and chains written before today."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import queries
from storage.audit import REDACTED, AuditEntry, append_audit_entries, event_hash, redact
from storage.db import Database
from storage.models import GENESIS_HASH, AuditEvent, Workspace
from tests.plugins.database import DEFAULT_TEAM


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


# Every kind of value a caller has passed as details, and what JSON gives back for it.
AWKWARD = {
    "tuple": (1, "two", (3,)),
    "date": date(2026, 3, 1),
    "str_enum": Colour.RED,
    "int_enum": Level.HIGH,
    "int_keys": {1: "one", 2: {"token": "xoxb-1-2"}},
    "unicode": "déjà vu ✓",
    "float": 0.1,
    "flags": [True, False, None],
    "nested": {"list": [{"api_key": "k"}, ("os_v2_app_secret",)]},
}
AWKWARD_STORED = {
    "tuple": [1, "two", [3]],
    "date": "2026-03-01",
    "str_enum": "red",
    "int_enum": 3,
    "int_keys": {"1": "one", "2": {"token": REDACTED}},
    "unicode": "déjà vu ✓",
    "float": 0.1,
    "flags": [True, False, None],
    "nested": {"list": [{"api_key": REDACTED}, [REDACTED]]},
}


def test_redaction_normalises_as_a_json_round_trip_would() -> None:
    assert redact(AWKWARD) == AWKWARD_STORED
    assert json.loads(json.dumps(redact(AWKWARD))) == AWKWARD_STORED


async def _stored(database: Database) -> list[AuditEvent]:
    async with database.sessions() as session:
        query = sa.select(AuditEvent).where(AuditEvent.team_id == DEFAULT_TEAM)
        return list(await session.scalars(query.order_by(AuditEvent.seq)))


async def test_a_batch_and_single_events_chain_in_order_and_verify(
    database, storage_factory, run_cli
):
    await storage_factory.workspace(DEFAULT_TEAM)
    entries = [
        AuditEntry("U0ALICE", f"batch.{n}", f"thing {n}", details={"n": n}) for n in range(3)
    ]
    async with database.sessions.begin() as session:
        await append_audit_entries(session=session, team_id=DEFAULT_TEAM, entries=entries)
        await append_audit_entries(session=session, team_id=DEFAULT_TEAM, entries=[])
        single = await queries.append_audit(
            session=session, team_id=DEFAULT_TEAM, actor="U0BOB", action="single", details=AWKWARD
        )

    events = await _stored(database)
    assert [(e.seq, e.action) for e in events] == [
        (1, "batch.0"),
        (2, "batch.1"),
        (3, "batch.2"),
        (4, "single"),
    ]
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert (single.id, single.seq, single.hash) == (events[3].id, 4, events[3].hash)
    assert events[3].details == AWKWARD_STORED
    async with database.sessions() as session:
        head = await session.get(Workspace, DEFAULT_TEAM)
    assert head is not None and (head.audit_head_seq, head.audit_head_hash) == (4, events[3].hash)
    result = await run_cli("audit", "verify")
    assert (result.code, result.stdout) == (
        0,
        "Audit chain intact: 4 events in 1 workspace.\n",
    )


# Two events hashed by the first release of the chain: any change to the canonical form must
# keep these verifying (version the form instead).
_GOLDEN: list[dict[str, Any]] = [
    {
        "id": uuid.UUID("0b9e2b8e-6f0c-4d0a-9a59-3f1f4f2a7c11"),
        "seq": 1,
        "created_at": datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
        "actor": "U0ALICE",
        "action": "send.sent",
        "target": "send 7K3M9Q",
        "details": {
            "send_id": "x",
            "attempt": 1,
            "ratio": 0.5,
            "ok": True,
            "none": None,
            "list": [1, "é"],
        },
        "hash": "0244882d7632d1d09d998a9d8a20a1805bd76adb6c2caef1f1dcdbea673b5492",
    },
    {
        "id": uuid.UUID("1c9e2b8e-6f0c-4d0a-9a59-3f1f4f2a7c12"),
        "seq": 2,
        "created_at": datetime(2026, 3, 1, 9, 30, 16, tzinfo=UTC),
        "actor": "worker:w1",
        "action": "send.failed",
        "target": "",
        "details": {},
        "hash": "90af93332d212352ad5e724bde56a85c952da4e5b51adffa72e39713f4d2733b",
    },
]


def test_the_canonical_form_still_gives_the_first_release_hashes() -> None:
    prev = GENESIS_HASH
    for golden in _GOLDEN:
        event = AuditEvent(team_id="T0GOLDEN", outcome="ok", prev_hash=prev, **golden)
        assert event_hash(prev, event) == golden["hash"]
        prev = golden["hash"]


async def test_a_chain_written_by_the_first_release_verifies_and_grows(
    database, storage_factory, run_cli
):
    await storage_factory.workspace("T0GOLDEN")
    prev = GENESIS_HASH
    async with database.engine.begin() as connection:
        for golden in _GOLDEN:
            row = {**golden, "team_id": "T0GOLDEN", "outcome": "ok", "prev_hash": prev}
            await connection.execute(sa.insert(AuditEvent), row)
            prev = golden["hash"]
        await connection.execute(
            sa.update(Workspace)
            .where(Workspace.team_id == "T0GOLDEN")
            .values(audit_head_seq=2, audit_head_hash=prev)
        )
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session, team_id="T0GOLDEN", actor="U0ALICE", action="after.upgrade"
        )

    result = await run_cli("audit", "verify", "--team", "T0GOLDEN")
    assert (result.code, result.stdout) == (
        0,
        "Audit chain intact: 3 events in 1 workspace.\n",
    )


async def _append_one(database: Database, action: str) -> None:
    async with database.sessions.begin() as session:
        await queries.append_audit(
            session=session, team_id=DEFAULT_TEAM, actor="U0ALICE", action=action
        )


async def test_appends_from_two_processes_interleave_into_one_chain(
    database, storage_factory, run_cli
):
    """Each process remembers the head it wrote last; the other's appends make that stale."""
    await storage_factory.workspace(DEFAULT_TEAM)
    other = database.another()
    try:
        for number, writer in enumerate([database, other, other, database, database, other]):
            await _append_one(writer, f"step.{number}")
    finally:
        await other.dispose()

    events = await _stored(database)
    assert [(e.seq, e.action) for e in events] == [(n + 1, f"step.{n}") for n in range(6)]
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert (await run_cli("audit", "verify")).code == 0


async def test_an_append_rolled_back_leaves_no_gap(database, storage_factory, run_cli):
    await storage_factory.workspace(DEFAULT_TEAM)
    await _append_one(database, "kept.1")
    session = database.sessions()
    async with session:
        async with session.begin():
            await queries.append_audit(
                session=session, team_id=DEFAULT_TEAM, actor="U0ALICE", action="rolled.back"
            )
            await session.rollback()
    await _append_one(database, "kept.2")

    events = await _stored(database)
    assert [(e.seq, e.action) for e in events] == [(1, "kept.1"), (2, "kept.2")]
    assert events[1].prev_hash == events[0].hash
    assert (await run_cli("audit", "verify")).code == 0


# The canonical form as docs/audit.md defines it, written the plain way: the event's columns
# as one JSON object, keys sorted, no spaces, UTF-8, its time in UTC to the microsecond.
_REFERENCE_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reference_hash(prev: str, event: AuditEvent) -> str:
    payload = {
        "id": str(event.id),
        "team_id": event.team_id,
        "seq": event.seq,
        "created_at": event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "details": event.details,
    }
    return hashlib.sha256((prev + _REFERENCE_JSON.encode(payload)).encode("utf-8")).hexdigest()


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


@settings(max_examples=300, deadline=None)
@given(
    team=st.text(max_size=20),
    seq=st.integers(min_value=1, max_value=2**62),
    at=st.datetimes(min_value=datetime(1000, 1, 2), timezones=_ZONES),
    words=st.tuples(st.text(max_size=64), st.text(max_size=64), st.text(), st.text(max_size=32)),
    details=st.dictionaries(st.text(), _JSON_VALUES, max_size=6),
)
def test_an_event_hashes_exactly_as_its_canonical_form_says(
    team: str,
    seq: int,
    at: datetime,
    words: tuple[str, str, str, str],
    details: dict[str, Any],
) -> None:
    actor, action, target, outcome = words
    event = AuditEvent(
        id=uuid.uuid4(),
        team_id=team,
        seq=seq,
        created_at=at,
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        details=details,
    )

    assert event_hash(GENESIS_HASH, event) == _reference_hash(GENESIS_HASH, event)
