"""Single-workspace mode: `ONESIGNAL_APP_ID` + `ONESIGNAL_API_KEY` are the app named `default`.

At start the bot token's workspace (from `auth.test`) gets that app, saved like one added in
`/push setup` (key encrypted, audited), or refreshed when the settings changed. The settings
win: an app named `default` changed in `/push setup` is set back at the next start.
"""

from __future__ import annotations

import logging
from typing import Final

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Hook, Services
from bot.settings import Settings
from storage import workspaces
from storage.crypto import CryptoError
from storage.errors import InvalidInput
from storage.models import OneSignalApp

log = logging.getLogger(__name__)

DEFAULT_APP_NAME: Final = "default"
SETTINGS_ACTOR: Final = "settings"
"""The audit actor of an app saved from ONESIGNAL_APP_ID / ONESIGNAL_API_KEY."""


def default_app_hook(settings: Settings, services: Services, client: AsyncWebClient) -> Hook:
    """A start hook saving the settings' OneSignal app for the bot token's workspace."""

    async def hook() -> None:
        await seed_default_app(settings, services, client)

    return hook


async def seed_default_app(settings: Settings, services: Services, client: AsyncWebClient) -> bool:
    """Save or refresh the app named `default` from the settings; True when something changed.

    Nothing happens without both settings; a Slack that cannot say which workspace the token
    belongs to leaves the app as it was (logged).
    """
    app_id, api_key = settings.onesignal_app_id, settings.onesignal_api_key
    if not app_id or api_key is None:
        return False
    team = await _team_of(client)
    if team is None:
        return False
    team_id, team_name = team
    try:
        async with services.database.sessions.begin() as session:
            await workspaces.ensure_workspace(session=session, team_id=team_id, name=team_name)
            existing = await workspaces.get_app(
                session=session, team_id=team_id, name=DEFAULT_APP_NAME
            )
            if _same(existing, app_id, api_key, services):
                return False
            await workspaces.add_app(
                session=session,
                keyring=services.keyring,
                team_id=team_id,
                name=DEFAULT_APP_NAME,
                onesignal_app_id=app_id,
                api_key=api_key,
                added_by=SETTINGS_ACTOR,
                replace=True,
            )
    except InvalidInput as error:  # `pushops check` names it too; serving goes on
        log.warning("ONESIGNAL_APP_ID / ONESIGNAL_API_KEY not saved: %s", error)
        return False
    log.info("saved the OneSignal app %r of workspace %s from the settings", "default", team_id)
    return True


async def _team_of(client: AsyncWebClient) -> tuple[str, str] | None:
    try:
        response = await client.auth_test()
    except SlackApiError as error:
        log.warning("auth.test refused (%s): the default app is not saved", error.response["error"])
        return None
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("auth.test failed (%s): the default app is not saved", type(error).__name__)
        return None
    return str(response["team_id"]), str(response.get("team") or "")


def _same(
    existing: OneSignalApp | None, app_id: str, api_key: SecretStr, services: Services
) -> bool:
    if existing is None:
        return False
    try:
        if existing.onesignal_app_id != workspaces.validate_onesignal_app_id(app_id):
            return False
    except InvalidInput:
        return False  # add_app refuses it with the reason
    try:
        stored = workspaces.decrypt_app_key(existing, keyring=services.keyring)
    except CryptoError:  # sealed with a key no longer in the ring: save it again
        return False
    return stored.get_secret_value() == api_key.get_secret_value().strip()
