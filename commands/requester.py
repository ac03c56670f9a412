"""The person asking for a send: their Slack time zone (cached), their right to send.

The zone decides the instant `--at 09:00` stands for, so it is known before a send's row is
stored. Slack's `users.info` is asked once per person per `ZONE_TTL`; later commands read
the cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.policy import Actor
from bot.services import Services
from commands.access import resolve_actor, senders_configured
from commands.context import CommandError

log = logging.getLogger(__name__)

ZONE_TTL: Final = 3600.0
"""Seconds a person's time zone is reused (people rarely move; an hour bounds the error)."""

_ZONE_LIMIT: Final = 10_000


class _Zones:
    """(team, user) -> IANA zone or None, expiring; one per Services (one app)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], tuple[float, str | None]] = {}

    def peek(self, key: tuple[str, str]) -> tuple[bool, str | None]:
        """(found, zone): found is False when unknown or expired."""
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return False, None
        return True, item[1]

    def put(self, key: tuple[str, str], zone: str | None) -> None:
        if len(self._items) >= _ZONE_LIMIT:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + ZONE_TTL, zone)


_ZONES: weakref.WeakKeyDictionary[Services, _Zones] = weakref.WeakKeyDictionary()


def _zones(services: Services) -> _Zones:
    zones = _ZONES.get(services)
    if zones is None:
        zones = _ZONES[services] = _Zones()
    return zones


def cached_time_zone(services: Services, team_id: str, user_id: str) -> tuple[bool, str | None]:
    """(known, zone) from the cache alone: no Slack call."""
    return _zones(services).peek((team_id, user_id))


async def time_zone(
    *, services: Services, client: AsyncWebClient, team_id: str, user_id: str
) -> str | None:
    """The user's IANA time zone from Slack (`users.info` `tz`), cached; None when unknown."""
    known, zone = cached_time_zone(services, team_id, user_id)
    if known:
        return zone
    try:
        response = await client.users_info(user=user_id)
    except SlackApiError as error:
        reason = error.response.get("error") if error.response is not None else "?"
        log.warning("users.info refused for %s: %s", user_id, reason)
        _zones(services).put((team_id, user_id), None)
        return None
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("users.info for %s failed: %s", user_id, type(error).__name__)
        return None  # not cached: the next command asks again
    user: Mapping[str, Any] = response.get("user") or {}
    zone = user.get("tz") if isinstance(user.get("tz"), str) else None
    _zones(services).put((team_id, user_id), zone)
    return zone


@dataclass(frozen=True)
class Requester:
    """Who asks for a send, with their zone (None: unknown, times read as UTC)."""

    actor: Actor
    timezone: str | None

    @property
    def zone_name(self) -> str:
        """The zone to store with a send ("UTC" when unknown)."""
        return self.timezone or "UTC"


async def requester(
    *, services: Services, client: AsyncWebClient, team_id: str, user_id: str
) -> Requester:
    """The requester, refused with a CommandError when they may not send.

    Their roles and their zone are asked for at once: on a cold cache both need Slack.
    """
    actor, zone = await asyncio.gather(
        resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services),
        time_zone(services=services, client=client, team_id=team_id, user_id=user_id),
    )
    if not actor.can_send(senders_configured=await senders_configured(services, team_id)):
        raise CommandError(
            "Only PushOps senders can send notifications in this workspace. Ask a PushOps "
            f"admin to give you the sender role in `{const.SLASH_COMMAND} setup`."
        )
    return Requester(actor=actor, timezone=zone)
