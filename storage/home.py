"""What a person's Home tab reads: their own sends yet to go out, the sends waiting for their
approval, and the states of the sends a published Home shows (to know when to refresh it).

Every query is scoped by the workspace (`team_id`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Approval, Send, SendState

_DUE_ORDER = (sa.func.coalesce(Send.due_at, Send.created_at).asc(), Send.id)


async def count_sends(
    *,
    session: AsyncSession,
    team_id: str,
    states: Collection[SendState],
    requester_id: str | None = None,
) -> int:
    """How many of the workspace's sends are in `states` (of one requester, if given)."""
    query = sa.select(sa.func.count()).where(Send.team_id == team_id)
    query = query.where(Send.state.in_(list(states)))
    if requester_id is not None:
        query = query.where(Send.requester_id == requester_id)
    return int(await session.scalar(query) or 0)


def _awaiting(team_id: str, approver_id: str) -> sa.ColumnElement[bool]:
    """Pending sends someone else asked for, on which `approver_id` has not decided yet."""
    decided = sa.select(Approval.send_id).where(
        Approval.team_id == team_id, Approval.approver_id == approver_id
    )
    return sa.and_(
        Send.team_id == team_id,
        Send.state == SendState.PENDING_APPROVAL,
        Send.requester_id != approver_id,
        Send.id.not_in(decided),
    )


async def awaiting_approval(
    *, session: AsyncSession, team_id: str, approver_id: str, limit: int
) -> tuple[list[Send], int]:
    """(the first `limit` sends waiting for `approver_id`'s decision, soonest due first, how
    many there are in all)."""
    where = _awaiting(team_id, approver_id)
    rows = await session.scalars(sa.select(Send).where(where).order_by(*_DUE_ORDER).limit(limit))
    total = await session.scalar(sa.select(sa.func.count()).where(where))
    return list(rows), int(total or 0)


async def send_states(
    *, session: AsyncSession, team_id: str, send_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, SendState]:
    """The state of each of `send_ids` that is a send of this workspace."""
    if not send_ids:
        return {}
    query = sa.select(Send.id, Send.state).where(
        Send.team_id == team_id, Send.id.in_(list(send_ids))
    )
    return {send_id: state for send_id, state in (await session.execute(query)).tuples()}
