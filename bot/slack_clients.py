"""Web API clients for the workspaces PushOps writes to, outside any Slack request.

What a process says to Slack later (a send went out, was cancelled, missed...) needs the
workspace's bot token: the one SLACK_BOT_TOKEN (single workspace), or the workspace's
installation, kept encrypted in the database (OAuth mode). `serve` finds both through its
Bolt app; `pushops worker` has no app and no HTTP listener, and builds the same from the
settings (`clients_from_settings`). Both end in a `ClientSource`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.installations import EncryptedInstallationStore
from bot.settings import Settings
from bot.slack_http import CountError, SlackErrorCounter
from storage import workspaces
from storage.crypto import KeyRing
from storage.db import Database

ClientSource = Callable[[str], Awaitable[AsyncWebClient | None]]
"""The Web API client holding a workspace's bot token (None when not installed there)."""

WEB_API_TIMEOUT: Final = 10
"""Seconds a Web API call may take."""


def is_oauth_mode(settings: Settings) -> bool:
    """Whether the settings ask for multi-workspace OAuth mode."""
    return bool(settings.slack_client_id and settings.slack_client_secret)


def configured(
    client: AsyncWebClient, settings: Settings, count_error: CountError | None = None
) -> AsyncWebClient:
    """`client` at SLACK_API_URL, with a 10 s timeout, one retry on rate limiting, and its
    failed calls told to `count_error` (the metrics)."""
    client.base_url = settings.slack_api_url
    client.timeout = WEB_API_TIMEOUT
    if count_error is not None:
        client.retry_handlers.insert(0, SlackErrorCounter(count_error))
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    return client


def installation_store(
    settings: Settings, database: Database, keyring: KeyRing
) -> EncryptedInstallationStore:
    """The OAuth installations of SLACK_CLIENT_ID, tokens sealed with `keyring`, in `database`."""
    return EncryptedInstallationStore(
        AsyncSQLAlchemyInstallationStore(
            client_id=str(settings.slack_client_id), engine=database.engine
        ),
        keyring,
        database=database,
    )


def client_source(
    base: AsyncWebClient, store: AsyncInstallationStore | None, database: Database | None
) -> ClientSource:
    """Clients per workspace: `base` itself without `store`, else one with the installed token.

    Clients made from an installation copy `base`'s URL, timeout, retries and session. An
    installation in an Enterprise Grid org is kept under the org's id as well as the
    workspace's (or under the org's alone when installed org-wide), so the workspace's
    `enterprise_id` is read from `database` to find it.
    """
    enterprises: dict[str, str] = {}  # a workspace's org does not change: keep what was found

    async def enterprise_of(team_id: str) -> str | None:
        if team_id not in enterprises and database is not None:
            async with database.sessions() as session:
                workspace = await workspaces.get_workspace(session=session, team_id=team_id)
            if workspace is not None and workspace.enterprise_id:
                enterprises[team_id] = workspace.enterprise_id
        return enterprises.get(team_id)

    async def for_team(team_id: str) -> AsyncWebClient | None:
        if store is None:
            return base
        bot = await find_bot(store, enterprise_id=await enterprise_of(team_id), team_id=team_id)
        if bot is None or not bot.bot_token:
            return None
        return AsyncWebClient(
            token=bot.bot_token,
            base_url=base.base_url,
            timeout=base.timeout,
            retry_handlers=list(base.retry_handlers),
            session=base.session,
        )

    return for_team


async def find_bot(
    store: AsyncInstallationStore, *, enterprise_id: str | None, team_id: str
) -> Bot | None:
    """The bot installed in the workspace, else (in a Grid org) the one installed org-wide."""
    bot = await store.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
    if bot is None and enterprise_id is not None:
        bot = await store.async_find_bot(
            enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
        )
    return bot


def clients_from_settings(
    settings: Settings,
    *,
    database: Database | None,
    keyring: KeyRing | None,
    session: aiohttp.ClientSession,
    count_error: CountError | None = None,
) -> ClientSource | None:
    """Clients without a Bolt app (`pushops worker`); None when no Slack credentials are set.

    OAuth mode reads the installations `serve` saved, so it needs the same database and key
    ring. Every call goes through `session`; failed ones are told to `count_error`.
    """
    base = configured(AsyncWebClient(session=session), settings, count_error)
    if is_oauth_mode(settings):
        if database is None or keyring is None:
            raise ValueError("OAuth mode keeps installations in the database: it needs both")
        return client_source(base, installation_store(settings, database, keyring), database)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not token:
        return None
    base.token = token
    return client_source(base, None, database)
