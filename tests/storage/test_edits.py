"""Editing an upcoming send races its claim for delivery: exactly one of them wins."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage import claims, edits, queries
from storage.errors import NotEditable
from storage.models import AuditEvent, SendState, utcnow


@pytest.mark.parametrize("round_", range(6))
async def test_an_edit_racing_the_claim_of_a_due_send_wins_alone_or_changes_nothing(
    database, storage_factory, round_
):
    app = await storage_factory.app()
    send = await storage_factory.send(
        app, due_at=utcnow() - timedelta(seconds=1), content={"message": "Old"}
    )
    other = database.another(pool_size=2, max_overflow=0)
    start = asyncio.Barrier(2)
    edit = edits.SendEdit(
        app=app,
        content={"message": "New"},
        audience=send.audience,
        options={},
        due_at=utcnow() + timedelta(hours=1),
    )

    async def editing() -> bool:
        await start.wait()
        try:
            async with database.sessions.begin() as session:
                await edits.edit_send(
                    session=session, team_id=app.team_id, send_id=send.id, edit=edit,
                    actor="U0EDITOR", approvals_required=0,
                )  # fmt: skip
        except NotEditable:
            return False
        return True

    async def claiming() -> bool:
        await start.wait()
        taken = await claims.claim_due_sends(
            session_factory=other.sessions, now=utcnow(), worker_id="w1", limit=1
        )
        return bool(taken)

    try:
        edited, claimed = await asyncio.gather(editing(), claiming())
    finally:
        await other.dispose()

    assert edited != claimed  # one of them, never both, never neither
    async with database.sessions() as session:
        stored = await queries.get_send(session=session, team_id=app.team_id, send_id=send.id)
        edited_events = await session.scalar(
            sa.select(sa.func.count()).where(AuditEvent.action == "send.edited")
        )
    assert stored is not None
    if edited:
        assert stored.state == SendState.SCHEDULED and stored.content == {"message": "New"}
        assert edited_events == 1
    else:
        assert stored.state == SendState.SENDING and stored.content == {"message": "Old"}
        assert edited_events == 0
