"""`/push diagnostics`: an admin gets one redacted JSON file in their DM, made after the ack
through Slack's upload flow; it says why a send failed and holds none of the secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage.migrations import head_revision
from storage.models import SendState
from tests.denials import wait_for_denials
from tests.fakes.signing import DEFAULT_SIGNING_SECRET
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID
from tests.plugins.slack import make_settings
from tests.scenario.sendkit import (
    CAROL,
    SEGMENT,
    audit_actions,
    only_send,
    serve_sending,
    settings,
    wait_for_state,
)
from tests.scenario.workspace import serve_with_storage

DM = "D0ALICE"  # the fake's DM channel with ALICE (conversations.open)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        fake_slack.add_user(CAROL, name="carol")
        yield running


async def _failed_send(app: Any, fake_onesignal: Any, database: Any) -> Any:
    """A send OneSignal refuses (403), failed for good."""
    fake_onesignal.faults.statuses([403], method="POST", path="/notifications")
    await (await app.post_command(f'send --yes --segment "{SEGMENT}" Refused')).reply()
    send = await only_send(database)
    return await wait_for_state(database, send.short_id, SendState.FAILED)


async def test_an_admin_gets_a_file_that_says_why_a_send_failed_and_holds_no_secret(
    app, fake_slack, fake_onesignal, database, secret_key
):
    failed = await _failed_send(app, fake_onesignal, database)

    asked = await app.post_command("diagnostics")
    reply = await asked.reply(timeout=20)

    assert asked.response is not None and asked.response.status_code == 200
    assert reply["text"] == (
        "Diagnostics are in your DM with PushOps, as a JSON file without secrets."
    )
    (upload,) = fake_slack.shared_files(DM)
    assert upload.filename.startswith(f"pushops-diagnostics-{DEFAULT_TEAM_ID}-")
    assert upload.title == "PushOps diagnostics"
    text = upload.content.decode()
    for secret in (
        DEFAULT_SIGNING_SECRET,
        DEFAULT_BOT_TOKEN,
        fake_onesignal.app.rest_api_key,
        secret_key,
    ):
        assert secret not in text
    document = json.loads(text)
    (failure,) = document["recent_failures"]
    assert failure["send"] == failed.short_id and failure["state"] == "failed"
    assert failure["reason"] == failed.last_error and "403" in failed.last_error
    (workspace,) = document["workspaces"]
    (app_info,) = workspace["apps"]
    assert app_info["onesignal_app_id"] == fake_onesignal.app.id
    assert app_info["key"] == "••••" + fake_onesignal.app.rest_api_key[-4:]
    assert app_info["last_onesignal_error"] == failed.last_error
    assert document["settings"]["SLACK_SIGNING_SECRET"] == "**REDACTED**"
    assert document["settings"]["SLACK_BOT_TOKEN"] == "**REDACTED**"
    assert document["database"]["revision"] == head_revision()
    assert document["mode"] == {"transport": "http", "oauth": False, "workspaces": "one"}
    assert set(document["versions"]) >= {"pushops", "python", "slack_bolt", "sqlalchemy"}
    assert "Slack accepts SLACK_BOT_TOKEN (workspace T0PUSHOPS)." in document["check"]["fine"]
    assert document["scheduler"]["sends_by_state"] == {"failed": 1}
    assert "diagnostics.exported" in await audit_actions(database)


async def test_someone_not_an_admin_gets_no_file(app, fake_slack, database):
    asked = await app.post_command("diagnostics", user=CAROL)
    reply = await asked.reply()

    assert "Only PushOps admins can download diagnostics" in reply["text"]
    assert fake_slack.shared_files() == []
    (denied,) = await wait_for_denials(database, 1, "diagnostics.denied")
    assert denied.actor == CAROL
    assert "diagnostics.exported" not in await audit_actions(database)


async def test_slack_refusing_the_upload_is_said_plainly(app, fake_slack):
    fake_slack.fail("files.getUploadURLExternal", "missing_scope")

    reply = await (await app.post_command("diagnostics")).reply(timeout=20)

    assert reply["text"].startswith("Slack refused the file (missing_scope)")
    assert fake_slack.shared_files() == []


async def test_a_workspace_nothing_was_saved_for_yet_gets_its_file_too(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    """No OneSignal app in the settings: the workspace has no row until something is saved."""
    config = make_settings(fake_slack, tmp_path, onesignal_api_url=fake_onesignal.url)
    async with serve_with_storage(serve_pushops, config, database, keyring) as running:
        reply = await (await running.post_command("diagnostics")).reply(timeout=20)

    assert reply["text"].startswith("Diagnostics are in your DM")
    (upload,) = fake_slack.shared_files(DM)
    (workspace,) = json.loads(upload.content or b"")["workspaces"]
    assert (workspace["team_id"], workspace["apps"]) == (DEFAULT_TEAM_ID, [])
    assert "diagnostics.exported" in await audit_actions(database)
