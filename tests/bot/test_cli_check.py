"""`pushops check` beyond the settings: it tries the database and, with --online, asks
OneSignal and Slack about each key, the way an operator runs it."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.crypto import generate_key
from storage.db import display_url
from storage.migrations import head_revision
from tests.fakes.signing import DEFAULT_SIGNING_SECRET
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID
from tests.plugins.database import DEFAULT_TEAM, fake_api_key, register_secret


@pytest.fixture
def check(run_cli, cli_env, fake_slack, fake_onesignal):
    """`await check("--online", ONESIGNAL_API_KEY=...)`: `pushops check` in a valid setup."""
    register_secret(fake_onesignal.app.rest_api_key)
    register_secret(fake_onesignal.org_api_key)
    base = {
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "ONESIGNAL_API_URL": fake_onesignal.url,
    }

    async def run(*argv: str, **env: str | None):
        return await run_cli("check", *argv, env={**base, **env})

    return run


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("- ")]


# --- the database -------------------------------------------------------------------------------


async def test_check_says_the_database_is_reachable_and_current(check, cli_env):
    result = await check()

    assert result.code == 0, result.stderr
    where = display_url(cli_env["DATABASE_URL"])
    assert f"Database {where}: reachable, schema current (revision {head_revision()})." in (
        result.stdout.splitlines()
    )


async def test_check_names_a_database_it_cannot_reach(check):
    url = f"postgresql://pushops@127.0.0.1:{_closed_port()}/pushops"

    result = await check(DATABASE_URL=url)

    assert result.code == 1
    (line,) = _problems(result.stderr)
    assert line.startswith(f"- DATABASE_URL: cannot connect to {url} (")
    assert "Connection refused" in line
    assert line.endswith(
        "Fix: check that the database runs and that DATABASE_URL's host, "
        "port, user, password and database name are right."
    )


async def test_check_on_an_empty_database_says_serve_upgrades_it_unless_told_not_to(
    check, tmp_path
):
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file is an empty SQLite database
    url = f"sqlite:///{empty}"

    upgraded_at_start = await check(DATABASE_URL=url)
    not_upgraded = await check(DATABASE_URL=url, PUSHOPS_AUTO_MIGRATE="0")

    assert upgraded_at_start.code == 0, upgraded_at_start.stderr
    assert (
        f"Database {url}: reachable, at revision none (empty); `serve` upgrades it to "
        f"{head_revision()}."
    ) in upgraded_at_start.stdout
    assert not_upgraded.code == 1
    assert _problems(not_upgraded.stderr) == [
        f"- DATABASE_URL: the database at {url} is at revision none (empty), this PushOps needs "
        f"{head_revision()}, and PUSHOPS_AUTO_MIGRATE=0 keeps `serve` from upgrading it. "
        "Fix: run `pushops db upgrade`."
    ]


async def test_check_on_a_database_a_newer_version_upgraded(check, database):
    async with database.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    result = await check()

    assert result.code == 1
    (line,) = _problems(result.stderr)
    assert "is at revision 9999, which this PushOps does not know" in line


async def test_check_makes_no_database_and_no_key_file(check, tmp_path):
    data_dir = tmp_path / "fresh"

    result = await check(DATABASE_URL=None, PUSHOPS_SECRET_KEY=None, PUSHOPS_DATA_DIR=str(data_dir))

    assert result.code == 0, result.stderr
    assert "not created yet; `serve` creates it at start." in result.stdout
    assert not data_dir.exists()


async def test_check_names_stored_keys_the_key_ring_does_not_open(check, cli_env, storage_factory):
    await storage_factory.app(name="main")
    other = register_secret(generate_key())

    wrong_key = await check(PUSHOPS_SECRET_KEY=other)
    no_key = await check(PUSHOPS_SECRET_KEY=None)

    assert wrong_key.code == no_key.code == 1
    (line,) = _problems(wrong_key.stderr)
    assert line.startswith(
        f"- app 'main' of workspace {DEFAULT_TEAM}: its REST API key does not decrypt: it was "
        f"encrypted with key {storage_factory.keyring.primary_key_id}, which is not in "
        "PUSHOPS_SECRET_KEY"
    )
    key_file = Path(cli_env["PUSHOPS_DATA_DIR"]) / "secret.key"
    assert _problems(no_key.stderr) == [
        f"- PUSHOPS_SECRET_KEY: is not set and {key_file} does not exist, but the database "
        "holds 1 encrypted OneSignal key; `serve` would make a new key that opens none. "
        "Fix: set PUSHOPS_SECRET_KEY to the key they were saved with, or put the key file back."
    ]
    assert not key_file.exists()


# --- online -------------------------------------------------------------------------------------


async def test_check_asks_nobody_without_online(check, fake_onesignal, fake_slack):
    result = await check(
        ONESIGNAL_APP_ID=fake_onesignal.app.id, ONESIGNAL_API_KEY=fake_onesignal.app.rest_api_key
    )

    assert result.code == 0, result.stderr
    assert fake_onesignal.requests == []
    assert fake_slack.calls_to("auth.test") == []


async def test_check_online_asks_each_key_for_a_read_it_allows(
    check, fake_onesignal, fake_slack, storage_factory
):
    second = fake_onesignal.add_app("Second")
    register_secret(second.rest_api_key)
    await storage_factory.app(
        name="second", onesignal_app_id=second.id, api_key=second.rest_api_key
    )

    result = await check(
        "--online",
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=fake_onesignal.app.rest_api_key,
        ONESIGNAL_ORG_KEY=fake_onesignal.org_api_key,
    )

    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"OneSignal accepts ONESIGNAL_API_KEY for app {fake_onesignal.app.id}." in lines
    assert "OneSignal accepts ONESIGNAL_ORG_KEY." in lines
    assert (
        f"OneSignal accepts the key of app 'second' of workspace {DEFAULT_TEAM} for app "
        f"{second.id}." in lines
    )
    assert f"Slack accepts SLACK_BOT_TOKEN (workspace {DEFAULT_TEAM_ID})." in lines
    reads = {
        (r.query["app_id"][0], r.query["limit"][0], r.headers["authorization"])
        for r in fake_onesignal.requests_to("GET", "/notifications")
    }
    assert reads == {
        (fake_onesignal.app.id, "1", f"Key {fake_onesignal.app.rest_api_key}"),
        (second.id, "1", f"Key {second.rest_api_key}"),
    }
    (apps,) = fake_onesignal.requests_to("GET", "/apps")
    assert apps.headers["authorization"] == f"Key {fake_onesignal.org_api_key}"
    (auth_test,) = fake_slack.calls_to("auth.test")
    assert auth_test.token == DEFAULT_BOT_TOKEN
    assert {r.method for r in fake_onesignal.requests} == {"GET"}  # reads only


async def test_check_online_names_every_refused_key_and_token(
    check, fake_onesignal, storage_factory
):
    await storage_factory.app(name="stale", onesignal_app_id=fake_onesignal.app.id)
    wrong = fake_api_key()
    revoked = register_secret("xoxb-9-revoked-bot-token")

    result = await check(
        "--online",
        SLACK_BOT_TOKEN=revoked,
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=wrong,
        ONESIGNAL_ORG_KEY=register_secret(fake_api_key()),
    )

    assert result.code == 1
    app_id = fake_onesignal.app.id
    assert _problems(result.stderr) == [
        "- SLACK_BOT_TOKEN: Slack refused it (invalid_auth). Fix: copy the current token from "
        "the app's settings page on api.slack.com and set it again.",
        f"- ONESIGNAL_API_KEY: OneSignal refused its key for app {app_id} (HTTP 403). Fix: copy "
        f"the REST API key of app {app_id} from OneSignal: Settings > Keys & IDs.",
        "- ONESIGNAL_ORG_KEY: OneSignal refused it (HTTP 403). Fix: copy the Organization API "
        "key from OneSignal (Organizations > Keys & IDs), or unset ONESIGNAL_ORG_KEY.",
        f"- app 'stale' of workspace {DEFAULT_TEAM}: OneSignal refused its key for app {app_id} "
        "(HTTP 403). Fix: save the app's current key with /push setup, or with `pushops apps "
        f"add --team {DEFAULT_TEAM} --name stale --app-id {app_id} --replace`.",
    ]
    assert wrong not in result.stderr + result.stdout
    assert revoked not in result.stderr + result.stdout


async def test_check_online_names_an_app_onesignal_does_not_know(check):
    unknown = str(uuid.uuid4())

    result = await check("--online", ONESIGNAL_APP_ID=unknown, ONESIGNAL_API_KEY=fake_api_key())

    assert result.code == 1
    assert _problems(result.stderr) == [
        f"- ONESIGNAL_APP_ID: OneSignal knows no app {unknown} (HTTP 404). "
        "Fix: copy it from OneSignal: Settings > Keys & IDs."
    ]


async def test_check_online_tells_apart_what_it_could_not_ask(check, fake_onesignal):
    url = f"http://127.0.0.1:{_closed_port()}"

    result = await check(
        "--online",
        ONESIGNAL_API_URL=url,
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=fake_onesignal.app.rest_api_key,
    )

    assert result.code == 3
    assert result.stdout.startswith("Settings OK")
    assert result.stderr.splitlines() == [
        "Could not check 1 setting:",
        f"- ONESIGNAL_API_KEY: OneSignal could not be asked at {url} (no answer: "
        "OneSignalConnectError). Fix: run `pushops check --online` again once it answers.",
    ]


async def test_check_online_skips_what_is_wrong_already(check, fake_onesignal):
    result = await check(
        "--online",
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=fake_onesignal.app.rest_api_key + " # REST API key",
    )

    assert result.code == 1
    (line,) = _problems(result.stderr)
    assert line.startswith("- ONESIGNAL_API_KEY: carries a comment")
    assert fake_onesignal.requests == []
