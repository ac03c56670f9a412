"""Each Slack user's own external id (`/push me`): kept per workspace and user, audited."""

import pytest

from storage import queries, workspaces
from storage.errors import InvalidInput
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM


async def _link(database, team_id, user_id, external_id):
    async with database.sessions.begin() as session:
        return await queries.set_linked_external_id(
            session=session, team_id=team_id, user_id=user_id, external_id=external_id
        )


async def _linked(database, team_id, user_id):
    async with database.sessions.begin() as session:
        return await queries.get_linked_external_id(
            session=session, team_id=team_id, user_id=user_id
        )


async def _actions(database, team_id):
    async with database.sessions.begin() as session:
        events = await queries.list_audit_events(session=session, team_id=team_id, limit=10)
    return [(e.action, e.target, e.details) for e in reversed(events)]


async def test_a_link_is_kept_per_workspace_and_user_and_replaced(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)

    assert await _link(database, DEFAULT_TEAM, "U0ALICE", " cust-4711 ") is True
    assert await _link(database, DEFAULT_TEAM, "U0ALICE", "cust-4711") is False  # unchanged
    assert await _link(database, DEFAULT_TEAM, "U0ALICE", "cust-4712") is True

    assert await _linked(database, DEFAULT_TEAM, "U0ALICE") == "cust-4712"
    assert await _linked(database, DEFAULT_TEAM, "U0BOB") is None
    assert await _linked(database, OTHER_TEAM, "U0ALICE") is None  # tenancy
    assert await _actions(database, DEFAULT_TEAM) == [
        ("user.linked", "U0ALICE", {"external_id": "cust-4711", "previous": None}),
        ("user.linked", "U0ALICE", {"external_id": "cust-4712", "previous": "cust-4711"}),
    ]


async def test_unlinking_forgets_the_link(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    await _link(database, DEFAULT_TEAM, "U0ALICE", "cust-4711")

    async with database.sessions.begin() as session:
        assert await queries.unlink_external_id(
            session=session, team_id=DEFAULT_TEAM, user_id="U0ALICE"
        )
        assert not await queries.unlink_external_id(
            session=session, team_id=DEFAULT_TEAM, user_id="U0ALICE"
        )

    assert await _linked(database, DEFAULT_TEAM, "U0ALICE") is None
    assert (await _actions(database, DEFAULT_TEAM))[-1][0] == "user.unlinked"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty"),
        ("two words", "no spaces"),
        ("tab\there", "no spaces"),
        ("x" * 129, "129 characters long; the limit is 128"),
    ],
)
async def test_an_unusable_external_id_is_refused_and_nothing_is_written(
    given, message, sqlite_database
):
    async with sqlite_database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=DEFAULT_TEAM)

    with pytest.raises(InvalidInput, match=message):
        await _link(sqlite_database, DEFAULT_TEAM, "U0ALICE", given)

    assert await _linked(sqlite_database, DEFAULT_TEAM, "U0ALICE") is None
    assert await _actions(sqlite_database, DEFAULT_TEAM) == []
