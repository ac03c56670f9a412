"""Containers of the PushOps image for the smoke test: run, wait, stop, read their logs.

Every container uses the host's network (this machine gives containers no other way to reach
127.0.0.1, where the fakes and PostgreSQL listen). Values of the environment are passed by
name (`-e NAME`), so no secret is on a command line.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from tests.fakes import signing
from tests.fakes.onesignal import FakeOneSignal, RecordedRequest
from tests.fakes.slack import DEFAULT_TEAM_ID, DEFAULT_USER_ID, FakeSlack

IMAGE_ENV = "PUSHOPS_DOCKER_IMAGE"
DOCKER_ENV = "PUSHOPS_DOCKER"


def docker_client() -> str:
    """The docker client scripts/docker-smoke chose."""
    return os.environ.get(DOCKER_ENV, "docker")


def docker(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS`; fails with its output when it fails and `check` is set."""
    done = subprocess.run(
        [docker_client(), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done


def unique(prefix: str) -> str:
    """A name no earlier run left behind."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Runner:
    """Runs the image with one environment and one volume on /data."""

    image: str
    volume: str
    env: dict[str, str]
    started: list[str] = field(default_factory=list)

    def _args(self, extra_env: Mapping[str, str]) -> list[str]:
        names = sorted({*self.env, *extra_env})
        args = ["--network", "host", "-v", f"{self.volume}:/data"]
        for name in names:
            args += ["-e", name]
        return args

    def run(self, *command: str, extra_env: Mapping[str, str] | None = None) -> str:
        """`pushops COMMAND` in a throwaway container; its output (stdout and stderr)."""
        extra = dict(extra_env or {})
        done = docker(
            "run",
            "--rm",
            *self._args(extra),
            self.image,
            *command,
            env={**self.env, **extra},
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, (
            f"pushops {' '.join(command)}: exit {done.returncode}\n{output}"
        )
        return output

    def start(self, name: str, *options: str, command: Sequence[str] = ()) -> str:
        """A detached container (the image's default command unless `command`)."""
        docker(
            "run", "-d", "--name", name, *options, *self._args({}), self.image, *command,
            env=self.env,
        )  # fmt: skip
        self.started.append(name)
        return name

    def remove_all(self) -> None:
        """Remove every container started, running or not."""
        for name in self.started:
            docker("rm", "-f", name, check=False)


def state(name: str, template: str) -> str:
    """One field of `docker inspect`."""
    return docker("inspect", "--format", template, name).stdout.strip()


def logs(name: str) -> str:
    """Everything the container wrote."""
    done = docker("logs", name, check=False)
    return done.stdout + done.stderr


def wait_until_up(name: str, base_url: str, seconds: float = 60) -> None:
    """Until the container answers /healthz; fails with its log if it ends or never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if state(name, "{{.State.Running}}") != "true":
            raise AssertionError(f"{name} ended:\n{logs(name)}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{name} did not answer /healthz:\n{logs(name)}")


def wait_for_health(name: str, seconds: float = 60) -> str:
    """Docker's own verdict from the image's HEALTHCHECK, once it has one."""
    deadline = time.monotonic() + seconds
    status = ""
    while time.monotonic() < deadline:
        status = state(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")
        if status in ("healthy", "unhealthy"):
            return status
        time.sleep(0.5)
    return status


async def send_now(base_url: str, fake_slack: FakeSlack, text: str) -> str:
    """A signed `/push send --yes TEXT` from the fake's default user; the reply, as text."""
    response_url = fake_slack.new_response_url()
    body = signing.form_body(
        signing.slash_command(
            text=f"send --yes {text}",
            response_url=response_url,
            user_id=DEFAULT_USER_ID,
            team_id=DEFAULT_TEAM_ID,
        )
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        answer = await client.post(
            "/slack/events", content=body, headers=signing.signed_headers(body)
        )
    assert answer.status_code == 200, answer.text
    return str(await fake_slack.wait_for_reply(response_url, timeout=20))


def notifications(fake: FakeOneSignal) -> list[RecordedRequest]:
    """The create-notification requests the fake OneSignal received."""
    return fake.requests_to("POST", "/notifications")


def wait_for_notifications(
    fake: FakeOneSignal, count: int, seconds: float = 20
) -> list[RecordedRequest]:
    """Those requests, once there are `count` (or the time is up)."""
    deadline = time.monotonic() + seconds
    while len(notifications(fake)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return notifications(fake)
