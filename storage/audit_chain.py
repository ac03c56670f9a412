"""Proving the audit log whole: verification, checkpoints of each head, and anchoring under a key.

`verify_audit_chain` walks each workspace's chain: numbers, links, hashes, and every MAC whose
key is at hand. An event's MAC covers its hash, which covers every event before it, so the
last event's MAC vouches for the whole chain, including events under a key since removed.

What a database writer can still do without the key is go back in time: cut the tail (and move
the head back), wipe a workspace, delete it, or restore an old backup; every state left is one
that really was. Checkpoints catch that. A `Checkpoint` is a workspace's head (team, sequence
number, MAC) published outside the database (a JSON line in a file, a message in the log
channel, see bot.checkpoints); `verify_audit_chain(checkpoints=...)` then proves the database
still extends each of them.

Events written before the chain was keyed carry no MAC. They stay verified by their hashes, and
the first keyed event after them anchors them; `anchor_audit_chains` appends such an event
(`audit.keyed`) to every chain that ends unkeyed, and, after a key rotation, one under the new
key (`audit.rekeyed`) to every chain that ends under an old one. An unkeyed event after a keyed
one is always a break. See docs/audit.md for what this guarantees and what it does not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import (
    AuditKeys,
    AuditRow,
    append_audit,
    content_holds,
    event_hash,
    iter_audit_pages,
    session_audit_keys,
)
from storage.models import GENESIS_HASH, AuditEvent, Workspace, utcnow

KEYED_ACTION: Final = "audit.keyed"
"""The event that anchors a chain written before the audit key (it carries no MAC)."""

REKEYED_ACTION: Final = "audit.rekeyed"
"""The event that anchors a chain under the first key after a rotation."""

_HEX: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ChainBreak:
    """The first place where a workspace's chain does not hold."""

    team_id: str
    seq: int | None
    event_id: uuid.UUID | None
    reason: str

    def __str__(self) -> str:
        where = f"event #{self.seq} ({self.event_id})" if self.seq is not None else "the chain"
        return f"workspace {self.team_id}, {where}: {self.reason}"


@dataclass
class ChainReport:
    """What `verify_audit_chain` found: counts, and the first break per workspace."""

    workspaces: int = 0
    events: int = 0
    checkpoints: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every chain holds (and extends every checkpoint given)."""
        return not self.breaks


@dataclass(frozen=True)
class Checkpoint:
    """A workspace's audit head as published outside the database: one JSON line.

    `log_channel_id` is where the workspace's log goes, for a sink that posts there; it is not
    part of the line.
    """

    team_id: str
    seq: int
    mac: str
    key_id: str
    at: datetime
    log_channel_id: str | None = field(default=None, compare=False)

    def line(self) -> str:
        """The checkpoint as one line of JSON (no newline)."""
        at = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = {
            "at": at,
            "key_id": self.key_id,
            "mac": self.mac,
            "seq": self.seq,
            "team_id": self.team_id,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @property
    def when(self) -> str:
        """When it was taken, for messages."""
        return self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its line; `ValueError` saying what is wrong with it."""
        try:
            fields = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("not JSON") from None
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        return cls(
            team_id=_text_field(fields, "team_id"),
            seq=_seq_field(fields),
            mac=_mac_field(fields),
            key_id=_text_field(fields, "key_id"),
            at=_time_field(fields),
        )


def _text_field(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ValueError(f'"{name}" is missing or not a short string')
    return value


def _seq_field(fields: Mapping[str, Any]) -> int:
    value = fields.get("seq")
    if type(value) is not int or value < 1:
        raise ValueError('"seq" is missing or not a number from 1')
    return value


def _mac_field(fields: Mapping[str, Any]) -> str:
    value = fields.get("mac")
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise ValueError('"mac" is missing or not 64 hex digits')
    return value


def _time_field(fields: Mapping[str, Any]) -> datetime:
    value = fields.get("at")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError('"at" is missing or not an ISO 8601 time')
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- verification ---------------------------------------------------------------------------


async def verify_audit_chain(
    *,
    session: AsyncSession,
    keys: AuditKeys | None = None,
    team_id: str | None = None,
    checkpoints: Iterable[Checkpoint] = (),
) -> ChainReport:
    """Walk each workspace's chain; report the first break of each.

    A break is an edited, missing, reordered, renumbered or inserted event, a MAC that does
    not verify, an unkeyed event after keyed ones, a chain that ends unkeyed or under a key
    not in `keys` (by default the keys the session's database was opened with), and, against
    `checkpoints`: a chain that no longer reaches or no longer holds an event a checkpoint
    recorded, and a workspace gone that a checkpoint names.
    """
    keys = keys or session_audit_keys(session)
    marks = _by_team(checkpoints, team_id)
    query = sa.select(Workspace.team_id, Workspace.audit_head_seq, Workspace.audit_head_hash)
    if team_id is not None:
        query = query.where(Workspace.team_id == team_id)
    report = ChainReport(checkpoints=sum(map(len, (m for s in marks.values() for m in s.values()))))
    for team, head_seq, head_hash in (
        await session.execute(query.order_by(Workspace.team_id))
    ).all():
        report.workspaces += 1
        walk = _Walk(team, keys, marks.pop(team, {}))
        problem = await _walk_workspace(session, walk, (head_seq, head_hash))
        report.events += walk.events
        if problem is not None:
            report.breaks.append(problem)
    for team, seqs in sorted(marks.items()):  # named by a checkpoint, gone from the database
        latest = seqs[max(seqs)][-1]
        report.breaks.append(
            ChainBreak(
                team,
                None,
                None,
                f"the workspace is gone from the database, but the checkpoint of {latest.when} "
                f"recorded its event #{latest.seq} (the workspace was deleted)",
            )
        )
    return report


def _by_team(
    checkpoints: Iterable[Checkpoint], team_id: str | None
) -> dict[str, dict[int, list[Checkpoint]]]:
    marks: dict[str, dict[int, list[Checkpoint]]] = {}
    for mark in checkpoints:
        if team_id is None or mark.team_id == team_id:
            marks.setdefault(mark.team_id, {}).setdefault(mark.seq, []).append(mark)
    return marks


async def _walk_workspace(
    session: AsyncSession, walk: _Walk, head: tuple[int, str]
) -> ChainBreak | None:
    step = walk.step
    async with aclosing(iter_audit_pages(session=session, team_id=walk.team_id)) as pages:
        async for page in pages:
            for row in page:
                problem = step(row)
                if problem is not None:
                    return ChainBreak(walk.team_id, row[2], uuid.UUID(str(row[0])), problem)
    problem = walk.end(head)
    return None if problem is None else ChainBreak(walk.team_id, None, None, problem)


@dataclass
class _Walk:
    """One workspace's chain, event by event, oldest first."""

    team_id: str
    keys: AuditKeys
    marks: dict[int, list[Checkpoint]]
    events: int = 0
    seq: int = 0
    prev_hash: str = GENESIS_HASH
    first_keyed: int | None = None
    last_key: str | None = None  # the key of the last event's MAC; None: it has no MAC
    last_checked: bool = False  # whether that key was at hand (then the MAC verified)

    def step(self, row: AuditRow) -> str | None:
        """Take the next event; what is wrong with it, or None."""
        self.events += 1
        seq, prev, digest, mac, key_id = row[2], row[9], row[10], row[11], row[12]
        expected = self.seq + 1
        if seq != expected:
            return f"event #{expected} is missing before it (removed)"
        if prev != self.prev_hash:
            return "it does not follow the event before it (an event was removed, added or moved)"
        if not content_holds(row):
            return "its content does not match its hash (edited or moved)"
        problem = self._check_mac(seq, digest, mac, key_id) or self._check_marks(seq, mac)
        if problem is None:
            self.seq, self.prev_hash = seq, digest
        return problem

    def _check_mac(self, seq: int, digest: str, mac: str | None, key_id: str | None) -> str | None:
        if mac is None:
            if self.first_keyed is not None:
                return (
                    f"it carries no MAC, though event #{self.first_keyed} before it does "
                    "(written or rewritten without the audit key)"
                )
            self.last_key, self.last_checked = None, False
            return None
        verdict = self.keys.check(key_id, digest, mac)
        if verdict is False:
            return "its MAC does not match (written or rewritten without the audit key)"
        if self.first_keyed is None:
            self.first_keyed = seq
        self.last_key, self.last_checked = key_id or "?", verdict is True
        return None

    def _check_marks(self, seq: int, mac: str | None) -> str | None:
        for mark in self.marks.get(seq, ()) if self.marks else ():
            if mark.mac != mac:
                return (
                    f"it is not the event the checkpoint of {mark.when} recorded (the log was "
                    "rewritten from here on, or rolled back and written again)"
                )
        return None

    def end(self, head: tuple[int, str]) -> str | None:
        """After the last event: what is wrong with the chain as a whole, or None."""
        return self._short_of_marks() or self._off_head(head) or self._unanchored()

    def _short_of_marks(self) -> str | None:
        if not self.marks or max(self.marks) <= self.seq:
            return None
        latest = self.marks[max(self.marks)][-1]
        if self.seq == 0:
            return (
                f"it has no audit events, but the checkpoint of {latest.when} recorded its "
                f"event #{latest.seq} (its log was wiped)"
            )
        return (
            f"the chain ends at event #{self.seq}, but the checkpoint of {latest.when} recorded "
            f"event #{latest.seq} (events were removed from the end, or the database was rolled "
            "back)"
        )

    def _off_head(self, head: tuple[int, str]) -> str | None:
        if (self.seq, self.prev_hash) == head:
            return None
        return (
            f"the chain ends at event #{self.seq} but the workspace records #{head[0]} as its "
            "last (events were removed from the end, or the record was altered)"
        )

    def _unanchored(self) -> str | None:
        if self.seq == 0 or self.last_checked:
            return None
        if self.last_key is None:
            return (
                f"its last event #{self.seq} carries no MAC, so the chain is not anchored by the "
                "audit key (written before it, or its MACs were removed); PushOps anchors such a "
                "chain when it starts, and so does `pushops audit checkpoint`"
            )
        return (
            f"its last event #{self.seq} has its MAC from key {self.last_key}, which is not in "
            f"PUSHOPS_SECRET_KEY (keys present: {', '.join(self.keys.key_ids)}); add that key "
            "back to verify the chain"
        )


# --- checkpoints ----------------------------------------------------------------------------


_AT_HEAD: Final = sa.and_(
    AuditEvent.team_id == Workspace.team_id, AuditEvent.seq == Workspace.audit_head_seq
)
# Every workspace with events, and the event its head names (None when there is no such event).
_HEADS: Final = (
    sa.select(Workspace.team_id, Workspace.log_channel_id, Workspace.audit_head_seq, AuditEvent)
    .outerjoin(AuditEvent, _AT_HEAD)
    .where(Workspace.audit_head_seq > 0)
    .order_by(Workspace.team_id)
)


async def audit_checkpoints(
    *, session: AsyncSession, keys: AuditKeys, team_id: str | None = None
) -> tuple[list[Checkpoint], list[ChainBreak]]:
    """Each workspace's head as a checkpoint, and the heads that do not verify (left out).

    A head is checkpointed only when its event matches its hash and its MAC verifies under
    `keys`: a checkpoint vouches for what it records. Workspaces without events have none.
    """
    query = _HEADS if team_id is None else _HEADS.where(Workspace.team_id == team_id)
    now = utcnow()
    checkpoints: list[Checkpoint] = []
    problems: list[ChainBreak] = []
    for team, channel, head_seq, event in (await session.execute(query)).all():
        if event is None:
            reason = f"the workspace records event #{head_seq} as its last, but there is no such "
            problems.append(ChainBreak(team, None, None, reason + "event; not checkpointed"))
            continue
        problem = _head_problem(event, keys)
        if problem is not None:
            problems.append(ChainBreak(team, event.seq, event.id, problem))
            continue
        assert event.mac is not None and event.mac_key_id is not None
        checkpoints.append(
            Checkpoint(team, event.seq, event.mac, event.mac_key_id, now, log_channel_id=channel)
        )
    return checkpoints, problems


def _head_problem(event: AuditEvent, keys: AuditKeys) -> str | None:
    if event_hash(event.prev_hash, event) != event.hash:
        return "the workspace's last event does not match its hash; not checkpointed"
    if event.mac is None:
        return "the workspace's last event carries no MAC; not checkpointed"
    verdict = keys.check(event.mac_key_id, event.hash, event.mac)
    if verdict is None:
        return (
            f"the workspace's last event has its MAC from key {event.mac_key_id}, which is not "
            "in PUSHOPS_SECRET_KEY; not checkpointed"
        )
    if not verdict:
        return "the workspace's last event has a MAC that does not match; not checkpointed"
    return None


# --- anchoring ------------------------------------------------------------------------------


@dataclass
class AnchorReport:
    """What `anchor_audit_chains` did: the workspaces anchored, and why others were not."""

    anchored: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def anchor_audit_chains(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    keys: AuditKeys,
    actor: str,
    rekey: bool = False,
) -> AnchorReport:
    """Give every chain that ends unkeyed (or, with `rekey`, under an old key) a keyed event.

    The appended event's MAC, under the first key, anchors everything before it. A chain is
    anchored only if its end is what it should be: unkeyed events only (never an unkeyed
    event after keyed ones), or a last MAC that verifies under its old key. Each workspace is
    its own short transaction, safe while PushOps runs.
    """
    report = AnchorReport()
    for team in await _unanchored_teams(session_factory, keys, rekey):
        async with session_factory() as session, session.begin():
            problem = await _anchor(session, team, keys, actor, rekey)
        if problem is None:
            report.anchored.append(team)
        elif problem:
            report.failures.append(f"workspace {team}: {problem}")
    return report


async def _unanchored_teams(
    session_factory: async_sessionmaker[AsyncSession], keys: AuditKeys, rekey: bool
) -> list[str]:
    unkeyed: sa.ColumnElement[bool] = AuditEvent.mac.is_(None)
    if rekey:
        unkeyed = sa.or_(unkeyed, AuditEvent.mac_key_id != keys.primary_key_id)
    query = sa.select(Workspace.team_id).join(AuditEvent, _AT_HEAD).where(unkeyed)
    async with session_factory() as session:
        return list(await session.scalars(query))


async def _anchor(
    session: AsyncSession, team: str, keys: AuditKeys, actor: str, rekey: bool
) -> str | None:
    """Anchor one chain; None when done, "" when there was nothing to do, else why not."""
    head_seq = await session.scalar(
        sa.select(Workspace.audit_head_seq).where(Workspace.team_id == team).with_for_update()
    )
    event = await session.scalar(
        sa.select(AuditEvent).where(AuditEvent.team_id == team, AuditEvent.seq == head_seq)
    )
    if event is None or event.mac_key_id == keys.primary_key_id:
        return ""  # emptied, or anchored meanwhile by another process
    if event.mac is None:
        anchor = await _carry_over(session, event)
    else:
        anchor = _rekeyed(event, keys) if rekey else ""
    if isinstance(anchor, str):
        return anchor
    action, details = anchor
    await append_audit(
        session=session,
        team_id=team,
        actor=actor,
        action=action,
        target=f"event #{event.seq}",
        details=details,
    )
    return None


_Anchor = tuple[str, dict[str, Any]]
"""The action and details of an anchoring event."""


async def _carry_over(session: AsyncSession, event: AuditEvent) -> _Anchor | str:
    """`audit.keyed` after a chain written before the key; why not when keyed events exist."""
    keyed = await session.scalar(
        sa.select(AuditEvent.seq)
        .where(AuditEvent.team_id == event.team_id, AuditEvent.mac.is_not(None))
        .limit(1)
    )
    if keyed is not None:
        return (
            f"its last event #{event.seq} carries no MAC though event #{keyed} does; not "
            "anchored, see `pushops audit verify`"
        )
    return KEYED_ACTION, {"unkeyed_events": event.seq}


def _rekeyed(event: AuditEvent, keys: AuditKeys) -> _Anchor | str:
    """`audit.rekeyed` after a chain ending under an old key; why not when it cannot be checked."""
    assert event.mac is not None
    verdict = keys.check(event.mac_key_id, event.hash, event.mac)
    if verdict is None:
        return (
            f"its last event #{event.seq} has its MAC from key {event.mac_key_id}, which is not "
            "in PUSHOPS_SECRET_KEY; put it back (PUSHOPS_SECRET_KEY=new,old) and run again"
        )
    if not verdict or event_hash(event.prev_hash, event) != event.hash:
        return f"its last event #{event.seq} does not verify; see `pushops audit verify`"
    return REKEYED_ACTION, {"from_key_id": event.mac_key_id, "to_key_id": keys.primary_key_id}
