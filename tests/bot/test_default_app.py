"""Single-workspace mode: ONESIGNAL_APP_ID / ONESIGNAL_API_KEY become the bot token workspace's
app named `default`, saved encrypted at start and refreshed when the settings change."""

import uuid

import pytest
import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient

from bot.default_app import seed_default_app
from bot.services import build_services
from storage import workspaces
from storage.models import AuditEvent, OneSignalApp
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID
from tests.plugins.database import fake_api_key
from tests.plugins.slack import make_settings


@pytest.fixture
def client(fake_slack):
    return AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=fake_slack.api_url)


@pytest.fixture
async def seed(fake_slack, sqlite_database, keyring, client, tmp_path):
    async def run(**settings):
        values = make_settings(fake_slack, tmp_path, **settings)
        services = build_services(values, database=sqlite_database, keyring=keyring)
        try:
            return await seed_default_app(values, services, client)
        finally:
            await services.onesignal_http.aclose()

    yield run


async def _apps(database, keyring):
    async with database.sessions() as session:
        apps = await workspaces.list_apps(session=session, team_id=DEFAULT_TEAM_ID)
        return [
            (
                a.name,
                a.onesignal_app_id,
                a.is_default,
                workspaces.decrypt_app_key(a, keyring=keyring),
            )
            for a in apps
        ]


async def _app_events(database):
    async with database.sessions() as session:
        query = sa.select(AuditEvent.action).where(AuditEvent.action.like("app.%"))
        return list(await session.scalars(query.order_by(AuditEvent.seq)))


async def test_the_settings_app_is_saved_once_and_refreshed_when_it_changes(
    seed, sqlite_database, keyring
):
    app_id, key, new_key = str(uuid.uuid4()), fake_api_key(), fake_api_key()

    assert await seed(onesignal_app_id=app_id, onesignal_api_key=key) is True
    assert await seed(onesignal_app_id=app_id.upper(), onesignal_api_key=key) is False
    [(name, stored_id, is_default, stored_key)] = await _apps(sqlite_database, keyring)
    assert (name, stored_id, is_default) == ("default", app_id, True)
    assert stored_key.get_secret_value() == key

    assert await seed(onesignal_app_id=app_id, onesignal_api_key=new_key) is True
    [(_, _, _, rotated)] = await _apps(sqlite_database, keyring)
    assert rotated.get_secret_value() == new_key
    assert await _app_events(sqlite_database) == ["app.added", "app.replaced"]


async def test_the_key_is_stored_encrypted(seed, sqlite_database):
    key = fake_api_key()

    await seed(onesignal_app_id=str(uuid.uuid4()), onesignal_api_key=key)

    async with sqlite_database.sessions() as session:
        [ciphertext] = await session.scalars(sa.select(OneSignalApp.api_key_ciphertext))
    assert key not in ciphertext


async def test_nothing_is_saved_without_both_settings_or_when_slack_refuses_the_token(
    seed, sqlite_database, keyring, fake_slack
):
    assert await seed() is False
    assert await seed(onesignal_app_id=str(uuid.uuid4())) is False
    fake_slack.fail("auth.test", "invalid_auth")
    assert await seed(onesignal_app_id=str(uuid.uuid4()), onesignal_api_key=fake_api_key()) is False

    assert await _apps(sqlite_database, keyring) == []
