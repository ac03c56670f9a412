"""What diagnostics read of the sends: the scheduler's state, the latest failures, each app's
last error, and the database server's version. Reads only; every query of tenant data takes
the team (None: every workspace, for the operator's command line only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Send, SendState

FAILED_STATES: tuple[SendState, ...] = (SendState.FAILED, SendState.MISSED)
"""The ends of a send that did not go out and were not stopped by a person."""


@dataclass(frozen=True)
class Lease:
    """Sends one process holds (`claimed_by`) and until when its latest claim lasts."""

    worker: str
    sends: int
    lease_until: datetime | None


@dataclass(frozen=True)
class SchedulerState:
    """Sends by state, the oldest due scheduled send, and who holds which."""

    counts: dict[str, int]
    oldest_due: datetime | None
    leases: list[Lease]


def _scoped(query: Any, team_id: str | None) -> Any:
    return query if team_id is None else query.where(Send.team_id == team_id)


async def scheduler_state(*, session: AsyncSession, team_id: str | None) -> SchedulerState:
    """The sends of `team_id` (every workspace's when None) as the scheduler sees them."""
    counted = _scoped(sa.select(Send.state, sa.func.count()).group_by(Send.state), team_id)
    counts = {str(state): int(n) for state, n in (await session.execute(counted)).all()}
    oldest = _scoped(
        sa.select(sa.func.min(Send.due_at)).where(Send.state == SendState.SCHEDULED), team_id
    )
    held = _scoped(
        sa.select(Send.claimed_by, sa.func.count(), sa.func.max(Send.lease_until))
        .where(Send.claimed_by.is_not(None))
        .group_by(Send.claimed_by)
        .order_by(Send.claimed_by),
        team_id,
    )
    leases = [Lease(str(w), int(n), until) for w, n, until in (await session.execute(held)).all()]
    return SchedulerState(counts, await session.scalar(oldest), leases)


async def recent_failures(
    *, session: AsyncSession, team_id: str | None, limit: int
) -> Sequence[Send]:
    """The latest `limit` sends that failed or were missed, newest first."""
    query = _scoped(
        sa.select(Send)
        .where(Send.state.in_(FAILED_STATES))
        .order_by(sa.func.coalesce(Send.finished_at, Send.created_at).desc())
        .limit(limit),
        team_id,
    )
    return list(await session.scalars(query))


async def last_app_errors(*, session: AsyncSession, team_id: str) -> dict[str, str]:
    """App name -> the error of its latest send that has one (what OneSignal last refused)."""
    query = (
        sa.select(Send.app_name, Send.last_error)
        .where(Send.team_id == team_id, Send.last_error.is_not(None))
        .order_by(sa.func.coalesce(Send.finished_at, Send.created_at).desc())
    )
    found: dict[str, str] = {}
    for name, error in (await session.execute(query)).all():
        found.setdefault(str(name), str(error))
    return found


async def server_version(*, session: AsyncSession) -> str:
    """The database server's name and version, as it reports them."""
    if session.bind.dialect.name == "sqlite":
        return f"SQLite {await session.scalar(sa.text('SELECT sqlite_version()'))}"
    return str(await session.scalar(sa.text("SELECT version()")))
