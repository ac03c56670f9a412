"""`pushops serve` as an operator runs it: a real process that migrates, serves and stops."""

import asyncio
import os
import signal
import socket
import sys

import httpx
import pytest

from tests.fakes import signing
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID, DEFAULT_USER_ID

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


async def test_serve_migrates_answers_slack_and_stops_on_sigterm(fake_slack, tmp_path):
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_"))
    }
    env.update(
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=signing.DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        HOST="127.0.0.1",
        PORT=str(port),
        PUSHOPS_DATA_DIR=str(tmp_path / "data"),
        PUSHOPS_LOG_FORMAT="json",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=log_file,
        )
    try:
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
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await process.wait()
    stderr = log_path.read_text()

    assert ready.status_code == 200
    assert events.status_code == 200
    assert "/push send" in reply["text"]
    assert process.returncode == 0
    assert (tmp_path / "data" / "pushops.db").exists()
    assert "Traceback" not in stderr
    assert DEFAULT_BOT_TOKEN not in stderr
    assert signing.DEFAULT_SIGNING_SECRET not in stderr
