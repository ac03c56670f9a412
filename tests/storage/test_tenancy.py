"""docs/design.md invariant 6: one workspace cannot reach another's sends, apps or audit events."""

from __future__ import annotations

import pytest

from storage import queries, workspaces
from storage.errors import AppNotFound, NoSuchSend
from storage.models import Decision, SendState
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM


@pytest.fixture
async def theirs(storage_factory):
    """A send, its app and an audit event, all in OTHER_TEAM; DEFAULT_TEAM exists too."""
    await storage_factory.workspace(DEFAULT_TEAM)
    app = await storage_factory.app(OTHER_TEAM, name="theirs")
    send = await storage_factory.send(app, state=SendState.PENDING_APPROVAL)
    async with storage_factory.database.sessions() as session:
        event = (await queries.list_audit_events(session=session, team_id=OTHER_TEAM, limit=1))[0]
    return app, send, event


async def test_another_workspaces_send_cannot_be_read(database, theirs):
    _, send, _ = theirs
    async with database.sessions() as session:
        assert (
            await queries.get_send(session=session, team_id=DEFAULT_TEAM, send_id=send.id) is None
        )
        assert (
            await queries.find_send(session=session, team_id=DEFAULT_TEAM, ref=send.short_id)
            is None
        )
        assert await queries.list_sends(session=session, team_id=DEFAULT_TEAM) == []
        assert await queries.find_send(session=session, team_id=OTHER_TEAM, ref=send.short_id)


async def test_another_workspaces_send_cannot_be_cancelled_moved_or_approved(database, theirs):
    _, send, _ = theirs
    async with database.sessions.begin() as session:
        assert not await queries.cancel_send(
            session=session, team_id=DEFAULT_TEAM, send_id=send.id, actor="U0INTRUDER"
        )
        assert not await queries.transition_send(
            session=session,
            team_id=DEFAULT_TEAM,
            send_id=send.id,
            expected=SendState.PENDING_APPROVAL,
            new=SendState.SCHEDULED,
            actor="U0INTRUDER",
        )
        with pytest.raises(NoSuchSend):
            await queries.record_approval(
                session=session,
                team_id=DEFAULT_TEAM,
                send_id=send.id,
                approver_id="U0INTRUDER",
                decision=Decision.APPROVE,
            )
    async with database.sessions() as session:
        stored = await queries.get_send(session=session, team_id=OTHER_TEAM, send_id=send.id)
        intruder_events = await queries.list_audit_events(session=session, team_id=DEFAULT_TEAM)
    assert stored is not None
    assert stored.state == SendState.PENDING_APPROVAL and stored.approvals_received == 0
    assert stored.slack_messages == {}
    assert intruder_events == []


async def test_another_workspaces_app_cannot_be_read_used_or_removed(database, keyring, theirs):
    app, _, _ = theirs
    async with database.sessions.begin() as session:
        assert (
            await workspaces.get_app_by_id(session=session, team_id=DEFAULT_TEAM, app_ref=app.id)
            is None
        )
        assert (
            await workspaces.get_app(session=session, team_id=DEFAULT_TEAM, name="theirs") is None
        )
        assert await workspaces.get_app(session=session, team_id=DEFAULT_TEAM) is None
        assert await workspaces.list_apps(session=session, team_id=DEFAULT_TEAM) == []
        with pytest.raises(AppNotFound):
            await workspaces.get_app_credentials(
                session=session, keyring=keyring, team_id=DEFAULT_TEAM, app_ref=app.id
            )
        with pytest.raises(AppNotFound):
            await workspaces.remove_app(
                session=session, team_id=DEFAULT_TEAM, name="theirs", actor="U0X"
            )
        with pytest.raises(AppNotFound):
            await queries.create_send(
                session=session,
                team_id=DEFAULT_TEAM,
                requester_id="U0INTRUDER",
                app=app,
                content={"contents": {"en": "x"}},
                audience={"segments": ["All"]},
            )
    async with database.sessions() as session:
        assert await workspaces.get_app_by_id(session=session, team_id=OTHER_TEAM, app_ref=app.id)


async def test_another_workspaces_audit_event_cannot_be_read(database, theirs):
    _, _, event = theirs
    async with database.sessions() as session:
        assert (
            await queries.get_audit_event(session=session, team_id=DEFAULT_TEAM, event_id=event.id)
            is None
        )
        assert await queries.list_audit_events(session=session, team_id=DEFAULT_TEAM) == []
        mine = await queries.get_audit_event(session=session, team_id=OTHER_TEAM, event_id=event.id)
    assert mine is not None and mine.id == event.id
