"""`/push user EXTERNAL_ID [--app NAME]`: the user's properties, aliases and subscriptions as
OneSignal has them, asked with the app's own key; clear answers when there is nothing to show."""

import json

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from storage import workspaces
from storage.models import AuditEvent, MemberRole
from tests.fakes.slack import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TEAM_ID
from tests.plugins.database import register_secret
from tests.plugins.slack import make_settings
from tests.scenario.test_oauth import NEW_TEAM, _install_page, _redirect
from tests.scenario.workspace import onesignal_settings, serve_with_storage

IOS_TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90aabbccddeeff00112233445566deadbf"
EMAIL = "customer-4711@example.com"


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    settings = onesignal_settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_with_storage(serve_pushops, settings, database, keyring) as running:
        yield running


@pytest.fixture
def customer(fake_onesignal):
    return fake_onesignal.add_user(
        fake_onesignal.app.id,
        "cust-4711",
        properties={
            "tags": {"plan": "pro", "note": "<!channel> hi"},
            "language": "de",
            "timezone_id": "Europe/Berlin",
            "country": "DE",
        },
        aliases={"crm_id": "C-0815"},
        subscriptions=[
            {"type": "iOSPush", "token": IOS_TOKEN, "device_model": "iPhone 15"},
            {"type": "Email", "token": EMAIL, "enabled": False},
        ],
    )


async def _add_app(database, keyring, name, app_id, key, team=DEFAULT_TEAM_ID):
    async with database.sessions.begin() as session:
        await workspaces.add_app(
            session=session,
            keyring=keyring,
            team_id=team,
            name=name,
            onesignal_app_id=app_id,
            api_key=SecretStr(register_secret(key)),
            added_by="U0ALICE",
        )


async def _audit_count(database):
    async with database.sessions() as session:
        return await session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))


def _user_requests(fake_onesignal):
    return fake_onesignal.requests_to("GET", "/apps/")


async def test_user_shows_properties_tags_aliases_and_subscriptions(app, fake_onesignal, customer):
    sent = await app.post_command("user cust-4711")
    reply = await sent.reply()

    shown = json.dumps(reply["blocks"], ensure_ascii=False)
    assert reply["response_type"] == "ephemeral"
    assert "User `cust-4711` in app *default*" in reply["text"]
    for expected in ("Language: de", "Europe/Berlin", "`plan`: pro", "`crm_id`: C-0815"):
        assert expected in shown
    assert "&lt;!channel&gt; hi" in shown and "<!channel>" not in shown  # escaped
    assert "*iOSPush* · subscribed · token …" + IOS_TOKEN[-6:] in shown
    assert "*Email* · disabled · token …" + EMAIL[-6:] in shown
    assert IOS_TOKEN not in shown and EMAIL not in shown  # only the last 6 characters
    [request] = _user_requests(fake_onesignal)
    assert request.path == f"/apps/{fake_onesignal.app.id}/users/by/external_id/cust-4711"
    assert request.headers["authorization"] == f"Key {fake_onesignal.app.rest_api_key}"


async def test_another_app_is_chosen_with_app(app, fake_onesignal, database, keyring):
    second = fake_onesignal.add_app("Second")
    fake_onesignal.add_user(second.id, "cust-9", properties={"language": "fr"})
    await _add_app(database, keyring, "second", second.id, second.rest_api_key)

    reply = await (await app.post_command("user cust-9 --app second")).reply()

    assert "User `cust-9` in app *second*" in reply["text"]
    assert "Language: fr" in json.dumps(reply["blocks"], ensure_ascii=False)
    [request] = _user_requests(fake_onesignal)
    assert request.path.startswith(f"/apps/{second.id}/")


async def _lookups(database):
    async with database.sessions() as session:
        query = (
            sa.select(AuditEvent)
            .where(AuditEvent.action == "user.lookup")
            .order_by(AuditEvent.created_at, AuditEvent.seq)
        )
        return list(await session.scalars(query))


async def test_every_lookup_is_in_the_audit_log_without_the_users_data(
    app, fake_slack, fake_onesignal, database, customer
):
    fake_slack.add_user("U0SUPPORT")
    async with database.sessions.begin() as session:  # support is on call: a responder
        await workspaces.add_member(
            session=session,
            team_id=DEFAULT_TEAM_ID,
            subject_id="U0SUPPORT",
            role=MemberRole.RESPONDER,
            actor="U0ALICE",
        )
    await (await app.post_command("user cust-4711", user="U0SUPPORT")).reply()

    [event] = await _lookups(database)
    assert (event.team_id, event.actor, event.target) == (DEFAULT_TEAM_ID, "U0SUPPORT", "cust-4711")
    assert event.outcome == "ok"
    assert event.details == {"app": "default"}
    stored = json.dumps(event.details)
    assert "Europe/Berlin" not in stored and IOS_TOKEN[-6:] not in stored  # no user data


async def test_a_user_onesignal_does_not_know_is_said_so(app, fake_onesignal, database):
    reply = await (await app.post_command("user cust-0000")).reply()

    assert reply["text"].startswith(
        "OneSignal has no user with external id `cust-0000` in app *default*."
    )
    [event] = await _lookups(database)  # the attempt is audited too
    assert (event.target, event.outcome) == ("cust-0000", "not_found")


async def test_the_not_found_answer_escapes_the_external_id_once(app, fake_onesignal):
    reply = await (await app.post_command("user <a&b>")).reply()

    assert (
        "OneSignal has no user with external id `&lt;a&amp;b&gt;` in app *default*."
        in (reply["text"])
    )
    assert "&amp;amp;" not in reply["text"] and "&amp;lt;" not in reply["text"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("user", "Which user? Give their external id."),
        ("user a b", "Give one external id."),
        ("user cust-4711 --color red", "Unknown option --color"),
        ("user cust-4711 --app", "--app needs a value"),
        (
            "user cust-4711 --app nope",
            "There is no OneSignal app named `nope` here. Pick one with `--app NAME`: `default`.",
        ),
        (  # escaped for Slack once: shown as typed, never as &amp;lt;
            "user cust-4711 --app <b&>",
            "There is no OneSignal app named `&lt;b&amp;&gt;` here.",
        ),
    ],
)
async def test_bad_input_is_answered_without_asking_onesignal_or_writing(
    app, fake_onesignal, database, text, answer
):
    before = await _audit_count(database)

    reply = await (await app.post_command(text)).reply()

    assert answer in reply["text"]
    assert _user_requests(fake_onesignal) == []
    assert await _audit_count(database) == before


async def test_a_key_onesignal_refuses_is_reported_for_an_admin_to_replace(
    app, fake_onesignal, database, keyring
):
    other = fake_onesignal.add_app("Other")  # its key is not the default app's
    await _add_app(database, keyring, "stale", fake_onesignal.app.id, other.rest_api_key)

    reply = await (await app.post_command("user cust-4711 --app stale")).reply()

    assert "OneSignal refused the REST API key of app *stale*" in reply["text"]
    assert "`/push setup`" in reply["text"]


async def test_an_unreachable_onesignal_is_reported(app, fake_onesignal, database, customer):
    fake_onesignal.faults.drop_connections(times=2, path="/apps/")

    reply = await (await app.post_command("user cust-4711")).reply()

    assert "OneSignal could not be reached; try again in a minute." in reply["text"]
    [event] = await _lookups(database)
    assert (event.target, event.outcome) == ("cust-4711", "failed")


async def test_a_workspace_without_apps_is_told_how_to_add_one(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    settings = onesignal_settings(
        fake_slack, fake_onesignal, tmp_path, onesignal_app_id=None, onesignal_api_key=None
    )
    async with serve_with_storage(serve_pushops, settings, database, keyring) as running:
        reply = await (await running.post_command("user cust-4711")).reply()

    assert "No OneSignal app is set up in this workspace yet" in reply["text"]
    assert "`/push setup`" in reply["text"]


async def test_user_in_an_installed_workspace_uses_that_workspaces_app(
    serve_pushops, fake_slack, fake_onesignal, sqlite_database, keyring, tmp_path, customer
):
    settings = make_settings(
        fake_slack,
        tmp_path,
        slack_bot_token=None,
        slack_client_id=DEFAULT_CLIENT_ID,
        slack_client_secret=DEFAULT_CLIENT_SECRET,
        onesignal_api_url=fake_onesignal.url,
        PUSHOPS_ADMINS=f"{NEW_TEAM}:U0ALICE",  # who looks up there: an admin of that workspace
    )
    app = fake_onesignal.app
    async with serve_with_storage(serve_pushops, settings, sqlite_database, keyring) as running:
        _, state, cookie = await _install_page(running)
        await _redirect(running, fake_slack.issue_oauth_code(NEW_TEAM), state, cookie)
        await _add_app(sqlite_database, keyring, "main", app.id, app.rest_api_key, team=NEW_TEAM)

        reply = await (await running.post_command("user cust-4711", team=NEW_TEAM)).reply()
        elsewhere = await (await running.post_command("user cust-4711", team="T0STRANGER")).reply()

    assert "User `cust-4711` in app *main*" in reply["text"]
    assert "not installed in this workspace" in elsewhere["text"]
    [request] = _user_requests(fake_onesignal)
    assert request.headers["authorization"] == f"Key {app.rest_api_key}"
