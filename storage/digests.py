"""Digests in the Slack outbox: many owed messages about sends, told in one.

When the outbox is behind, messages of one purpose pile up for one destination: the
requester's news of each send that went out, the log channel's final state of each send.
`coalesce` takes those still waiting (pending, not being sent, named in no digest yet) and,
in one transaction, owes one digest row in their place: a DM so told is done without being
sent; a log message stays owed (each send's own message is still brought to its final state)
and is named in no later digest. Which rows make a digest, and what it says, is the caller's
(`bot.digest`); storage only reads, writes and locks. Same conventions as `storage.outbox`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import OutboxKind, OutboxMessage, OutboxState
from storage.outbox import OutboxEntry, enqueue

__all__ = ["Piled", "Waiting", "coalesce", "last_digest_at", "piles"]

DIGEST = "digest"
"""The purpose of a digest row."""


@dataclass(frozen=True)
class Piled:
    """Messages of one purpose waiting for one destination: how many, since when."""

    team_id: str
    destination: str
    count: int
    oldest: datetime


@dataclass(frozen=True)
class Waiting:
    """One waiting message, as a digest names it: its row and the facts of its send."""

    id: uuid.UUID
    send_id: uuid.UUID | None
    facts: dict[str, Any]


def _waiting(kind: OutboxKind, purpose: str, now: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        OutboxMessage.state == OutboxState.PENDING,
        OutboxMessage.kind == kind,
        OutboxMessage.purpose == purpose,
        OutboxMessage.digest.is_(None),
        sa.or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
    ]


async def piles(
    *, session: AsyncSession, kind: OutboxKind, purpose: str, minimum: int, now: datetime
) -> list[Piled]:
    """Destinations with at least `minimum` messages of `purpose` waiting, oldest first."""
    query = (
        sa.select(
            OutboxMessage.team_id,
            OutboxMessage.destination,
            sa.func.count(),
            sa.func.min(OutboxMessage.created_at),
        )
        .where(*_waiting(kind, purpose, now))
        .group_by(OutboxMessage.team_id, OutboxMessage.destination)
        .having(sa.func.count() >= minimum)
    )
    rows = (await session.execute(query)).all()
    found = [Piled(team, destination, count, oldest) for team, destination, count, oldest in rows]
    return sorted(found, key=lambda pile: pile.oldest)


async def last_digest_at(
    *, session: AsyncSession, team_id: str, destination: str
) -> datetime | None:
    """When the latest digest to `destination` was owed, if one was."""
    query = sa.select(sa.func.max(OutboxMessage.created_at)).where(
        OutboxMessage.team_id == team_id,
        OutboxMessage.destination == destination,
        OutboxMessage.purpose == DIGEST,
    )
    found: datetime | None = await session.scalar(query)
    return found


async def coalesce(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    team_id: str,
    destination: str,
    kind: OutboxKind,
    purpose: str,
    now: datetime,
    digest: Callable[[Sequence[Waiting]], tuple[OutboxEntry, Sequence[Waiting]] | None],
    supersede: bool,
) -> int:
    """Owe one digest in place of the messages of `purpose` waiting for `destination`.

    `digest` is shown every such message (with its send's facts) and answers the digest row
    to owe and the messages it tells, or None for no digest. Those messages are marked with
    the digest's key; with `supersede` they are done too (a DM told by the digest). On
    PostgreSQL the messages are locked `FOR UPDATE SKIP LOCKED`, so a drainer claiming one
    meanwhile keeps it out of the digest. How many messages the digest tells (0 for none).
    """
    conditions = [
        OutboxMessage.team_id == team_id,
        OutboxMessage.destination == destination,
        *_waiting(kind, purpose, now),
    ]
    try:
        async with session_factory() as session, session.begin():
            query = (
                sa.select(OutboxMessage.id, OutboxMessage.send_id, OutboxMessage.payload["facts"])
                .where(*conditions)
                .order_by(OutboxMessage.created_at, OutboxMessage.id)
                .with_for_update(skip_locked=True)
            )
            waiting = [
                Waiting(row_id, send_id, facts if isinstance(facts, dict) else {})
                for row_id, send_id, facts in (await session.execute(query)).all()
            ]
            made = digest(waiting) if waiting else None
            if made is None:
                return 0
            entry, told = made
            values: dict[str, Any] = {"digest": entry.key, "updated_at": now}
            if supersede:
                values.update(state=OutboxState.DONE, leased_by=None, lease_until=None)
            ids = {item.id for item in told}
            marked = await session.scalars(
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), *conditions)
                .values(values)
                .returning(OutboxMessage.id)
            )
            if set(marked) != ids:  # a drainer took one meanwhile (SQLite locks no rows)
                raise _Moved
            await enqueue(session=session, entries=[entry], replace=False)
    except _Moved:
        return 0
    return len(ids)


class _Moved(Exception):
    """A message chosen for a digest was claimed before it was marked: no digest this time."""
