"""compose.yaml as an operator starts it: `compose config`, then migrate, serve and worker up.

Run by scripts/docker-smoke (PUSHOPS_DOCKER_IMAGE names the image it built). No image can be
pulled here, so the postgres service is left out and the replicas use this machine's
PostgreSQL, on the host's network, as the smoke test's containers must (see _on_this_machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from storage.crypto import generate_key
from tests.docker.containers import (
    IMAGE_ENV,
    docker_client,
    send_now,
    unique,
    wait_for_notifications,
)
from tests.fakes import signing
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import DEFAULT_BOT_TOKEN, FakeSlack
from tests.scenario.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get(IMAGE_ENV, "")
pytestmark = [
    pytest.mark.slow,
    # Containers, compose (v1 is slow to start) and a database made and dropped per test.
    pytest.mark.timeout(600),
    pytest.mark.skipif(not IMAGE, reason=f"{IMAGE_ENV} names no image (scripts/docker-smoke)"),
]


def _compose_command() -> list[str]:
    """`docker compose` (v2), else `docker-compose` (v1, Debian's package)."""
    client = docker_client()
    if subprocess.run([client, "compose", "version"], capture_output=True).returncode == 0:
        return [client, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.fail("neither docker compose nor docker-compose is installed")
    return [legacy]


class Compose:
    """One compose project from `file`, with the settings of `env_file`."""

    def __init__(self, file: Path, env_file: Path) -> None:
        self.project = unique("pushops-smoke")
        self.base = [
            *_compose_command(),
            "--project-name", self.project,
            "--project-directory", str(ROOT),
            "--env-file", str(env_file),
            "-f", str(file),
        ]  # fmt: skip
        self.env = {**os.environ, "PUSHOPS_ENV_FILE": str(env_file)}

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"compose {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def container(self, service: str) -> str:
        return self("ps", "-q", service).stdout.strip()

    def exit_code(self, service: str) -> str:
        container = self.container(service)
        return subprocess.run(
            [docker_client(), "inspect", "--format", "{{.State.ExitCode}}", container],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    def logs(self) -> str:
        done = subprocess.run(
            [*self.base, "logs", "--no-color"], env=self.env, capture_output=True, text=True
        )
        return done.stdout + done.stderr


def _env_file(path: Path, fake_slack: FakeSlack, fake_onesignal: FakeOneSignal, port: int) -> Path:
    path.write_text(
        "\n".join(
            [
                "# written by tests/docker/test_compose.py",
                f"PUSHOPS_IMAGE={IMAGE}",
                "POSTGRES_PASSWORD=unused0here",
                f"PUSHOPS_SECRET_KEY={generate_key()}",
                f"SLACK_BOT_TOKEN={DEFAULT_BOT_TOKEN}",
                f"SLACK_SIGNING_SECRET={signing.DEFAULT_SIGNING_SECRET}",
                f"SLACK_API_URL={fake_slack.api_url}",
                f"ONESIGNAL_API_URL={fake_onesignal.url}",
                f"ONESIGNAL_APP_ID={fake_onesignal.app.id}",
                f"ONESIGNAL_API_KEY={fake_onesignal.app.rest_api_key}",
                "HOST=127.0.0.1",
                f"PORT={port}",
                "",
            ]
        )
    )
    return path


def _on_this_machine(path: Path, database_url: str, metrics_port: int) -> Path:
    """compose.yaml as it must run here: no postgres service (the machine's PostgreSQL instead),
    every replica on the host's network (which takes no published ports), the worker's
    metrics on a free port. Everything else, the order of the services included, is kept."""
    project = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = project["services"]
    del services["postgres"]
    del services["migrate"]["depends_on"]
    for service in services.values():
        service["network_mode"] = "host"
        service["environment"]["DATABASE_URL"] = database_url
        service.pop("ports", None)
    services["worker"]["command"] = ["worker", "--metrics-port", str(metrics_port)]
    probe = services["worker"]["healthcheck"]["test"]
    probe[-1] = probe[-1].replace(":9100/", f":{metrics_port}/")
    path.write_text(yaml.safe_dump(project))
    return path


def _wait_up(url: str, compose: Compose, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered:\n{compose.logs()}")


async def test_compose_file_starts_migrate_then_serve_and_worker_which_send(
    postgres_url: str,
    fake_slack: FakeSlack,
    fake_onesignal: FakeOneSignal,
    tmp_path: Path,
):
    fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
    port, metrics_port = free_port(), free_port()
    env_file = _env_file(tmp_path / "pushops.env", fake_slack, fake_onesignal, port)
    config = yaml.safe_load(Compose(ROOT / "compose.yaml", env_file)("config").stdout)
    here = _on_this_machine(tmp_path / "compose.yaml", postgres_url, metrics_port)
    compose = Compose(here, env_file)
    try:
        # serve and worker wait for migrate to have succeeded (depends_on), as in production.
        compose("up", "-d", "--no-build", "serve", "worker")
        _wait_up(f"http://127.0.0.1:{port}/healthz", compose)
        _wait_up(f"http://127.0.0.1:{metrics_port}/healthz", compose)
        migrated = compose.exit_code("migrate")
        async with httpx.AsyncClient() as client:
            ready = await client.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        reply = await send_now(
            f"http://127.0.0.1:{port}", fake_slack, '--user cust-1 "Through compose"'
        )
        sent = wait_for_notifications(fake_onesignal, 1)
        compose("stop", "--timeout", "20", "serve", "worker", timeout=120)
        codes = {service: compose.exit_code(service) for service in ("serve", "worker")}
        output = compose.logs()
    finally:
        compose("down", "--volumes", "--timeout", "5")

    assert set(config["services"]) == {"postgres", "migrate", "serve", "worker"}
    assert config["services"]["serve"]["environment"]["PUSHOPS_SECRET_KEY"]
    assert migrated == "0"
    assert ready.status_code == 200
    assert [request.json["contents"]["en"] for request in sent] == ["Through compose"]
    assert "was sent" in reply, reply
    assert codes == {"serve": "0", "worker": "0"}
    assert "PushOps worker running" in output
    assert "Traceback" not in output
    assert fake_onesignal.app.rest_api_key not in output
