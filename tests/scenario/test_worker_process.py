"""`pushops worker` tells Slack, as `serve` does: each requester hears of the end of their send
by DM and the log-channel message follows, whichever process delivered it. Real processes
against the fake Slack, the fake OneSignal and the test's database.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore

from bot import const
from bot.cli_serve import EXIT_STARTUP
from bot.installations import EncryptedInstallationStore
from storage import queries
from storage.audit_chain import Checkpoint
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import OneSignalApp, Send, SendState, utcnow
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import (
    DEFAULT_BOT_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TEAM_ID,
    Call,
    FakeSlack,
)
from tests.plugins.database import StorageFactory, register_secret
from tests.scenario.processes import Server, Worker, environment
from tests.scenario.sendkit import (
    ALICE,
    LOG_CHANNEL,
    SEGMENT,
    buttons,
    creates,
    dm_to,
    ensure_workspace,
    set_log_channel,
    text_of,
)

pytestmark = pytest.mark.slow

REQUESTERS = (ALICE, "U0CAROL", "U0DAVE")
NO_SLACK = "no Slack credentials"


async def _rows(database: Database, team_id: str = DEFAULT_TEAM_ID) -> list[Send]:
    async with database.sessions() as session:
        query = sa.select(Send).where(Send.team_id == team_id).order_by(Send.created_at)
        return list(await session.scalars(query))


async def _until(
    database: Database, done: Any, *, seconds: float = 30.0, team_id: str = DEFAULT_TEAM_ID
) -> list[Send]:
    """The workspace's sends once `done(sends)` holds (polling the database)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = await _rows(database, team_id)
        if rows and done(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"sends: {[(r.short_id, r.state.value) for r in rows]}")
        await asyncio.sleep(0.1)


def _all_in(*states: SendState) -> Any:
    return lambda rows: all(row.state in states for row in rows)


def _log_updates(fake_slack: FakeSlack, send: Send) -> list[Call]:
    ts = send.slack_messages["log"]["ts"]
    return fake_slack.calls_to(
        "chat.update", where=lambda c: (c.args["channel"], c.args["ts"]) == (LOG_CHANNEL, ts)
    )


async def _seeded_app(
    factory: StorageFactory, fake: FakeOneSignal, team_id: str = DEFAULT_TEAM_ID
) -> OneSignalApp:
    return await factory.app(
        team_id,
        "default",
        onesignal_app_id=fake.app.id,
        api_key=register_secret(fake.app.rest_api_key),
        make_default=True,
    )


# --- the crash: serve stores, dies; the worker delivers and tells -------------------------------


async def _ask_serve_for_sends(
    serve: Server, fake_slack: FakeSlack, database: Database, in_seconds: int
) -> list[Send]:
    """Each requester asks `serve` for a send due in `in_seconds`; their rows once logged."""
    async with httpx.AsyncClient(timeout=10) as client:
        await serve.up(client)
        for user in REQUESTERS:
            url = await serve.command_from(
                client,
                fake_slack,
                f'send --yes --in {in_seconds}s --segment "{SEGMENT}" "Hello from {user}"',
                user=user,
            )
            reply = await fake_slack.wait_for_reply(url, timeout=10)
            assert "is scheduled" in reply["text"], reply
    # The log message's ts is written after it is posted: wait for it, as the worker needs it.
    return await _until(
        database,
        lambda rows: len(rows) == len(REQUESTERS) and all("log" in r.slack_messages for r in rows),
    )


async def test_sends_of_a_killed_serve_are_delivered_and_told_once_by_the_worker(
    database, secret_key, fake_slack, fake_onesignal, tmp_path
):
    for user in REQUESTERS[1:]:
        fake_slack.add_user(user, name=user[2:].lower())
    await ensure_workspace(database)
    await set_log_channel(database)
    env = environment(database, secret_key, fake_onesignal, tmp_path, slack=fake_slack)
    env.update(
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=register_secret(fake_onesignal.app.rest_api_key),
    )
    serve = Server(env, tmp_path / "serve.log")
    await serve.start()
    try:
        stored = await _ask_serve_for_sends(serve, fake_slack, database, in_seconds=10)
    finally:
        await serve.kill()
    assert {row.state for row in stored} == {SendState.SCHEDULED}  # nothing was due yet

    worker = Worker(env, tmp_path / "worker.log")
    await worker.start()
    try:
        sent = await _until(database, _all_in(SendState.SENT, SendState.FAILED))
        for user in REQUESTERS:
            await fake_slack.wait_for("chat.postMessage", where=dm_to(user), timeout=10)
        await fake_slack.wait_for("chat.update", count=len(REQUESTERS), timeout=10)
    finally:
        code = await worker.terminate()  # no call to Slack can come after this: count them

    assert {row.state for row in sent} == {SendState.SENT}
    keys = Counter(request.json["idempotency_key"] for request in creates(fake_onesignal))
    assert keys == Counter({str(row.id): 1 for row in sent})
    for row in sent:
        [dm] = fake_slack.calls_to("chat.postMessage", where=dm_to(row.requester_id))
        assert f"`{row.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
        assert row.notification_id is not None and row.notification_id in dm.args["text"]
        assert f"Hello from {row.requester_id}" in text_of(dm.args)
        [update] = _log_updates(fake_slack, row)
        assert f"`{row.short_id}`" in update.args["text"] and "was sent" in update.args["text"]
    posted = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )
    assert len(posted) == len(REQUESTERS)  # the worker updated them; it posted none anew
    assert code == 0
    output = worker.output() + serve.output()
    assert "Traceback" not in output and NO_SLACK not in output
    assert DEFAULT_BOT_TOKEN not in output and fake_onesignal.app.rest_api_key not in output


# --- the worker alone: every end it reaches is told ---------------------------------------------


async def _due(
    factory: StorageFactory, app: OneSignalApp, requester: str, message: str, seconds: float
) -> Send:
    return await factory.send(
        app,
        due_at=utcnow() + timedelta(seconds=seconds),
        requester_id=requester,
        content={"message": message},
        audience={"segments": [SEGMENT]},
        timezone="Europe/Berlin",
    )


async def test_the_worker_tells_a_send_sent_failed_or_missed_to_its_requester(
    database, storage_factory, secret_key, fake_slack, fake_onesignal, tmp_path
):
    for user in REQUESTERS[1:]:
        fake_slack.add_user(user)
    app = await _seeded_app(storage_factory, fake_onesignal)
    stale = await storage_factory.app(  # its key was replaced at OneSignal: refused, 403
        DEFAULT_TEAM_ID,
        "stale",
        onesignal_app_id=fake_onesignal.app.id,
        api_key=register_secret("stale-rest-api-key-0000"),
    )
    await set_log_channel(database)
    failed = await _due(storage_factory, stale, REQUESTERS[1], "Refused", 2.0)
    sent = await _due(storage_factory, app, ALICE, "Goes out", 3.0)
    missed = await _due(storage_factory, app, REQUESTERS[2], "Too late", -3600)
    env = environment(database, secret_key, fake_onesignal, tmp_path, slack=fake_slack)

    worker = Worker(env, tmp_path / "worker.log")
    await worker.start()
    try:
        rows = await _until(database, _all_in(SendState.SENT, SendState.FAILED, SendState.MISSED))
    finally:
        code = await worker.terminate()

    assert [row.state for row in rows] == [SendState.FAILED, SendState.SENT, SendState.MISSED]
    [told_failed] = fake_slack.calls_to("chat.postMessage", where=dm_to(failed.requester_id))
    assert f"`{failed.short_id}` failed" in told_failed.args["text"]
    assert "OneSignal refused it (HTTP 403)" in text_of(told_failed.args)
    [told_sent] = fake_slack.calls_to("chat.postMessage", where=dm_to(sent.requester_id))
    assert f"`{sent.short_id}`" in told_sent.args["text"] and "was sent" in told_sent.args["text"]
    [told_missed] = fake_slack.calls_to("chat.postMessage", where=dm_to(missed.requester_id))
    assert f"`{missed.short_id}` was missed" in told_missed.args["text"]
    assert const.ACTION_MISSED_SEND_NOW in buttons(told_missed.args["blocks"])
    logged = fake_slack.calls_to(
        "chat.postMessage", where=lambda c: c.args["channel"] == LOG_CHANNEL
    )
    assert sorted(call.args["text"].split(" ")[0] for call in logged) == sorted(
        f"`{row.short_id}`" for row in rows
    )
    assert len(creates(fake_onesignal)) == 2  # the refused one and the sent one; none missed
    assert code == 0 and "Traceback" not in worker.output()


async def test_a_worker_without_slack_credentials_delivers_and_says_it_tells_nobody(
    database, storage_factory, secret_key, fake_slack, fake_onesignal, tmp_path
):
    app = await _seeded_app(storage_factory, fake_onesignal)
    send = await _due(storage_factory, app, ALICE, "Quietly", 0.5)
    env = environment(database, secret_key, fake_onesignal, tmp_path)

    worker = Worker(env, tmp_path / "worker.log")
    await worker.start()
    try:
        [row] = await _until(database, _all_in(SendState.SENT))
    finally:
        code = await worker.terminate()

    assert row.id == send.id and len(creates(fake_onesignal)) == 1
    warnings = [line for line in worker.output().splitlines() if NO_SLACK in line]
    assert len(warnings) == 1, worker.output()
    assert "SLACK_BOT_TOKEN" in warnings[0] and "nobody" in warnings[0]
    assert fake_slack.calls == []
    assert code == 0


async def test_a_worker_in_oauth_mode_writes_with_the_workspaces_installed_token(
    database, storage_factory, keyring, secret_key, fake_slack, fake_onesignal, tmp_path
):
    team, token = "T0INSTALLED", register_secret("xoxb-installed-workspace-token")
    fake_slack.add_workspace(team, bot_token=token)
    fake_slack.add_user("U0ERIN", team_id=team)
    await _install(database, keyring, team, token)
    app = await _seeded_app(storage_factory, fake_onesignal, team)
    send = await _due(storage_factory, app, "U0ERIN", "Installed", 0.5)
    env = environment(database, secret_key, fake_onesignal, tmp_path)
    env.update(
        SLACK_CLIENT_ID=DEFAULT_CLIENT_ID,
        SLACK_CLIENT_SECRET=register_secret(DEFAULT_CLIENT_SECRET),
        SLACK_API_URL=fake_slack.api_url,
    )

    worker = Worker(env, tmp_path / "worker.log")
    await worker.start()
    try:
        await _until(database, _all_in(SendState.SENT), team_id=team)
        dm = await fake_slack.wait_for("chat.postMessage", where=dm_to("U0ERIN"), timeout=10)
    finally:
        code = await worker.terminate()

    assert dm.token == token
    assert f"`{send.short_id}`" in dm.args["text"] and "was sent" in dm.args["text"]
    assert code == 0 and NO_SLACK not in worker.output()


async def _install(database: Database, keyring: KeyRing, team: str, token: str) -> None:
    """The workspace's installation, stored (encrypted) as the OAuth flow stores it."""
    store = EncryptedInstallationStore(
        AsyncSQLAlchemyInstallationStore(client_id=DEFAULT_CLIENT_ID, engine=database.engine),
        keyring,
        database=database,
    )
    await store.async_save(
        Installation(
            app_id="A0PUSHOPS",
            team_id=team,
            team_name="Installed",
            user_id="U0ERIN",
            bot_token=token,
            bot_id="B0BOT",
            bot_user_id="U0BOT",
            bot_scopes=list(const.BOT_SCOPES),
        )
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLACK_CLIENT_ID": DEFAULT_CLIENT_ID}, "SLACK_CLIENT_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxp-a-user-token"}, "SLACK_BOT_TOKEN"),
    ],
)
async def test_a_worker_with_half_slack_settings_says_what_to_fix(
    run_cli, env: dict[str, str], named: str
):
    result = await run_cli("worker", env=env)

    assert result.code == 2
    assert result.stderr.startswith("PushOps worker cannot start:")
    assert named in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_worker_whose_token_slack_refuses_stops_and_says_so(run_cli, fake_slack):
    token = register_secret("xoxb-revoked-bot-token")

    result = await run_cli(
        "worker", env={"SLACK_BOT_TOKEN": token, "SLACK_API_URL": fake_slack.api_url}
    )

    assert result.code == EXIT_STARTUP
    assert "SLACK_BOT_TOKEN: Slack refused it (invalid_auth)" in result.stderr
    assert token not in result.stderr and "Traceback" not in result.stderr


# --- audit checkpoints -----------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def _first_lines(worker: Worker, path: Path, seconds: float = 20.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while not (lines := _lines(path)):
        assert time.monotonic() < deadline, worker.output()
        worker.check_alive()
        await asyncio.sleep(0.05)
    return lines


async def test_a_worker_publishes_audit_checkpoints_that_verify(
    database, storage_factory, secret_key, fake_onesignal, tmp_path, run_cli
):
    await _seeded_app(storage_factory, fake_onesignal)  # its workspace's log: app.added
    checkpoints = tmp_path / "checkpoints.jsonl"
    env = environment(database, secret_key, fake_onesignal, tmp_path)
    env.update(PUSHOPS_AUDIT_CHECKPOINTS=str(checkpoints), PUSHOPS_AUDIT_CHECKPOINT_INTERVAL="0.2")
    worker = Worker(env, tmp_path / "worker.log")

    await worker.start()
    try:
        await worker.armed()
        await _first_lines(worker, checkpoints)
    finally:
        code = await worker.terminate()
    verified = await run_cli("audit", "verify", "--checkpoints", str(checkpoints))

    assert code == 0
    assert len(_lines(checkpoints)) == 1  # one workspace, whose head never moved
    assert verified.code == 0, verified.stderr
    assert verified.stdout.endswith(f"extending the 1 checkpoint in {checkpoints}.\n")


async def test_a_worker_with_slack_posts_each_checkpoint_to_the_log_channel(
    database, storage_factory, secret_key, fake_slack, fake_onesignal, tmp_path
):
    await _seeded_app(storage_factory, fake_onesignal)
    await set_log_channel(database)
    env = environment(database, secret_key, fake_onesignal, tmp_path, slack=fake_slack)
    env.update(PUSHOPS_AUDIT_CHECKPOINT_INTERVAL="0.2")
    worker = Worker(env, tmp_path / "worker.log")

    await worker.start()
    try:
        call = await fake_slack.wait_for(
            "chat.postMessage", timeout=20, where=lambda c: c.args["channel"] == LOG_CHANNEL
        )
    finally:
        code = await worker.terminate()

    async with database.sessions() as session:
        [head] = await queries.list_audit_events(session=session, team_id=DEFAULT_TEAM_ID, limit=1)
    assert call.args["text"] == (
        f"Audit checkpoint: event #{head.seq} is the latest of this workspace's audit log."
    )
    assert Checkpoint.parse(call.args["blocks"][1]["text"]["text"].strip("`")).mac == head.mac
    assert code == 0 and "Traceback" not in worker.output()
