"""The ASGI app served by uvicorn: Slack's door, OAuth pages, health, readiness and metrics.

In Socket Mode the same server runs without `/slack/events` (Slack talks over the
websocket the lifespan opens) and keeps the health, readiness and metrics endpoints;
`pushops worker --metrics-port` serves those three alone (`build_operations_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Final

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import const
from bot.door import Refused, SeenRequests, SlackDoor
from bot.services import Services

if TYPE_CHECKING:  # imported where used: see `_connect_socket_mode`
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger(__name__)

READINESS_TIMEOUT: Final = 3.0
"""Seconds `/readyz` waits for the readiness check before answering 503."""


def build_server(
    app: AsyncApp,
    services: Services,
    *,
    socket_mode: bool = False,
    body_timeout: float | None = None,
    started: Callable[[], None] | None = None,
) -> Starlette:
    """The Starlette app around `app`; in Socket Mode its lifespan holds the websocket.

    `body_timeout`: seconds a request body may take (default `bot.door.BODY_TIMEOUT`).
    `started`: called once the services started, before the first request is served
    (`pushops serve` sets the process's garbage collector there; nothing process-wide
    happens here otherwise, so tests serve the app in their own process).
    """
    slack = AsyncSlackRequestHandler(app)
    door = slack_door(services)
    if body_timeout is not None:
        door.timeout = body_timeout

    async def slack_events(request: Request) -> Response:
        started = time.perf_counter()
        with services.admission.acking():  # heavy work after earlier acks lets this one go first
            try:
                admitted = await door.admit(request)
            except Refused as refused:
                response = refused.response()
            else:
                response = await slack.handle(admitted)
        services.metrics.slack_ack_seconds.observe(time.perf_counter() - started)
        services.metrics.http_events.labels(status=str(response.status_code)).inc()
        return response

    async def oauth_pages(request: Request) -> Response:
        return await slack.handle(request)

    routes = _operations_routes(services)
    if not socket_mode:
        routes.append(Route(const.PATH_EVENTS, slack_events, methods=["POST"]))
    if app.oauth_flow is not None:
        routes.append(Route(app.oauth_flow.install_path, oauth_pages, methods=["GET"]))
        routes.append(Route(app.oauth_flow.redirect_uri_path, oauth_pages, methods=["GET"]))
    return Starlette(routes=routes, lifespan=_lifespan(app, services, socket_mode, started))


def build_operations_server(services: Services) -> Starlette:
    """Health, readiness and metrics alone, for a process that serves no Slack requests.

    Its owner starts and stops `services` itself (no lifespan here).
    """
    return Starlette(routes=_operations_routes(services))


def _operations_routes(services: Services) -> list[Route]:
    """`/healthz`, `/readyz` and `/metrics`."""

    async def readyz(_: Request) -> Response:
        return await _readiness(services)

    async def metrics(_: Request) -> Response:
        text = await services.render_metrics()
        return Response(text, media_type=services.metrics.content_type)

    return [
        Route(const.PATH_HEALTHZ, _healthz, methods=["GET"]),
        Route(const.PATH_READYZ, readyz, methods=["GET"]),
        Route(const.PATH_METRICS, metrics, methods=["GET"]),
    ]


def slack_door(services: Services) -> SlackDoor:
    """The checks before Bolt: body bounds, signature, replays (remembered in the database)."""
    secret = services.settings.slack_signing_secret
    return SlackDoor(
        signing_secret=secret.get_secret_value() if secret is not None else "",
        seen=SeenRequests(services.database, clock=services.clock),
        api_url=services.settings.slack_api_url,
    )


async def _healthz(_: Request) -> Response:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def _readiness(services: Services) -> Response:
    """200 when the services can serve (database reachable), 503 with a reason otherwise."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            await services.check_ready()
    except Exception as e:  # noqa: BLE001 - whatever the check raises means "not ready"
        reason = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
        log.warning("not ready: %s", reason)
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})


def _lifespan(
    app: AsyncApp, services: Services, socket_mode: bool, started: Callable[[], None] | None
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Start the services (and the Socket Mode connection); close them at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await services.start()
        if started is not None:
            started()
        socket = await _connect_socket_mode(app, services) if socket_mode else None
        try:
            yield
        finally:
            if socket is not None:
                await socket.close_async()  # type: ignore[no-untyped-call]  # unannotated in Bolt
            await services.aclose()

    return lifespan


async def _connect_socket_mode(app: AsyncApp, services: Services) -> AsyncSocketModeHandler:
    """Open the Socket Mode websocket (through `apps.connections.open` at SLACK_API_URL)."""
    # Imported here, at the start of a Socket Mode server only: an HTTP one never needs its
    # two dozen modules (slack_sdk's Socket Mode client among them).
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    token = services.settings.slack_app_token
    if token is None:
        raise ValueError("Socket Mode needs SLACK_APP_TOKEN")
    handler = AsyncSocketModeHandler(app, app_token=token.get_secret_value(), web_client=app.client)
    await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in Bolt
    log.info("connected to Slack over Socket Mode")
    return handler
