"""The baseline of benchmarks/ack_latency.py: a Bolt app whose `/push` (and Cancel button,
and `app_home_opened`) only acks.

    SLACK_BOT_TOKEN=… SLACK_SIGNING_SECRET=… SLACK_API_URL=… PORT=… \
        python -m benchmarks.servers.bare_app      (from the repository's root)

Served like `pushops serve` serves PushOps: the same listening socket (bot.cli_serve.bind),
uvicorn settings, Starlette route and Bolt's AsyncSlackRequestHandler, the same signature
checks and single-workspace authorization (one `auth.test`, then cached), and uvicorn's
access log at INFO on standard error. Nothing of PushOps' own listeners, middleware or
services runs, so the difference to the real app is what PushOps does before its ack.
"""

from __future__ import annotations

import asyncio
import logging
import os

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot import const
from bot.cli_serve import bind

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # bot.logs' text format


def build_bare_app(
    *, token: str, signing_secret: str, api_url: str, process_before_response: bool = False
) -> AsyncApp:
    """An AsyncApp whose `/push`, Cancel button and `app_home_opened` only ack.

    `process_before_response`: Bolt's setting of that name (PushOps sets it; off by default,
    Bolt then runs the listener as a task and looks every 10 ms whether it acked).
    """
    app = AsyncApp(
        name="bare",
        token=token,
        signing_secret=signing_secret,
        process_before_response=process_before_response,
    )
    app.client.base_url = api_url

    async def on_push(ack: AsyncAck) -> None:
        await ack()

    async def on_event() -> None:
        pass  # Bolt acknowledges events itself

    app.command(const.SLASH_COMMAND)(on_push)
    app.action(const.ACTION_CANCEL_SEND)(on_push)  # a Cancel button: acked, nothing else
    app.event(const.EVENT_APP_HOME_OPENED)(on_event)
    return app


def build_bare_server(app: AsyncApp) -> Starlette:
    """`POST /slack/events` through Bolt's Starlette adapter, as bot.server does."""
    slack = AsyncSlackRequestHandler(app)

    async def slack_events(request: Request) -> Response:
        return await slack.handle(request)

    return Starlette(routes=[Route(const.PATH_EVENTS, slack_events, methods=["POST"])])


async def serve() -> None:
    app = build_bare_app(
        token=os.environ["SLACK_BOT_TOKEN"],
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        api_url=os.environ["SLACK_API_URL"],
        process_before_response=os.environ.get("BARE_PROCESS_BEFORE_RESPONSE") == "1",
    )
    listener = bind(os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"]))
    config = uvicorn.Config(
        build_bare_server(app), lifespan="on", log_config=None, proxy_headers=True
    )
    await uvicorn.Server(config).serve(sockets=[listener])


def main() -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
