"""Pytest fixtures for the Slack side: the fake Slack, signed requests, and the real app served.

    async def test_help(pushops, fake_slack):
        sent = await pushops.post_command("help")
        assert sent.response.status_code == 200
        reply = await sent.reply()

`pushops` serves the real app (bot.server around bot.app.build_app) with uvicorn on
127.0.0.1:0 inside the test's event loop, in HTTP mode, single workspace, no database.
For other settings or services use the `serve_pushops` factory:

    async with serve_pushops(settings, database=db, readiness=check, socket_mode=True) as app:
        ...

The app runs in the test's loop: drive it with `await`, never with blocking calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from slack_bolt.async_app import AsyncApp

from bot.app import build_app
from bot.listener import server_config
from bot.server import build_server
from bot.services import ReadinessCheck, Services, build_services
from bot.settings import Settings
from storage.crypto import KeyRing
from storage.db import Database
from tests.fakes import signing
from tests.fakes.slack import (
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_TEAM_ID,
    DEFAULT_USER_ID,
    FakeSlack,
    serving,
)
from tests.plugins.database import open_migrated, register_secret


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    """The one fake Slack of the session (use `fake_slack`, which resets it)."""
    with serving() as fake:
        yield fake


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlack) -> Iterator[FakeSlack]:
    """The fake Slack, reset: workspace T0PUSHOPS (bot token DEFAULT_BOT_TOKEN), user U0ALICE.

    The test fails if the fake refused any message, view or form answer as Slack would (see
    `tests.fakes.blockkit`) and the test did not take the refusal itself, or if, with rate
    limits on, a call was repeated before the `Retry-After` of its 429 ran out.
    """
    fake_slack_server.reset()
    yield fake_slack_server
    refused = fake_slack_server.take_refusals()
    if refused:
        pytest.fail(
            "Slack would refuse what PushOps sent:\n" + "\n".join(str(r) for r in refused),
            pytrace=False,
        )
    early = fake_slack_server.early_retries
    if early:
        pytest.fail(
            "PushOps did not wait out Slack's Retry-After:\n" + "\n".join(map(str, early)),
            pytrace=False,
        )


@pytest.fixture
def slack_signing_secret() -> str:
    """The signing secret the served app verifies with."""
    return signing.DEFAULT_SIGNING_SECRET


def make_settings(fake: FakeSlack, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a single-workspace app talking to `fake`; `overrides` by field name."""
    values: dict[str, Any] = {
        "slack_bot_token": DEFAULT_BOT_TOKEN,
        "slack_signing_secret": signing.DEFAULT_SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "onesignal_api_url": "http://127.0.0.1:9",
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'pushops.db'}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, tmp_path: Path) -> Settings:
    """Single-workspace HTTP-mode settings pointing at the fake Slack."""
    return make_settings(fake_slack, tmp_path)


@dataclass
class SentCommand:
    """A slash command sent to the app: Slack's view of the answer and of the replies."""

    fake: FakeSlack
    response_url: str
    response: httpx.Response | None = None  # HTTP mode: the app's answer to the POST
    ack: dict[str, Any] | None = None  # Socket Mode: the app's ack of the envelope

    async def reply(
        self,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> dict[str, Any]:
        """The `count`-th body the app posted to this command's response_url."""
        return await self.fake.wait_for_reply(self.response_url, timeout=timeout, count=count)

    def replies(self) -> list[dict[str, Any]]:
        """Every body posted so far to this command's response_url."""
        return self.fake.replies(self.response_url)


@dataclass
class PushOps:
    """The real app served on 127.0.0.1, and ways to talk to it as Slack does."""

    base_url: str
    settings: Settings
    services: Services
    fake: FakeSlack
    http: httpx.AsyncClient
    app: Any = field(repr=False)

    @property
    def secret(self) -> str:
        value = self.settings.slack_signing_secret
        return value.get_secret_value() if value else ""

    async def post_signed(
        self,
        body: str,
        *,
        content_type: str = signing.FORM,
        secret: str | None = None,
        timestamp: int | None = None,
        path: str = "/slack/events",
    ) -> httpx.Response:
        """POST `body` signed like Slack (with `secret`/`timestamp` overridable to test 401s)."""
        headers = signing.signed_headers(
            body,
            secret=self.secret if secret is None else secret,
            timestamp=timestamp,
            content_type=content_type,
        )
        return await self.http.post(path, content=body, headers=headers)

    async def post_command(
        self,
        text: str,
        *,
        user: str = DEFAULT_USER_ID,
        team: str = DEFAULT_TEAM_ID,
        channel: str = "C0GENERAL",
        command: str = "/push",
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> SentCommand:
        """Send `/push <text>` as Slack does, signed, with a response_url at the fake."""
        response_url = self.fake.new_response_url()
        fields = signing.slash_command(
            text=text,
            response_url=response_url,
            user_id=user,
            team_id=team,
            channel_id=channel,
            command=command,
        )
        response = await self.post_signed(
            signing.form_body(fields), secret=secret, timestamp=timestamp
        )
        return SentCommand(fake=self.fake, response_url=response_url, response=response)

    async def post_action(self, payload: dict[str, Any], **sign: Any) -> httpx.Response:
        """Send an interactive payload (see tests.fakes.signing.block_actions/view_submission).

        A view submission carries the view the fake shows under its id, as Slack sends it;
        the app's answer (`response_action`) is checked against that view like Slack does.
        """
        view = None
        if payload.get("type") == "view_submission":
            payload, view = self._as_shown(payload)
        response = await self.post_signed(signing.interactive_body(payload), **sign)
        if view is not None and response.status_code == 200:
            self.fake.check_view_answer(_answer(response), view)
        return response

    def _as_shown(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """`payload` with its view's blocks as the fake holds them (when the test gave none)."""
        view = dict(payload["view"])
        shown = self.fake.view(str(view.get("id")))
        if shown is not None and not view.get("blocks"):
            view["blocks"] = shown.get("blocks", [])
        return {**payload, "view": view}, view

    async def post_event(self, envelope: dict[str, Any], **sign: Any) -> httpx.Response:
        """Send an Events API envelope (see tests.fakes.signing.event_callback)."""
        return await self.post_signed(
            signing.event_body(envelope), content_type=signing.JSON, **sign
        )

    async def socket_command(
        self,
        text: str,
        *,
        user: str = DEFAULT_USER_ID,
        team: str = DEFAULT_TEAM_ID,
        channel: str = "C0GENERAL",
    ) -> SentCommand:
        """Send `/push <text>` over Socket Mode and wait for the app's ack."""
        response_url = self.fake.new_response_url()
        payload = signing.slash_command(
            text=text, response_url=response_url, user_id=user, team_id=team, channel_id=channel
        )
        envelope_id = await self.fake.push_envelope(
            "slash_commands", payload, accepts_response_payload=True
        )
        ack = await self.fake.wait_ack(envelope_id)
        if isinstance(ack.get("payload"), dict):
            self.fake.check_ack_message(ack["payload"])
        return SentCommand(fake=self.fake, response_url=response_url, ack=ack)


def default_services(
    settings: Settings, database: Database, keyring: KeyRing, **build: Any
) -> Services:
    """The services of production (`bot.services.build_services`) on `database` and
    `keyring`; `build` goes to build_services (a short `policy`, `sweep_interval`, a
    `readiness`)."""
    return build_services(settings, database=database, keyring=keyring, **build)


@dataclass(frozen=True)
class Storage:
    """Where a served app without a database of the test's own keeps its data: a copy of the
    migrated SQLite template in the test's directory, sealed with the test's key ring."""

    template: Path
    directory: Path
    keyring: KeyRing

    async def open(self) -> Database:
        """A fresh copy of the template, opened (each call its own file)."""
        path = self.directory / f"served-{next(_COPIES)}.db"
        return await open_migrated(f"sqlite:///{path}", self.template, self.keyring)


_COPIES = itertools.count()


@contextlib.asynccontextmanager
async def serve(
    fake: FakeSlack,
    settings: Settings,
    storage: Storage,
    *,
    services: Services | None = None,
    readiness: ReadinessCheck | None = None,
    socket_mode: bool | None = None,
    app: AsyncApp | None = None,
    body_timeout: float | None = None,
    **listen: Any,
) -> AsyncIterator[PushOps]:
    """Serve the real app for `settings` on 127.0.0.1:0 in this event loop.

    Without `services`, production's services on a copy of the migrated SQLite template
    (`storage`). `app` serves a Bolt app the test assembled itself (e.g. with its own subcommands)
    instead of `build_app(settings, services=services)`. `body_timeout` shortens the door's
    deadline for a request body; `listen` goes to `bot.listener.server_config` (e.g. a
    shorter `header_timeout`).
    """
    for secret in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.slack_client_secret,
    ):
        if secret is not None:
            register_secret(secret)  # the log guard fails the test if one shows up in a log
    if services is None:
        database = await storage.open()
        services = default_services(settings, database, storage.keyring, readiness=readiness)
    socket_mode = bool(settings.slack_app_token) if socket_mode is None else socket_mode
    app = app or build_app(settings, services=services)
    asgi = build_server(app, services, socket_mode=socket_mode, body_timeout=body_timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(asgi, log_level="warning", **listen))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # startup failed: raise its error
            raise RuntimeError("the app stopped during startup")
        await asyncio.sleep(0.005)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            if socket_mode:
                await fake.wait_socket_connected()
            yield PushOps(
                base_url=base_url,
                settings=settings,
                services=services,
                fake=fake,
                http=http,
                app=app,
            )
    finally:
        server.should_exit = True
        await task


def _answer(response: httpx.Response) -> Any:
    """The JSON body of the app's answer to a view submission (None when empty)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


ServeFactory = Callable[..., contextlib.AbstractAsyncContextManager[PushOps]]


@pytest.fixture
def serve_pushops(
    fake_slack: FakeSlack, _migrated_sqlite_template: Path, keyring: KeyRing, tmp_path: Path
) -> ServeFactory:
    """`serve_pushops(settings, *, services=None, readiness=None, socket_mode=None, app=None)`."""
    storage = Storage(_migrated_sqlite_template, tmp_path, keyring)

    def factory(
        settings: Settings, **kwargs: Any
    ) -> contextlib.AbstractAsyncContextManager[PushOps]:
        return serve(fake_slack, settings, storage, **kwargs)

    return factory


@pytest.fixture
async def pushops(serve_pushops: ServeFactory, slack_settings: Settings) -> AsyncIterator[PushOps]:
    """The real app in HTTP mode with `slack_settings`, served for one test."""
    async with serve_pushops(slack_settings) as running:
        yield running


@pytest.fixture
async def pushops_socket(
    serve_pushops: ServeFactory, fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[PushOps]:
    """The real app in Socket Mode (SLACK_APP_TOKEN set), connected to the fake's websocket."""
    settings = make_settings(fake_slack, tmp_path, slack_app_token=DEFAULT_APP_TOKEN)
    async with serve_pushops(settings) as running:
        yield running
