"""`pushops diagnostics`: the redacted JSON document as an operator prints it; it names why a
send failed and holds none of the secrets the process knows."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.diagnostics import REDACTED, redacted_settings, redacted_url
from bot.settings import Settings
from storage.migrations import head_revision
from storage.models import SendState, utcnow
from tests.fakes.slack import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TEAM_ID,
)
from tests.plugins.database import DEFAULT_TEAM, OTHER_TEAM, register_secret

REASON = "OneSignal refused the notification (HTTP 400): All included players are not subscribed"


@pytest.fixture
def secrets(cli_env, fake_slack, fake_onesignal, monkeypatch, database) -> dict[str, str]:
    """Every secret the process gets, set in its environment (the DB password on PostgreSQL)."""
    found = {
        "SLACK_SIGNING_SECRET": register_secret(f"signing-{uuid.uuid4().hex}"),
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "ONESIGNAL_ORG_KEY": register_secret(f"os_v2_org_{uuid.uuid4().hex}"),
        "PUSHOPS_SECRET_KEY": cli_env["PUSHOPS_SECRET_KEY"],
    }
    for name, value in found.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.api_url)
    monkeypatch.setenv("ONESIGNAL_API_URL", fake_onesignal.url)
    url = make_url(cli_env["DATABASE_URL"])
    if url.get_backend_name() == "postgresql":  # the test server trusts local connections
        password = register_secret(f"pg-{uuid.uuid4().hex}")
        with_password = url.set(password=password).render_as_string(hide_password=False)
        monkeypatch.setenv("DATABASE_URL", with_password)
        found["database password"] = password
    return found


@pytest.fixture
async def failed(storage_factory, fake_onesignal):
    """The workspace's app (the fake's), a send that failed, and one a worker holds."""
    app = await storage_factory.app(
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret(fake_onesignal.app.rest_api_key),
        make_default=True,
    )
    send = await storage_factory.send(
        app, state=SendState.FAILED, last_error=REASON, attempts=1, finished_at=utcnow()
    )
    await storage_factory.send(
        app,
        state=SendState.SENDING,
        claimed_by="worker-a:42",
        claimed_at=utcnow(),
        lease_until=utcnow() + timedelta(seconds=30),
    )
    await storage_factory.send(app, due_at=utcnow() - timedelta(minutes=5))
    return send


async def _document(run_cli: Any, *args: str) -> dict[str, Any]:
    result = await run_cli("diagnostics", *args)
    assert result.code == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


async def test_the_document_says_why_a_send_failed_and_holds_no_secret(
    secrets, failed, run_cli, fake_onesignal
):
    result = await run_cli("diagnostics", "--team", DEFAULT_TEAM)

    assert result.code == 0, result.stderr
    for name, secret in {**secrets, "app key": fake_onesignal.app.rest_api_key}.items():
        assert secret not in result.stdout, name
    document = json.loads(result.stdout)
    (failure,) = document["recent_failures"]
    assert (failure["send"], failure["reason"], failure["app"]) == (failed.short_id, REASON, "main")
    (workspace,) = document["workspaces"]
    assert workspace["apps"][0]["last_onesignal_error"] == REASON
    assert workspace["apps"][0]["key"] == "••••" + fake_onesignal.app.rest_api_key[-4:]
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "ONESIGNAL_ORG_KEY"):
        assert document["settings"][name] == REDACTED
    assert document["settings"]["PUSHOPS_SECRET_KEY"] == REDACTED
    scheduler = document["scheduler"]
    assert (scheduler["scheduled"], scheduler["sending"]) == (1, 1)
    assert scheduler["oldest_due_late_seconds"] >= 300
    assert [(lease["worker"], lease["sends"]) for lease in scheduler["leases"]] == [
        ("worker-a:42", 1)
    ]
    assert document["database"]["revision"] == head_revision()
    assert document["database"]["up_to_date"] is True
    assert "Slack accepts SLACK_BOT_TOKEN (workspace T0PUSHOPS)." in document["check"]["fine"]


async def test_the_roles_the_policy_and_the_database_server_are_in_it(
    secrets, failed, run_cli, database
):
    for args in (
        ["roles", "add", "--team", DEFAULT_TEAM, "--role", "admin", "--user", "U0ALICE"],
        ["roles", "add", "--team", DEFAULT_TEAM, "--role", "approver", "--group", "S0LEADS"],
        ["policy", "set", "--team", DEFAULT_TEAM, "--mode", "all", "--channel", "C0APPROVE"],
        ["policy", "set", "--team", DEFAULT_TEAM, "--log-channel", "C0LOG"],
    ):
        assert (await run_cli(*args)).code == 0

    document = await _document(run_cli, "--team", DEFAULT_TEAM, "--offline")

    (workspace,) = document["workspaces"]
    assert workspace["roles"] == {
        "admin": ["U0ALICE"],
        "sender": [],
        "approver": ["S0LEADS"],
        "responder": [],
    }
    assert (workspace["policy"]["mode"], workspace["policy"]["channel_id"]) == ("all", "C0APPROVE")
    assert workspace["log_channel"] == "C0LOG"
    engine = "SQLite" if database.engine.dialect.name == "sqlite" else "PostgreSQL"
    assert document["database"]["server"].startswith(engine)


async def test_only_the_last_20_failures_are_listed_newest_first(secrets, storage_factory, run_cli):
    app = await storage_factory.app(make_default=True)
    start = utcnow() - timedelta(hours=1)
    ended = [
        await storage_factory.send(
            app,
            state=SendState.MISSED if index % 5 == 0 else SendState.FAILED,
            last_error=f"reason {index}",
            finished_at=start + timedelta(minutes=index),
        )
        for index in range(24)
    ]
    await storage_factory.send(app, state=SendState.SENT, finished_at=utcnow())

    document = await _document(run_cli, "--team", DEFAULT_TEAM, "--offline")

    listed = [(f["send"], f["state"], f["reason"]) for f in document["recent_failures"]]
    newest = [(s.short_id, str(s.state), f"reason {i}") for i, s in enumerate(ended)][::-1]
    assert listed == newest[:20]


async def test_without_a_team_every_workspace_is_in_it(secrets, failed, storage_factory, run_cli):
    await storage_factory.app(team_id=OTHER_TEAM, name="theirs")

    document = await _document(run_cli, "--offline")

    assert [w["team_id"] for w in document["workspaces"]] == sorted([DEFAULT_TEAM, OTHER_TEAM])
    assert document["check"] is None


async def test_one_workspace_sees_no_other(secrets, failed, storage_factory, run_cli):
    other = await storage_factory.app(team_id=OTHER_TEAM, name="theirs")
    await storage_factory.send(other, state=SendState.FAILED, last_error="theirs broke")

    document = await _document(run_cli, "--team", DEFAULT_TEAM, "--offline")

    assert "theirs" not in json.dumps(document)
    assert [f["team_id"] for f in document["recent_failures"]] == [DEFAULT_TEAM]


async def test_an_unknown_workspace_is_said_plainly(secrets, run_cli):
    result = await run_cli("diagnostics", "--team", DEFAULT_TEAM_ID)

    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == f"error: PushOps knows no workspace {DEFAULT_TEAM_ID}.\n"


def test_settings_and_database_urls_are_shown_without_their_secrets():
    settings = Settings.model_validate(
        {
            "DATABASE_URL": "postgresql://pushops:hunter2-Secret@db:5432/pushops",
            "SLACK_CLIENT_SECRET": "client-secret-xyz",
            "SLACK_CLIENT_ID": "123.456",
        }
    )

    shown = redacted_settings(settings)

    assert shown["DATABASE_URL"] == f"postgresql://pushops:{REDACTED}@db:5432/pushops"
    assert shown["SLACK_CLIENT_SECRET"] == REDACTED and shown["SLACK_CLIENT_ID"] == "123.456"
    assert shown["SLACK_APP_TOKEN"] is None  # not set
    assert "hunter2" not in json.dumps(shown) and "client-secret-xyz" not in json.dumps(shown)
    assert redacted_url("sqlite:///data/pushops.db") == "sqlite:///data/pushops.db"


async def test_oauth_and_socket_mode_secrets_stay_out_too(secrets, failed, run_cli):
    oauth = {
        "SLACK_CLIENT_ID": DEFAULT_CLIENT_ID,
        "SLACK_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN,
        "SLACK_BOT_TOKEN": None,  # each workspace's token comes from its install
    }

    result = await run_cli("diagnostics", "--team", DEFAULT_TEAM, env=oauth)

    assert result.code == 0, result.stderr
    for secret in (DEFAULT_CLIENT_SECRET, DEFAULT_APP_TOKEN, *secrets.values()):
        assert secret not in result.stdout
    document = json.loads(result.stdout)
    assert document["mode"] == {
        "transport": "socket_mode",
        "oauth": True,
        "workspaces": "many (OAuth installs)",
    }
    assert document["settings"]["SLACK_CLIENT_ID"] == DEFAULT_CLIENT_ID
    assert document["settings"]["SLACK_CLIENT_SECRET"] == REDACTED
    assert document["settings"]["SLACK_APP_TOKEN"] == REDACTED
    assert "Slack accepts SLACK_APP_TOKEN." in document["check"]["fine"]
