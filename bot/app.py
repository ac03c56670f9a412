"""`build_app`: the Bolt app for one process, single-workspace or multi-workspace (OAuth).

An app factory, never an import-time app: settings and services come in, an `AsyncApp`
with every listener of the Slack surface comes out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final
from urllib.parse import urljoin

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

import commands
from bot import const
from bot.default_app import default_app_hook
from bot.errors import report_unexpected
from bot.installations import ExpiringOAuthStateStore
from bot.services import Services
from bot.settings import Settings
from bot.slack_clients import configured, installation_store, is_oauth_mode
from bot.slack_http import pooled_respond_middleware
from commands.tenancy import own_workspace_only

log = logging.getLogger(__name__)

OAUTH_STATE_TTL: Final = 600  # seconds an install link stays valid
NOT_INSTALLED: Final = (
    "PushOps is not installed in this workspace, or its installation was removed. "
    "Ask a Slack admin to install it again."
)


ACK_WHEN_LISTENER_RETURNS: Final = True
"""Bolt's `process_before_response`: answer Slack as soon as the listener returns.

Otherwise Bolt runs each listener as a task of its own and looks every 10 ms whether it has
acked: each ack waits up to 10 ms more, and every request awaiting its ack wakes the event
loop a hundred times a second, which under load takes time from the acks themselves. Every
listener here acks, hands what is slow to `Services.after_ack` and returns, so returning is
acking.
"""


class AppConfigError(ValueError):
    """The settings or services cannot make an app; the message says what is missing."""


def build_app(settings: Settings, *, services: Services) -> AsyncApp:
    """The Bolt app with every listener registered.

    Raises AppConfigError when neither a bot token nor OAuth credentials are set, or when
    OAuth mode has no database (or key ring) to keep installations in.
    """
    if is_oauth_mode(settings):
        client = configured(AsyncWebClient(), settings, services.metrics.slack_api_error)
        app = _oauth_app(settings, services, client)
        app.enable_token_revocation_listeners()
    elif settings.slack_bot_token is not None:
        # The token goes in as such (handing Bolt a client instead makes it warn whenever
        # SLACK_BOT_TOKEN is in the environment); the client Bolt builds is then pointed at
        # SLACK_API_URL.
        app = AsyncApp(
            name="pushops",
            token=settings.slack_bot_token.get_secret_value(),
            signing_secret=_secret(settings.slack_signing_secret),
            user_facing_authorize_error_message=NOT_INSTALLED,
            process_before_response=ACK_WHEN_LISTENER_RETURNS,
        )
        # Bolt copies these into each request's client
        configured(app.client, settings, services.metrics.slack_api_error)
        _log_lifecycle_events(app)
        app.middleware(own_workspace_only(services))
        services.on_startup.append(default_app_hook(settings, services, app.client))
    else:
        raise AppConfigError("Set SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET.")
    app.middleware(_measure(services))
    app.middleware(
        pooled_respond_middleware(
            services.slack_http, settings.slack_api_url, services.metrics.slack_api_error
        )
    )
    services.on_startup.append(partial(_pool_web_api_calls, app, services))
    app.error(_error_handler(services))
    commands.register(app, services)
    return app


async def _pool_web_api_calls(app: AsyncApp, services: Services) -> None:
    """Web API calls go through the shared session (Bolt hands it to each request's client)."""
    app.client.session = services.slack_http.session()


def _secret(value: Any) -> str:
    # Bolt falls back to os.environ when given None; "" keeps the settings the only source.
    return value.get_secret_value() if value is not None else ""


def authorization_url(settings: Settings) -> str:
    """Slack's "Add to Slack" page, next to the Web API (`…/api/` -> `…/oauth/v2/authorize`)."""
    return urljoin(settings.slack_api_url, "../oauth/v2/authorize")


def _oauth_app(settings: Settings, services: Services, client: AsyncWebClient) -> AsyncApp:
    """Multi-workspace mode: installations in the database, bot tokens per team."""
    client_id = str(settings.slack_client_id)
    client_secret = _secret(settings.slack_client_secret)
    engine = services.database.engine
    installations = installation_store(settings, services.database, services.keyring)
    oauth_settings = AsyncOAuthSettings(
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(const.BOT_SCOPES),
        user_scopes=[],
        install_path=const.PATH_INSTALL,
        redirect_uri_path=const.PATH_OAUTH_REDIRECT,
        authorization_url=authorization_url(settings),
        installation_store=installations,
        installation_store_bot_only=True,
        state_store=ExpiringOAuthStateStore(expiration_seconds=OAUTH_STATE_TTL, engine=engine),
        state_expiration_seconds=OAUTH_STATE_TTL,
    )
    # Our own authorize, for two things Bolt's default lacks: a cache of auth.test results
    # (so a request costs one database read, not an extra Web API call) and our client
    # (so token rotation also talks to SLACK_API_URL).
    authorize = AsyncInstallationStoreAuthorize(
        logger=logging.getLogger("slack_bolt.authorize"),
        installation_store=installations,
        client_id=client_id,
        client_secret=client_secret,
        bot_only=True,
        cache_enabled=True,
        client=client,
    )
    return AsyncApp(
        name="pushops",
        client=client,
        signing_secret=_secret(settings.slack_signing_secret),
        user_facing_authorize_error_message=NOT_INSTALLED,
        process_before_response=ACK_WHEN_LISTENER_RETURNS,
        oauth_settings=oauth_settings,
        installation_store=installations,
        installation_store_bot_only=True,
        # Bolt takes an AsyncAuthorize instance here (it checks with isinstance) though the
        # parameter's hint only names plain callables.
        authorize=authorize,  # type: ignore[arg-type]
    )


def _log_lifecycle_events(app: AsyncApp) -> None:
    """Single-workspace mode keeps no installations: an uninstall is only worth a log line."""

    async def on_lifecycle_event(event: dict[str, Any], context: dict[str, Any]) -> None:
        log.warning("Slack sent %s for team %s", event.get("type"), context.get("team_id"))

    app.event(const.EVENT_APP_UNINSTALLED)(on_lifecycle_event)
    app.event(const.EVENT_TOKENS_REVOKED)(on_lifecycle_event)


Next = Callable[[], Awaitable[BoltResponse]]


def _measure(services: Services) -> Callable[..., Awaitable[BoltResponse]]:
    """Middleware counting requests by kind.

    (Bolt runs the listeners after its global middleware, not inside `next()`, so the time
    to the ack is measured around Bolt instead, by bot.server.)
    """

    async def measure(req: AsyncBoltRequest, next: Next) -> BoltResponse:
        services.metrics.request_kind(_kind(req.body))
        return await next()

    return measure


def _kind(body: dict[str, Any]) -> str:
    """command, block_actions, view_submission, event... (the metrics count only the kinds
    they know: a request of a made-up kind adds no series)."""
    if "command" in body:
        return "command"
    kind = body.get("type")
    if kind == "event_callback":
        return "event"
    return kind if isinstance(kind, str) and kind.isidentifier() and len(kind) < 40 else "other"


def _error_handler(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Bolt's hook for errors raised inside listeners: see bot.errors."""

    async def on_error(
        error: Exception,
        body: dict[str, Any],
        respond: AsyncRespond | None,
        response: BoltResponse | None,
    ) -> BoltResponse | None:
        # Bolt provides `respond` whenever the request carries a response_url.
        await report_unexpected(error, kind=_kind(body), respond=respond, metrics=services.metrics)
        # Before the ack, answer Slack with an empty 200: the apology went through
        # response_url, and a 500 would make Slack show its own error on top.
        return BoltResponse(status=200, body="") if response is not None else None

    return on_error
