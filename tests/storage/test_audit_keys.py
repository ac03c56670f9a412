"""The audit chain's key: derived apart from the encryption keys, rotated without rewriting the log,
and carried over to chains written before it; `pushops audit checkpoint` and its file."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

from storage import queries
from storage.audit import AUDIT_MAC_LABEL, AuditKeys
from storage.crypto import KeyRing, generate_key
from storage.db import Database
from storage.errors import AuditKeyMissing
from storage.models import AuditEvent, Workspace
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM, register_secret
from tests.storage.auditkit import log_events, stored_events


@pytest.fixture
async def logged(database, storage_factory) -> list[AuditEvent]:
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)
    await log_events(database, DEFAULT_TEAM, 3)
    await log_events(database, OTHER_TEAM, 1)
    return await stored_events(database, DEFAULT_TEAM)


def test_the_audit_key_is_derived_apart_from_the_key_that_encrypts(secret_key):
    ring = KeyRing.from_text(secret_key)
    ((key_id, audit_key),) = ring.derive(AUDIT_MAC_LABEL)
    ((_, other_use),) = ring.derive(b"another purpose")

    assert key_id == ring.primary_key_id  # one id names one entry of PUSHOPS_SECRET_KEY
    assert len(audit_key) == 32
    assert secret_key.encode() not in audit_key and audit_key != other_use
    assert "key" not in repr(AuditKeys.from_keyring(ring)).replace("key_ids", "")


async def test_each_event_carries_the_mac_of_its_hash_and_names_its_key(database, logged, keyring):
    keys = AuditKeys.from_keyring(keyring)
    for event in logged:
        assert event.mac_key_id == keyring.primary_key_id
        assert keys.check(event.mac_key_id, event.hash, event.mac or "") is True
    other_keys = AuditKeys.from_keyring(KeyRing.from_text(register_secret(generate_key())))
    assert other_keys.check(logged[0].mac_key_id, logged[0].hash, logged[0].mac or "") is None


async def test_a_database_opened_without_audit_keys_writes_no_event(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    keyless = Database.open(database.engine.url)
    try:
        async with keyless.sessions.begin() as session:
            with pytest.raises(AuditKeyMissing, match="No audit key"):
                await queries.append_audit(
                    session=session, team_id=DEFAULT_TEAM, actor="U0ALICE", action="test.event"
                )
    finally:
        await keyless.dispose()
    assert await stored_events(database, DEFAULT_TEAM) == []


# --- rotation ---------------------------------------------------------------------------------


async def test_after_keys_rotate_the_old_events_verify_with_and_without_the_old_key(
    database, logged, run_cli, secret_key, tmp_path
):
    checkpoints = tmp_path / "checkpoints.jsonl"
    env_file = {"PUSHOPS_AUDIT_CHECKPOINTS": str(checkpoints)}
    assert (await run_cli("audit", "checkpoint", env=env_file)).code == 0
    new_key = register_secret(generate_key())
    new_id = KeyRing.from_text(new_key).primary_key_id
    both = {"PUSHOPS_SECRET_KEY": f"{new_key},{secret_key}"}

    rotated = await run_cli("keys", "rotate", env=both)
    with_both = await run_cli("audit", "verify", "--checkpoints", str(checkpoints), env=both)
    new_only = {"PUSHOPS_SECRET_KEY": new_key}
    with_new = await run_cli("audit", "verify", "--checkpoints", str(checkpoints), env=new_only)

    assert rotated.code == 0, rotated.stderr
    assert f"Anchored the audit chains of 2 workspaces under key {new_id}." in rotated.stdout
    assert (with_both.code, with_new.code) == (0, 0), with_new.stderr
    assert with_new.stdout.startswith("Audit chain intact: 6 events in 2 workspaces")
    events = await stored_events(database, DEFAULT_TEAM)
    assert [(e.seq, e.mac, e.mac_key_id) for e in events[:3]] == [
        (e.seq, e.mac, e.mac_key_id)
        for e in logged  # never rewritten
    ]
    assert (events[3].action, events[3].mac_key_id) == ("audit.rekeyed", new_id)
    assert events[3].details == {
        "from_key_id": logged[0].mac_key_id,
        "to_key_id": new_id,
    }


async def test_rotation_with_the_old_key_already_gone_anchors_nothing_it_cannot_check(
    database, logged, run_cli
):
    new_key = register_secret(generate_key())

    rotated = await run_cli("keys", "rotate", env={"PUSHOPS_SECRET_KEY": new_key})
    verified = await run_cli(
        "audit", "verify", "--team", DEFAULT_TEAM, env={"PUSHOPS_SECRET_KEY": new_key}
    )

    key_id = logged[0].mac_key_id
    assert rotated.code == 1
    assert (
        f"error: workspace {DEFAULT_TEAM}: its last event #3 has its MAC from key {key_id}, which "
        "is not in PUSHOPS_SECRET_KEY; put it back (PUSHOPS_SECRET_KEY=new,old) and run again"
    ) in rotated.stderr
    assert len(await stored_events(database, DEFAULT_TEAM)) == 3
    assert verified.code == 1
    assert (
        f"its last event #3 has its MAC from key {key_id}, which is not in PUSHOPS_SECRET_KEY"
        in (verified.stderr)
    )


# --- chains written before the key ------------------------------------------------------------


async def _as_before_the_key(database: Database) -> None:
    """The log as the release before MACs left it: the same events, without MAC or key."""
    async with database.engine.begin() as connection:
        await connection.execute(sa.update(AuditEvent).values(mac=None, mac_key_id=None))


async def test_a_chain_from_before_the_key_is_anchored_once_and_then_verifies(
    database, logged, run_cli, tmp_path
):
    await _as_before_the_key(database)
    before = await run_cli("audit", "verify", "--team", DEFAULT_TEAM)
    target = tmp_path / "checkpoints.jsonl"

    first = await run_cli("audit", "checkpoint", env={"PUSHOPS_AUDIT_CHECKPOINTS": str(target)})
    second = await run_cli("audit", "checkpoint", env={"PUSHOPS_AUDIT_CHECKPOINTS": str(target)})
    after = await run_cli("audit", "verify", "--checkpoints", str(target))

    assert before.code == 1
    assert (
        f"workspace {DEFAULT_TEAM}, the chain: its last event #3 carries no MAC, so the chain is "
        "not anchored by the audit key (written before it, or its MACs were removed); PushOps "
        "anchors such a chain when it starts, and so does `pushops audit checkpoint`"
    ) in before.stderr
    assert first.code == 0, first.stderr
    assert first.stdout == (
        "Anchored the audit chains of 2 workspaces written before the audit key.\n"
        f"Wrote 2 audit checkpoints to {target}.\n"
    )
    assert second.stdout == f"Wrote 2 audit checkpoints to {target}.\n"  # anchored once
    assert after.code == 0, after.stderr
    events = await stored_events(database, DEFAULT_TEAM)
    assert [(e.action, e.target, e.mac is None) for e in events] == [
        *(("test.event", f"thing {n}", True) for n in range(3)),
        ("audit.keyed", "event #3", False),
    ]
    assert events[3].details == {"unkeyed_events": 3}


async def test_an_unkeyed_end_after_keyed_events_is_never_anchored(database, logged, run_cli):
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.team_id == DEFAULT_TEAM, AuditEvent.seq == 3)
            .values(mac=None, mac_key_id=None)
        )

    result = await run_cli("audit", "checkpoint")

    assert result.code == 1
    assert (
        f"error: workspace {DEFAULT_TEAM}: its last event #3 carries no MAC though event #1 does; "
        "not anchored, see `pushops audit verify`"
    ) in result.stderr
    assert (
        f"error: workspace {DEFAULT_TEAM}, event #3 ({logged[2].id}): the workspace's last event "
        "carries no MAC; not checkpointed"
    ) in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["team_id"] for line in lines] == [OTHER_TEAM]  # the sound one still is
    assert len(await stored_events(database, DEFAULT_TEAM)) == 3


# --- pushops audit checkpoint ---------------------------------------------------------------


async def test_checkpoints_are_appended_as_json_lines(database, logged, run_cli, tmp_path):
    target = tmp_path / "checkpoints.jsonl"
    env = {"PUSHOPS_AUDIT_CHECKPOINTS": str(target)}

    first = await run_cli("audit", "checkpoint", env=env)
    await log_events(database, DEFAULT_TEAM, 2)
    second = await run_cli("audit", "checkpoint", "--team", DEFAULT_TEAM, env=env)

    assert (first.code, second.code) == (0, 0)
    assert second.stdout == f"Wrote 1 audit checkpoint to {target}.\n"
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    events = await stored_events(database, DEFAULT_TEAM)
    assert [(line["team_id"], line["seq"], line["mac"]) for line in lines] == [
        (OTHER_TEAM, 1, (await stored_events(database, OTHER_TEAM))[0].mac),  # by team id
        (DEFAULT_TEAM, 3, logged[2].mac),
        (DEFAULT_TEAM, 5, events[4].mac),
    ]
    assert {line["key_id"] for line in lines} == {logged[0].mac_key_id}
    assert all(set(line) == {"at", "key_id", "mac", "seq", "team_id"} for line in lines)


@pytest.mark.parametrize("setting", ["-", None])
async def test_checkpoints_go_to_standard_output_for_dash_or_when_unset(
    database, logged, run_cli, setting
):
    result = await run_cli("audit", "checkpoint", env={"PUSHOPS_AUDIT_CHECKPOINTS": setting})

    assert result.code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # nothing else there
    assert [(line["team_id"], line["seq"]) for line in lines] == [
        (OTHER_TEAM, 1),
        (DEFAULT_TEAM, 3),
    ]
    assert result.stderr == "Wrote 2 audit checkpoints to standard output.\n"


async def test_checkpoints_read_from_standard_input(database, logged, run_cli, monkeypatch):
    taken = await run_cli("audit", "checkpoint", env={"PUSHOPS_AUDIT_CHECKPOINTS": "-"})
    monkeypatch.setattr("sys.stdin", io.StringIO(taken.stdout))

    result = await run_cli("audit", "verify", "--checkpoints", "-")

    assert result.code == 0, result.stderr
    assert result.stdout.endswith("extending all 2 checkpoints in -.\n")


async def test_a_checkpoint_file_that_cannot_be_written_is_an_error(
    database, logged, run_cli, tmp_path
):
    target = tmp_path / "missing-folder" / "checkpoints.jsonl"

    result = await run_cli("audit", "checkpoint", env={"PUSHOPS_AUDIT_CHECKPOINTS": str(target)})

    assert result.code == 1
    assert result.stderr == (
        f"error: cannot append the audit checkpoints to {target}: No such file or directory\n"
    )
    assert result.stdout == f"Wrote 0 audit checkpoints to {target}.\n"


_GOOD = {"team_id": "T1", "seq": 2, "mac": "a" * 64, "key_id": "k", "at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({**_GOOD, "seq": 0}), '"seq" is missing or not a number from 1'),
        (json.dumps({**_GOOD, "seq": "2"}), '"seq" is missing or not a number from 1'),
        (json.dumps({**_GOOD, "mac": "xyz"}), '"mac" is missing or not 64 hex digits'),
        (json.dumps({**_GOOD, "at": "yesterday"}), '"at" is missing or not an ISO 8601 time'),
        (json.dumps({**_GOOD, "team_id": None}), '"team_id" is missing or not a short string'),
    ],
)
async def test_a_bad_checkpoint_file_is_named_by_its_line(
    database, logged, run_cli, tmp_path, line, reason
):
    path = tmp_path / "checkpoints.jsonl"
    path.write_text(f"{json.dumps(_GOOD)}\n\n{line}\n")

    result = await run_cli("audit", "verify", "--checkpoints", str(path))

    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == f"error: {path}, line 3: not an audit checkpoint ({reason}).\n"


async def test_a_missing_checkpoint_file_is_named(database, logged, run_cli, tmp_path):
    result = await run_cli("audit", "verify", "--checkpoints", str(tmp_path / "nowhere.jsonl"))
    assert result.code == 1
    assert result.stderr == f"error: No such file or directory: {tmp_path / 'nowhere.jsonl'}\n"


async def test_a_head_that_does_not_match_its_hash_is_not_checkpointed(database, logged, run_cli):
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.team_id == DEFAULT_TEAM, AuditEvent.seq == 3)
            .values(actor="U0MALLORY")
        )

    result = await run_cli("audit", "checkpoint")

    assert result.code == 1
    assert "the workspace's last event does not match its hash; not checkpointed" in result.stderr
    assert DEFAULT_TEAM not in result.stdout and OTHER_TEAM in result.stdout


async def test_a_head_that_names_no_event_is_not_checkpointed(database, logged, run_cli):
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(Workspace).where(Workspace.team_id == DEFAULT_TEAM).values(audit_head_seq=9)
        )

    result = await run_cli("audit", "checkpoint")

    assert result.code == 1
    assert (
        f"error: workspace {DEFAULT_TEAM}, the chain: the workspace records event #9 as its "
        "last, but there is no such event; not checkpointed"
    ) in result.stderr
    assert [json.loads(line)["team_id"] for line in result.stdout.splitlines()] == [OTHER_TEAM]
