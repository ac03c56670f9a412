"""`/push user` lookups in the audit log: who, which external id, which app; the chain holds."""

from storage import lookups, queries
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM


async def test_a_lookup_is_chained_into_its_workspaces_audit_log(database, storage_factory):
    await storage_factory.workspace(DEFAULT_TEAM)
    await storage_factory.workspace(OTHER_TEAM)

    async with database.sessions.begin() as session:
        await lookups.record_user_lookup(
            session=session,
            team_id=DEFAULT_TEAM,
            actor="U0SUPPORT",
            external_id="cust-4711",
            app_name="main",
            outcome="not_found",
        )
    async with database.sessions() as session:
        [event] = await queries.list_audit_events(session=session, team_id=DEFAULT_TEAM)
        elsewhere = await queries.list_audit_events(session=session, team_id=OTHER_TEAM)
        report = await queries.verify_audit_chain(session=session)

    assert (event.action, event.actor, event.target) == ("user.lookup", "U0SUPPORT", "cust-4711")
    assert (event.outcome, event.details) == ("not_found", {"app": "main"})
    assert elsewhere == [] and report.ok
