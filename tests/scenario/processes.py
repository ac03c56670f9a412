"""Real `pushops` processes against the fakes: their environment, start, readiness and end.

The database and the fakes live in the test process and outlive the `pushops` processes, as
they would in production; each process writes its output to a file the test reads.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Final

import httpx

from storage.db import Database
from tests.fakes import signing
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID, FakeSlack

STARTED = re.compile(r"scheduler started \(worker [^)]*\): (\d+) timers armed")


def environment(
    database: Database,
    secret_key: str,
    fake: FakeOneSignal,
    tmp: Path,
    *,
    grace: float = 600,
    slack: FakeSlack | None = None,
) -> dict[str, str]:
    """The environment of a `pushops` process on `database`, talking to the fakes.

    With `slack`, the single-workspace Slack settings of the fake's default workspace
    (bot token, signing secret, API URL); without, no Slack setting at all.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_", "DATABASE_URL"))
    }
    url = database.engine.url
    env.update(
        DATABASE_URL=url.set(drivername=url.get_backend_name()).render_as_string(
            hide_password=False
        ),
        PUSHOPS_SECRET_KEY=secret_key,
        PUSHOPS_DATA_DIR=str(tmp / "data"),
        PUSHOPS_MISFIRE_GRACE=str(grace),
        ONESIGNAL_API_URL=fake.url,
    )
    if slack is not None:
        env.update(
            SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
            SLACK_SIGNING_SECRET=signing.DEFAULT_SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
        )
    return env


ROOT: Final = Path(__file__).resolve().parents[2]
"""The project's root."""


class Process:
    """One `pushops <command>` process, its output appended to `log`."""

    command = ""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process (returns at once; see the subclasses for readiness)."""
        with self.log.open("a") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                self.command,
                env=self.env,
                stdout=out,
                stderr=out,
                cwd=self.log.parent,
            )

    def output(self) -> str:
        """What the process wrote so far."""
        return self.log.read_text() if self.log.exists() else ""

    def check_alive(self) -> None:
        """Fail the test, with the output, when the process has ended."""
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.command} exited early:\n{self.output()}")

    async def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> int:
        """SIGTERM, the normal way to stop; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            return await self.process.wait()


class Worker(Process):
    """`pushops worker`."""

    command = "worker"

    async def armed(self, seconds: float = 20.0) -> int:
        """Wait until the scheduler reports it started; how many timers it armed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = STARTED.findall(self.output())
            if found:
                return int(found[-1])
            self.check_alive()
            await asyncio.sleep(0.02)
        raise AssertionError(f"worker did not start:\n{self.output()}")


class WorkerLike(Worker):
    """A test's own program (`python -m <module>`), started and watched as `pushops worker` is."""

    module = ""

    async def start(self) -> None:
        """Start it from the project's root, where `tests` can be imported."""
        with self.log.open("a") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, stdout=out, stderr=out, cwd=ROOT
            )


class Server(Process):
    """`pushops serve` over HTTP on a free port of 127.0.0.1."""

    command = "serve"

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        super().__init__({**env, "HOST": "127.0.0.1", "PORT": str(self.port)}, log)

    @property
    def base_url(self) -> str:
        """Where it serves."""
        return f"http://127.0.0.1:{self.port}"

    async def up(self, client: httpx.AsyncClient, seconds: float = 15.0) -> None:
        """Wait until it answers /healthz."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if (await client.get(f"{self.base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"serve did not answer /healthz:\n{self.output()}")

    async def command_from(
        self, client: httpx.AsyncClient, fake: FakeSlack, text: str, *, user: str
    ) -> str:
        """Post `/push <text>` from `user`, signed as Slack does; its response_url."""
        response_url = fake.new_response_url()
        body = signing.form_body(
            signing.slash_command(
                text=text, response_url=response_url, user_id=user, team_id=DEFAULT_TEAM_ID
            )
        )
        response = await client.post(
            f"{self.base_url}/slack/events", content=body, headers=signing.signed_headers(body)
        )
        assert response.status_code == 200, response.text
        return response_url


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
