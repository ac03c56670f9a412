"""The image as an operator runs it, against the fakes and this machine's PostgreSQL.

Run by scripts/docker-smoke, which builds the image and names it in PUSHOPS_DOCKER_IMAGE;
skipped without it (as in `make test`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.docker.containers import (
    IMAGE_ENV,
    Runner,
    docker,
    logs,
    send_now,
    state,
    unique,
    wait_for_health,
    wait_for_notifications,
    wait_until_up,
)
from tests.fakes import signing
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID, FakeSlack
from tests.scenario.processes import free_port

IMAGE = os.environ.get(IMAGE_ENV, "")
pytestmark = [
    pytest.mark.slow,
    # Containers, compose (v1 is slow to start) and a database made and dropped per test.
    pytest.mark.timeout(600),
    pytest.mark.skipif(not IMAGE, reason=f"{IMAGE_ENV} names no image (scripts/docker-smoke)"),
]
STOP_GRACE = 20  # seconds docker stop waits before SIGKILL


@pytest.fixture
def volume() -> Iterator[str]:
    """A named volume for /data, removed afterwards."""
    name = unique("pushops-smoke-data")
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


@pytest.fixture
def runner(postgres_url, volume, fake_slack: FakeSlack, fake_onesignal: FakeOneSignal):
    """Runs the image on the fakes, the new database and the volume; no PUSHOPS_SECRET_KEY."""
    env = {
        "DATABASE_URL": postgres_url,
        "SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN,
        "SLACK_SIGNING_SECRET": signing.DEFAULT_SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "ONESIGNAL_API_URL": fake_onesignal.url,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }
    runner = Runner(image=IMAGE, volume=volume, env=env)
    yield runner
    runner.remove_all()


async def test_image_migrates_checks_serves_sends_stops_and_keeps_its_keys_on_the_volume(
    runner: Runner, fake_slack: FakeSlack, fake_onesignal: FakeOneSignal
):
    api_key = fake_onesignal.app.rest_api_key
    fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
    base_url = f"http://127.0.0.1:{runner.env['PORT']}"
    runner.run("db", "upgrade")
    runner.run(
        "apps", "add", "--team", DEFAULT_TEAM_ID, "--name", "default",
        "--app-id", fake_onesignal.app.id, "--default",
        extra_env={"ONESIGNAL_API_KEY": api_key},
    )  # fmt: skip
    checked = runner.run("check")

    # The first container: serve (the default command), its health checked every second.
    first = runner.start(unique("pushops-smoke-1"), "--health-interval", "1s")
    wait_until_up(first, base_url)
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"{base_url}/readyz", timeout=5)
    health = wait_for_health(first)
    process_status = docker("exec", first, "cat", "/proc/1/status").stdout
    reply = await send_now(base_url, fake_slack, '--user cust-1 "From the first container"')
    sent = wait_for_notifications(fake_onesignal, 1)
    notification_ids = list(fake_onesignal.notifications)
    stop_began = time.monotonic()
    docker("stop", "--time", str(STOP_GRACE), first, timeout=STOP_GRACE + 30)
    stop_took = time.monotonic() - stop_began

    # The second container, new, on the same volume: the key ring generated there by the first
    # decrypts the OneSignal key the first stored.
    second = runner.start(unique("pushops-smoke-2"))
    wait_until_up(second, base_url)
    second_reply = await send_now(base_url, fake_slack, '--user cust-1 "From the second container"')
    sent = wait_for_notifications(fake_onesignal, 2)
    docker("stop", "--time", str(STOP_GRACE), second, timeout=STOP_GRACE + 30)
    output = logs(first) + logs(second) + checked

    assert ready.status_code == 200, ready.text
    assert health == "healthy"
    uid = next(line.split()[1] for line in process_status.splitlines() if line.startswith("Uid:"))
    assert uid != "0"
    assert "was sent" in reply and any(f"`{id_}`" in reply for id_ in notification_ids), reply
    assert "was sent" in second_reply, second_reply
    assert [request.json["contents"]["en"] for request in sent] == [
        "From the first container",
        "From the second container",
    ]
    assert {request.headers["authorization"] for request in sent} == {f"Key {api_key}"}
    assert state(first, "{{.State.ExitCode}}") == "0"
    assert stop_took < STOP_GRACE
    assert state(second, "{{.State.ExitCode}}") == "0"
    assert "Traceback" not in output
    for secret in (api_key, DEFAULT_BOT_TOKEN, signing.DEFAULT_SIGNING_SECRET):
        assert secret not in output


def test_image_runs_as_a_non_root_user_with_data_on_a_volume():
    config = state(IMAGE, "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Cmd}}")

    assert config == 'pushops {"/data":{}} ["serve"]'
