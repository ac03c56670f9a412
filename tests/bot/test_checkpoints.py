"""The checkpoint publisher that `serve` and `worker` run: anchoring at start, a round every
interval with what moved, sinks that fail without stopping the others."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.checkpoints import CheckpointPublisher, CheckpointSinkError, FileSink
from bot.services import Services, build_services
from bot.settings import Settings
from storage import queries
from storage.audit_chain import Checkpoint
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import AuditEvent
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM


async def _log(database: Database, team_id: str, count: int = 1) -> None:
    async with database.sessions.begin() as session:
        for _ in range(count):
            await queries.append_audit(
                session=session, team_id=team_id, actor="U0ALICE", action="test.event"
            )


def _lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [
        (line["team_id"], line["seq"]) for line in map(json.loads, path.read_text().splitlines())
    ]


async def _wait_for_lines(path: Path, count: int, seconds: float = 10.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + seconds
    while len(found := _lines(path)) < count:
        assert time.monotonic() < deadline, f"only {found} in {path}"
        await asyncio.sleep(0.01)
    return found


class Recording:
    """A sink that keeps what it got, and can be told to refuse."""

    def __init__(self) -> None:
        self.got: list[list[Checkpoint]] = []
        self.refuse: set[str] = set()  # teams it does not take care of
        self.broken = False

    async def publish(self, checkpoints: Sequence[Checkpoint]) -> Sequence[Checkpoint]:
        if self.broken:
            raise CheckpointSinkError("the sink is broken")
        self.got.append(list(checkpoints))
        return [c for c in checkpoints if c.team_id not in self.refuse]


@pytest.fixture
async def two_workspaces(database, storage_factory) -> None:
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)
    await _log(database, DEFAULT_TEAM, 2)
    await _log(database, OTHER_TEAM)


def _publisher(database: Database, *sinks: Any) -> CheckpointPublisher:
    assert database.audit_keys is not None
    return CheckpointPublisher(
        database=database, keys=database.audit_keys, actor="worker:w1", interval=3600, sinks=sinks
    )


async def test_each_sink_gets_only_the_heads_that_moved_since_it_last_took_them(
    database, two_workspaces
):
    steady, choosy = Recording(), Recording()
    choosy.refuse = {OTHER_TEAM}  # e.g. Slack refused that workspace's post
    publisher = _publisher(database, steady, choosy)

    await publisher.publish(changed_only=True)
    await publisher.publish(changed_only=True)
    await _log(database, DEFAULT_TEAM)
    await publisher.publish(changed_only=True)
    everything = await publisher.publish()

    def seen(sink: Recording) -> list[list[tuple[str, int]]]:
        return [[(c.team_id, c.seq) for c in batch] for batch in sink.got]

    assert seen(steady) == [
        [(OTHER_TEAM, 1), (DEFAULT_TEAM, 2)],
        [(DEFAULT_TEAM, 3)],
        [(OTHER_TEAM, 1), (DEFAULT_TEAM, 3)],  # publish() without changed_only: every head
    ]
    assert seen(choosy) == [
        [(OTHER_TEAM, 1), (DEFAULT_TEAM, 2)],
        [(OTHER_TEAM, 1)],  # offered again until taken
        [(OTHER_TEAM, 1), (DEFAULT_TEAM, 3)],
        [(OTHER_TEAM, 1), (DEFAULT_TEAM, 3)],
    ]
    assert [(c.team_id, c.seq) for c in everything.checkpoints] == [
        (OTHER_TEAM, 1),
        (DEFAULT_TEAM, 3),
    ]


async def test_a_broken_sink_is_logged_and_the_others_still_get_the_checkpoints(
    database, two_workspaces, caplog
):
    broken, working = Recording(), Recording()
    broken.broken = True

    report = await _publisher(database, broken, working).publish()

    assert report.failures == ["the sink is broken"]
    assert len(working.got) == 1
    assert "audit checkpoints not kept: the sink is broken" in caplog.text


async def test_a_head_that_does_not_verify_is_logged_not_published(
    database, two_workspaces, caplog
):
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(AuditEvent)
            .where(AuditEvent.team_id == DEFAULT_TEAM, AuditEvent.seq == 2)
            .values(mac="0" * 64)
        )
    sink = Recording()

    report = await _publisher(database, sink).publish()

    assert [c.team_id for c in sink.got[0]] == [OTHER_TEAM]
    assert [problem.team_id for problem in report.problems] == [DEFAULT_TEAM]
    assert (
        f"no audit checkpoint for workspace {DEFAULT_TEAM}, event #2 (" in caplog.text
        and "the workspace's last event has a MAC that does not match; not checkpointed"
        in caplog.text
    )


def _services(
    database: Database, keyring: KeyRing, tmp_path: Path, actor: str | None = None, **settings: Any
) -> Services:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "audit_checkpoints": str(tmp_path / "checkpoints.jsonl"),
        "audit_checkpoint_interval": 0.05,
    }
    values.update(settings)
    config = Settings(_env_file=None, **values)
    return build_services(config, database=database, keyring=keyring, checkpoint_actor=actor)


async def test_the_services_anchor_at_start_and_append_what_moved_every_interval(
    database, keyring, two_workspaces, tmp_path
):
    async with database.engine.begin() as connection:  # the log as an older release left it
        await connection.execute(sa.update(AuditEvent).values(mac=None, mac_key_id=None))
    services = _services(database, keyring, tmp_path, actor="worker:w1")
    publisher = services.checkpoints
    assert publisher is not None
    path = tmp_path / "checkpoints.jsonl"

    await services.start()
    try:
        first = await _wait_for_lines(path, 2)
        await _log(database, DEFAULT_TEAM)
        second = await _wait_for_lines(path, 3)
        await _log(database, OTHER_TEAM, 2)
        third = await _wait_for_lines(path, 4)
    finally:
        await services.aclose()

    # anchored: each chain got an `audit.keyed` event, and its checkpoints are of the keyed head
    assert first == [(OTHER_TEAM, 2), (DEFAULT_TEAM, 3)]
    assert second[2:] == [(DEFAULT_TEAM, 4)]
    assert third[3:] == [(OTHER_TEAM, 4)]
    assert isinstance(publisher.sinks[0], FileSink)
    async with database.sessions() as session:
        report = await queries.verify_audit_chain(
            session=session, checkpoints=map(Checkpoint.parse, path.read_text().splitlines())
        )
        keyed = await session.scalars(
            sa.select(AuditEvent.actor).where(AuditEvent.action == "audit.keyed")
        )
        assert list(keyed) == ["worker:w1", "worker:w1"]
    assert report.ok and report.checkpoints == 4


async def test_a_file_that_cannot_be_written_does_not_stop_the_rounds(
    database, keyring, two_workspaces, tmp_path, caplog
):
    target = tmp_path / "not-yet" / "checkpoints.jsonl"
    services = _services(database, keyring, tmp_path, audit_checkpoints=str(target))

    await services.start()
    try:
        deadline = time.monotonic() + 10
        while "audit checkpoints not kept" not in caplog.text:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        target.parent.mkdir()  # the operator fixes it; the next round writes
        lines = await _wait_for_lines(target, 2)
    finally:
        await services.aclose()

    assert lines == [(OTHER_TEAM, 1), (DEFAULT_TEAM, 2)]
    assert f"cannot append the audit checkpoints to {target}: No such file or directory" in (
        caplog.text
    )
