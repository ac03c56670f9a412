"""Retention: finished sends older than a cut-off are deleted, with their rows elsewhere.

Only sends that are over for good are deleted (sent, failed, cancelled, rejected, expired),
never one still scheduled, sending, waiting for approval, a draft or a missed send its
requester may still send, and never one whose Slack message is still owed (an outbox row
pending). Their approvals, notification ids and delivered outbox rows go with them.

The audit log is kept whole: its events name sends by id, and deleting any would break the
chain (docs/audit.md). Each deletion writes one `sends.pruned` event per workspace, in the
same transaction. Work is done in chunks, each its own short transaction, so a prune of a
year of sends never holds a lock for long; rows are locked (PostgreSQL) before the dependent
rows go, so a send that changed state meanwhile is left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import append_audit
from storage.errors import WorkspaceNotFound
from storage.models import (
    Approval,
    OutboxMessage,
    OutboxState,
    Send,
    SendNotification,
    SendState,
    Workspace,
)

__all__ = ["FINISHED_STATES", "PruneReport", "prune_sends"]

FINISHED_STATES: Final = frozenset(
    {SendState.SENT, SendState.FAILED, SendState.CANCELLED, SendState.REJECTED, SendState.EXPIRED}
)
"""States a send is over in: what a prune may delete."""

PRUNE_ACTION: Final = "sends.pruned"
_CHUNK: Final = 2_000


@dataclass
class PruneReport:
    """What a prune deleted (or, dry, would delete): sends by workspace."""

    before: datetime
    dry_run: bool
    by_team: dict[str, int] = field(default_factory=dict)

    @property
    def sends(self) -> int:
        """How many sends in all."""
        return sum(self.by_team.values())


async def prune_sends(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    before: datetime,
    actor: str,
    team_id: str | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Delete the finished sends that ended before `before` (of `team_id`, or of every
    workspace); with `dry_run`, only count them. Raises `WorkspaceNotFound` for an unknown
    `team_id`."""
    report = PruneReport(before, dry_run)
    for team in await _teams(session_factory, team_id):
        if dry_run:
            async with session_factory() as session:
                found = await session.scalar(sa.select(sa.func.count()).where(*_due(team, before)))
        else:
            found = await _prune_team(session_factory, team, before, actor)
        if found:
            report.by_team[team] = int(found or 0)
    return report


async def _teams(factory: async_sessionmaker[AsyncSession], team_id: str | None) -> list[str]:
    async with factory() as session:
        query = sa.select(Workspace.team_id).order_by(Workspace.team_id)
        if team_id is not None:
            query = query.where(Workspace.team_id == team_id)
        teams = list(await session.scalars(query))
    if team_id is not None and not teams:
        raise WorkspaceNotFound(team_id)
    return teams


def _due(team_id: str, before: datetime) -> list[sa.ColumnElement[bool]]:
    """The conditions of a send of `team_id` that a prune deletes."""
    owed = sa.exists().where(
        OutboxMessage.send_id == Send.id, OutboxMessage.state == OutboxState.PENDING
    )
    ended = sa.func.coalesce(Send.finished_at, Send.updated_at)
    return [
        Send.team_id == team_id,
        Send.state.in_(sorted(FINISHED_STATES)),
        ended < before,
        ~owed,
    ]


async def _prune_team(
    factory: async_sessionmaker[AsyncSession], team_id: str, before: datetime, actor: str
) -> int:
    deleted = 0
    while True:
        async with factory.begin() as session:
            ids = await _lock_chunk(session, team_id, before)
            if not ids:
                return deleted
            await _delete(session, ids)
            await append_audit(
                session=session,
                team_id=team_id,
                actor=actor,
                action=PRUNE_ACTION,
                target=f"{len(ids)} sends",
                details={"sends": len(ids), "ended_before": before.isoformat()},
            )
        deleted += len(ids)


async def _lock_chunk(session: AsyncSession, team_id: str, before: datetime) -> list[uuid.UUID]:
    query = sa.select(Send.id).where(*_due(team_id, before)).order_by(Send.id).limit(_CHUNK)
    # Locked, so a sent send cancelled (or a failed one sent again) meanwhile is not deleted.
    return list(await session.scalars(query.with_for_update(skip_locked=True, of=Send)))


async def _delete(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    for table, column in (
        (Approval, Approval.send_id),
        (SendNotification, SendNotification.send_id),
        (OutboxMessage, OutboxMessage.send_id),
    ):
        await session.execute(sa.delete(table).where(column.in_(ids)))
    await session.execute(sa.delete(Send).where(Send.id.in_(ids)))
