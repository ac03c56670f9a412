"""Audit checkpoints published outside the database, at intervals and on demand.

A checkpoint is a workspace's audit head (team, sequence number, MAC; storage.audit_chain).
Kept where the database's writers cannot reach, checkpoints let `pushops audit verify
--checkpoints FILE` prove that the database still extends them: that nobody rolled the log
back, cut its end or deleted a workspace. `CheckpointPublisher` takes them and hands them to
its sinks: `FileSink` appends JSON lines to PUSHOPS_AUDIT_CHECKPOINTS (fsynced) or writes them
to standard output (`-`); the Slack side adds a sink posting to each workspace's log channel.

`serve` and `worker` run one publisher each (made by `bot.services.build_services`): at start
it anchors every chain written before the audit key, then every
PUSHOPS_AUDIT_CHECKPOINT_INTERVAL seconds it publishes the heads that changed since it last
gave them to each sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from sqlalchemy.exc import SQLAlchemyError

from storage.audit import AuditKeys
from storage.audit_chain import (
    AnchorReport,
    ChainBreak,
    anchor_audit_chains,
    audit_checkpoints,
)
from storage.audit_chain import (
    Checkpoint as Checkpoint,  # what the sinks publish, for them to name
)
from storage.db import Database

log = logging.getLogger(__name__)

STDOUT: Final = "-"
"""PUSHOPS_AUDIT_CHECKPOINTS value for standard output."""


class CheckpointSinkError(Exception):
    """A sink could not keep the checkpoints; the message says where and why."""


class CheckpointSink(Protocol):
    """Somewhere checkpoints are kept, outside the database."""

    async def publish(self, checkpoints: Sequence[Checkpoint]) -> Sequence[Checkpoint]:
        """Keep `checkpoints`; those it took care of (the others are offered again next time).

        Raises CheckpointSinkError when it could keep none of them.
        """


class FileSink:
    """Checkpoints as JSON lines appended to a file and synced to disk, or on standard output."""

    def __init__(self, target: str) -> None:
        self.target = target

    @property
    def description(self) -> str:
        """Where the lines go, for messages."""
        return "standard output" if self.target == STDOUT else self.target

    async def publish(self, checkpoints: Sequence[Checkpoint]) -> Sequence[Checkpoint]:
        """Append one line per checkpoint (in one write), then fsync the file."""
        text = "".join(checkpoint.line() + "\n" for checkpoint in checkpoints)
        if self.target == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
            return checkpoints
        try:
            await asyncio.to_thread(_append_synced, self.target, text.encode("utf-8"))
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise CheckpointSinkError(
                f"cannot append the audit checkpoints to {self.target}: {reason}"
            ) from None
        return checkpoints


def _append_synced(path: str, data: bytes) -> None:
    # O_APPEND: processes appending to one file never overwrite each other's lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class PublishReport:
    """What one round of `CheckpointPublisher.publish` did."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[ChainBreak] = field(default_factory=list)  # heads left out: do not verify
    failures: list[str] = field(default_factory=list)  # sinks that could not keep them


@dataclass
class _Outlet:
    sink: CheckpointSink
    given: dict[str, tuple[int, str]] = field(default_factory=dict)  # team -> (seq, MAC)


class CheckpointPublisher:
    """Anchors unkeyed chains, takes each workspace's checkpoint, hands them to the sinks.

    Its timer (`start`/`stop`, a `Lifecycle`) publishes every `interval` seconds what changed
    since each sink last got it; `publish()` publishes every head at once.
    """

    def __init__(
        self,
        *,
        database: Database,
        keys: AuditKeys,
        actor: str,
        interval: float,
        sinks: Iterable[CheckpointSink] = (),
    ) -> None:
        self.database = database
        self.keys = keys
        self.actor = actor
        self.interval = interval
        self._outlets = [_Outlet(sink) for sink in sinks]
        self._timer: asyncio.Task[None] | None = None

    @property
    def sinks(self) -> tuple[CheckpointSink, ...]:
        """Where checkpoints go."""
        return tuple(outlet.sink for outlet in self._outlets)

    def add_sink(self, sink: CheckpointSink) -> None:
        """Also give checkpoints to `sink` (the Slack side adds its own)."""
        self._outlets.append(_Outlet(sink))

    async def anchor(self) -> AnchorReport:
        """Give every chain that ends without a MAC a keyed event (see storage.audit_chain)."""
        report = await anchor_audit_chains(
            session_factory=self.database.sessions, keys=self.keys, actor=self.actor
        )
        if report.anchored:
            log.info(
                "anchored the audit chains of %d workspace(s) written before the audit key",
                len(report.anchored),
            )
        for failure in report.failures:
            log.error("audit chain not anchored: %s", failure)
        return report

    async def publish(
        self, *, team_id: str | None = None, changed_only: bool = False
    ) -> PublishReport:
        """Take each workspace's checkpoint and hand it to every sink.

        With `changed_only`, a sink gets only the heads that moved since it last got them.
        A head that does not verify is left out and logged (`pushops audit verify` says more).
        """
        async with self.database.sessions() as session:
            checkpoints, problems = await audit_checkpoints(
                session=session, keys=self.keys, team_id=team_id
            )
        for problem in problems:
            log.error("no audit checkpoint for %s", problem)
        report = PublishReport(checkpoints, problems)
        for outlet in self._outlets:
            batch = [c for c in checkpoints if not changed_only or _moved(outlet, c)]
            if not batch:
                continue
            try:
                kept = await outlet.sink.publish(batch)
            except CheckpointSinkError as error:
                log.error("audit checkpoints not kept: %s", error)
                report.failures.append(str(error))
                continue
            outlet.given.update((c.team_id, (c.seq, c.mac)) for c in kept)
        return report

    async def start(self) -> None:
        """Anchor unkeyed chains, then publish every `interval` seconds."""
        if self._timer is not None:
            return
        try:
            await self.anchor()
        except SQLAlchemyError as error:
            log.warning("could not anchor the audit chains at start (%s)", type(error).__name__)
        self._timer = asyncio.get_running_loop().create_task(
            self._every_interval(), name="pushops-audit-checkpoints"
        )

    async def stop(self) -> None:
        """Stop the timer (a round in progress is cancelled; the next start publishes again)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.publish(changed_only=True)
            except SQLAlchemyError as error:
                log.warning("could not take the audit checkpoints (%s)", type(error).__name__)
            except Exception:  # broad: the timer must outlive any one round's failure
                log.exception("audit checkpoints failed; trying again in %g s", self.interval)


def _moved(outlet: _Outlet, checkpoint: Checkpoint) -> bool:
    return outlet.given.get(checkpoint.team_id) != (checkpoint.seq, checkpoint.mac)
