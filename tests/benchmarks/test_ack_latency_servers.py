"""The servers of benchmarks/ack_latency.py, as that benchmark runs them: in processes of their own.

The bare app must check signatures like the real one (or the comparison flatters it), and
the fake Slack's counts are what tell the benchmark that the real app's replies happened.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import signing

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class FakeSlackRunner:
    """`python -m benchmarks.servers.fake_slack`, talked to over its standard streams."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.servers.fake_slack"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.info: dict[str, str] = json.loads(self.process.stdout.readline())

    def counts(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("counts\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def stop(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=15)


@pytest.fixture
def fake_slack_runner() -> Iterator[FakeSlackRunner]:
    runner = FakeSlackRunner()
    with runner.process:  # closes its pipes and waits for it, whatever the test did
        try:
            yield runner
        finally:
            if runner.process.poll() is None:
                runner.process.kill()


@pytest.fixture
def bare_app(fake_slack_runner: FakeSlackRunner) -> Iterator[str]:
    """The bare app's /slack/events URL, served in its own process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    info = fake_slack_runner.info
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": info["bot_token"],
        "SLACK_SIGNING_SECRET": info["signing_secret"],
        "SLACK_API_URL": info["api_url"],
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers.bare_app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        process.terminate()
        process.wait(timeout=15)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the bare app exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the bare app did not listen")


def _command(info: dict[str, str]) -> str:
    fields = signing.slash_command(
        text="send --yes hello",
        response_url=f"{info['base_url']}/response/abc",
        user_id=info["user_id"],
        team_id=info["team_id"],
    )
    return signing.form_body(fields)


def test_bare_app_acks_a_signed_push_and_refuses_a_bad_signature(
    fake_slack_runner: FakeSlackRunner, bare_app: str
) -> None:
    info = fake_slack_runner.info
    body = _command(info)

    signed = httpx.post(bare_app, content=body, headers=signing.signed_headers(body))
    forged = httpx.post(
        bare_app, content=body, headers=signing.signed_headers(body, secret="not-the-secret")
    )

    assert (signed.status_code, signed.text) == (200, "")
    assert forged.status_code == 401
    # Bolt's single-workspace authorization asked the fake who the token is, like the real app.
    assert fake_slack_runner.counts()["calls"] == {"auth.test": 1}


def test_fake_slack_runner_counts_replies_by_their_opening_words(
    fake_slack_runner: FakeSlackRunner,
) -> None:
    base = fake_slack_runner.info["base_url"]
    texts = ["`7K3M9Q` (OneSignal `ab-12`) was sent. App `default`", "User `u-1` in app *x*"]

    for number, text in enumerate([*texts, texts[0]]):
        httpx.post(f"{base}/response/r{number}", json={"text": text}).raise_for_status()

    counts = fake_slack_runner.counts()
    assert counts["calls"] == {"response_url": 3}
    assert counts["replies"] == {"was sent.": 2, "User in": 1}
    assert fake_slack_runner.stop() == 0
