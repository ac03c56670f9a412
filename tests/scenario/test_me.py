"""`/push me`: each person links their own external id (the audience of `send --test`)."""

import pytest
import sqlalchemy as sa

from storage.models import AuditEvent, UserLink
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.workspace import onesignal_settings, serve_with_storage


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_with_storage(serve_pushops, settings, database, keyring) as running:
        yield running


async def _links(database):
    async with database.sessions() as session:
        rows = await session.scalars(sa.select(UserLink))
        return {(r.team_id, r.user_id): r.external_id for r in rows}


async def _link_events(database):
    async with database.sessions() as session:
        query = sa.select(AuditEvent.action).where(AuditEvent.action.like("user.%"))
        return list(await session.scalars(query))


async def test_me_sets_then_shows_the_link(app, fake_slack, database):
    before = await (await app.post_command("me")).reply()
    assert "You have no linked external id yet" in before["text"]

    linked = await (await app.post_command("me cust-4711")).reply()
    shown = await (await app.post_command("me", user="U0ALICE")).reply()
    other = await (await app.post_command("me", user="U0BOB")).reply()

    assert linked["response_type"] == "ephemeral"
    assert linked["text"].startswith("Linked: your external id is now `cust-4711`.")
    assert "Your linked external id is `cust-4711`" in shown["text"]
    assert "You have no linked external id yet" in other["text"]
    assert await _links(database) == {(DEFAULT_TEAM_ID, "U0ALICE"): "cust-4711"}
    assert await _link_events(database) == ["user.linked"]


async def test_linking_the_same_id_again_changes_nothing(app, database):
    await (await app.post_command("me cust-4711")).reply()

    again = await (await app.post_command("me cust-4711")).reply()

    assert "already is `cust-4711`; nothing changed" in again["text"]
    assert await _link_events(database) == ["user.linked"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("me cust-1 cust-2", "Give one external id"),
        ("me --clear", "Unknown option --clear"),
        ('me "two words"', "no spaces"),
        ("me " + "x" * 129, "the limit is 128"),
    ],
)
async def test_bad_input_is_answered_and_nothing_is_written(app, database, text, answer):
    reply = await (await app.post_command(text)).reply()

    assert answer in reply["text"]
    assert "/push me [EXTERNAL_ID]" in reply["text"]  # the usage
    assert await _links(database) == {}
    assert await _link_events(database) == []
