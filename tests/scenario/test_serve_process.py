"""`pushops serve` as an operator runs it: a real process that migrates, serves and stops."""

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import signing
from tests.fakes.onesignal.faults import Hold
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID, DEFAULT_USER_ID
from tests.plugins.database import register_secret

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_until_up(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):  # up to ~15 s on a busy machine
        if process.returncode is not None:
            raise AssertionError(f"serve exited early with status {process.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not answer /healthz")


def _clean_environment(tmp_path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_", "DATABASE_URL"))
    }
    env.update(PUSHOPS_DATA_DIR=str(tmp_path / "data"))
    return env


async def _wait_for_log(log_path, pattern: str, process, seconds: float = 30.0) -> re.Match[str]:
    """The first match of `pattern` in the process's log, once it is there."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(pattern, log_path.read_text())
        if found:
            return found
        if process.returncode is not None:
            raise AssertionError(f"exited early:\n{log_path.read_text()}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the log:\n{log_path.read_text()}")


@contextlib.asynccontextmanager
async def _running(
    command: str, env: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Path]]:
    """`python -m bot COMMAND` with its output in a log file; SIGTERM and a wait at the end."""
    log_path = tmp_path / f"{command}.log"
    with log_path.open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            command,
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        yield process, log_path
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await process.wait()


async def test_serve_migrates_answers_slack_and_stops_on_sigterm(fake_slack, tmp_path):
    port = _free_port()
    env = _clean_environment(tmp_path)
    env.update(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=signing.DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        HOST="127.0.0.1",
        PORT=str(port),
        PUSHOPS_LOG_FORMAT="json",
    )
    async with _running("serve", env, tmp_path) as (process, log_path):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await _wait_until_up(client, process)
            ready = await client.get("/readyz")
            response_url = fake_slack.new_response_url()
            body = signing.form_body(
                signing.slash_command(
                    text="help",
                    response_url=response_url,
                    user_id=DEFAULT_USER_ID,
                    team_id=DEFAULT_TEAM_ID,
                )
            )
            events = await client.post(
                "/slack/events", content=body, headers=signing.signed_headers(body)
            )
            reply = await fake_slack.wait_for_reply(response_url, timeout=10)
    stderr = log_path.read_text()

    assert ready.status_code == 200
    assert events.status_code == 200
    assert "/push send" in reply["text"]
    assert process.returncode == 0
    assert (tmp_path / "data" / "pushops.db").exists()
    assert "Traceback" not in stderr
    assert DEFAULT_BOT_TOKEN not in stderr
    assert signing.DEFAULT_SIGNING_SECRET not in stderr


@contextlib.asynccontextmanager
async def _released(hold: Hold) -> AsyncIterator[None]:
    """Let the held requests go at the end, whatever happened."""
    try:
        yield
    finally:
        hold.release()


async def test_serve_logs_where_it_listens_and_later_each_key_onesignal_refuses(
    fake_slack, fake_onesignal, tmp_path
):
    wrong_key = register_secret(f"os_v2_app_{'w' * 40}")
    env = _clean_environment(tmp_path)
    env.update(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=signing.DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        ONESIGNAL_API_URL=fake_onesignal.url,
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=wrong_key,
        HOST="127.0.0.1",
        PORT="0",  # the system picks; only the log can say which
    )
    held = fake_onesignal.faults.hold(method="GET", path="/notifications")
    async with _running("serve", env, tmp_path) as (process, log_path), _released(held):
        listening = await _wait_for_log(
            log_path, r"listening on http://127\.0\.0\.1:(\d+); Slack sends", process
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listening[1]}") as client:
            await _wait_until_up(client, process)
            assert await asyncio.to_thread(held.arrived.wait, 30)
            served_while_asking = (await client.get("/readyz")).status_code
            held.release()
            refused = await _wait_for_log(
                log_path, r"settings check: ONESIGNAL_API_KEY: .*", process
            )
    log = log_path.read_text()

    assert served_while_asking == 200
    assert refused[0].endswith(
        f"settings check: ONESIGNAL_API_KEY: OneSignal refused its key for app "
        f"{fake_onesignal.app.id} (HTTP 403). Fix: copy the REST API key of app "
        f"{fake_onesignal.app.id} from OneSignal: Settings > Keys & IDs."
    )
    assert log.count("settings check:") == 1  # the saved default app is that key: asked once
    assert process.returncode == 0
    assert wrong_key not in log and "Traceback" not in log


async def test_worker_logs_each_key_onesignal_refuses_once_started(
    fake_slack, fake_onesignal, tmp_path
):
    wrong_key = register_secret(f"os_v2_app_{'v' * 40}")
    env = _clean_environment(tmp_path)
    env.update(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_API_URL=fake_slack.api_url,
        ONESIGNAL_API_URL=fake_onesignal.url,
        ONESIGNAL_APP_ID=fake_onesignal.app.id,
        ONESIGNAL_API_KEY=wrong_key,
    )
    async with _running("worker", env, tmp_path) as (process, log_path):
        await _wait_for_log(log_path, r"settings check: ONESIGNAL_API_KEY: .*", process)
    log = log_path.read_text()

    assert "PushOps worker running" in log
    assert (
        f"settings check: ONESIGNAL_API_KEY: OneSignal refused its key for app "
        f"{fake_onesignal.app.id} (HTTP 403)." in log
    )
    assert log.count("settings check:") == 1
    assert wrong_key not in log and "Traceback" not in log
