"""Who is acting, and may they: Slack's admin flags, `PUSHOPS_ADMINS` and stored roles.

Admins are Slack workspace admins and owners (`users.info`), the users named in
`PUSHOPS_ADMINS`, and members given the admin role in `/push setup`. Roles are stored for
users (U…/W…) and user groups (S…); a group's role reaches its members
(`usergroups.users.list`). Slack's answers are cached per process for `CACHE_TTL` seconds,
so a click or a form costs no extra Web API call while someone works in the setup form.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any, Final, Generic, TypeVar, overload

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.policy import Actor, Role
from bot.services import Services
from commands.context import CommandContext, CommandError
from storage import queries
from storage.db import Database
from storage.models import Member

log = logging.getLogger(__name__)

CACHE_TTL: Final = 60.0
"""Seconds a Slack answer about a user or a user group is reused."""

_CACHE_LIMIT: Final = 10_000  # entries per process; the oldest go first beyond it

K = TypeVar("K")
V = TypeVar("V")


class _TTLCache(Generic[K, V]):
    """A small expiring map. Hand-written: cachetools is not a dependency, and this is all
    that is needed (no locking: one event loop)."""

    def __init__(self, ttl: float, limit: int = _CACHE_LIMIT) -> None:
        self._ttl, self._limit = ttl, limit
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None or found[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        if len(self._items) >= self._limit:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + self._ttl, value)


class _SlackFacts:
    """Slack's answers for one `Services` (one app): admin flags and user group members."""

    def __init__(self) -> None:
        self.admins: _TTLCache[tuple[str, str], bool] = _TTLCache(CACHE_TTL)
        self.groups: _TTLCache[tuple[str, str], frozenset[str]] = _TTLCache(CACHE_TTL)


# Keyed by the Services object, so each app (and each test's app) has its own cache without
# a field in Services; the entry goes when the Services does.
_FACTS: weakref.WeakKeyDictionary[Services, _SlackFacts] = weakref.WeakKeyDictionary()


def _facts(services: Services) -> _SlackFacts:
    facts = _FACTS.get(services)
    if facts is None:
        facts = _FACTS[services] = _SlackFacts()
    return facts


def database_of(services: Services) -> Database:
    """The database, or a CommandError saying PushOps runs without one."""
    if services.database is None:
        raise CommandError(
            "PushOps runs without a database here, so it cannot keep settings. "
            "Ask whoever runs it to set DATABASE_URL."
        )
    return services.database


# --- resolving the actor --------------------------------------------------------------------


@overload
async def resolve_actor(ctx: CommandContext, /) -> Actor: ...


@overload
async def resolve_actor(
    *, team_id: str, user_id: str, client: AsyncWebClient, services: Services
) -> Actor: ...


async def resolve_actor(
    ctx: CommandContext | None = None,
    /,
    *,
    team_id: str | None = None,
    user_id: str | None = None,
    client: AsyncWebClient | None = None,
    services: Services | None = None,
) -> Actor:
    """Everything the user may do in the workspace: from a command's context, or (in a
    button or form handler) from the team id, user id, Web API client and services."""
    if ctx is not None:
        team_id, user_id, client, services = ctx.team_id, ctx.user_id, ctx.client, ctx.services
    if team_id is None or user_id is None or client is None or services is None:
        raise TypeError("resolve_actor needs a CommandContext or all four keyword arguments")
    roles = await _roles(team_id, user_id, client, services)
    return Actor(team_id=team_id, user_id=user_id, roles=frozenset(roles))


async def _roles(
    team_id: str, user_id: str, client: AsyncWebClient, services: Services
) -> set[Role]:
    """The user's roles; cheap sources first, Slack only when they do not settle it."""
    members = await _members(services, team_id)
    roles = {m.role for m in members if m.subject_id == user_id}
    if user_id in services.settings.admin_ids:
        roles.add(Role.ADMIN)
    if Role.ADMIN not in roles and await _is_slack_admin(team_id, user_id, client, services):
        roles.add(Role.ADMIN)
    if Role.ADMIN in roles:
        return roles
    for group_id, group_roles in _group_roles(members).items():
        if group_roles <= roles:
            continue
        if user_id in await _group_members(team_id, group_id, client, services):
            roles |= group_roles
    return roles


async def _members(services: Services, team_id: str) -> list[Member]:
    if services.database is None:
        return []
    async with services.database.sessions() as session:
        return await queries.list_members(session=session, team_id=team_id)


def _group_roles(members: list[Member]) -> dict[str, set[Role]]:
    groups: dict[str, set[Role]] = {}
    for member in members:
        if is_usergroup_id(member.subject_id):
            groups.setdefault(member.subject_id, set()).add(member.role)
    return groups


def is_usergroup_id(subject_id: str) -> bool:
    """Whether a stored subject is a Slack user group (S…) rather than a user (U…/W…)."""
    return subject_id.startswith("S")


async def _is_slack_admin(
    team_id: str, user_id: str, client: AsyncWebClient, services: Services
) -> bool:
    """Whether Slack says the user is a workspace admin or owner (cached)."""
    cache = _facts(services).admins
    cached = cache.get((team_id, user_id))
    if cached is not None:
        return cached
    try:
        response = await client.users_info(user=user_id)
    except SlackApiError as error:
        log.warning("users.info refused for %s: %s", user_id, _slack_error(error))
        cache.put((team_id, user_id), False)  # e.g. user_not_found: asking again won't help
        return False
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("users.info for %s failed: %s", user_id, type(error).__name__)
        return False  # not cached: the next request asks again
    user: Mapping[str, Any] = response.get("user") or {}
    is_admin = bool(user.get("is_admin") or user.get("is_owner")) and not user.get("deleted")
    cache.put((team_id, user_id), is_admin)
    return is_admin


async def _group_members(
    team_id: str, group_id: str, client: AsyncWebClient, services: Services
) -> frozenset[str]:
    """The members of a user group (cached); empty when Slack does not know it."""
    cache = _facts(services).groups
    cached = cache.get((team_id, group_id))
    if cached is not None:
        return cached
    try:
        response = await client.usergroups_users_list(usergroup=group_id)
    except SlackApiError as error:
        log.warning("usergroups.users.list refused for %s: %s", group_id, _slack_error(error))
        cache.put((team_id, group_id), frozenset())
        return frozenset()
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("usergroups.users.list for %s failed: %s", group_id, type(error).__name__)
        return frozenset()
    users = frozenset(str(u) for u in response.get("users") or ())
    cache.put((team_id, group_id), users)
    return users


def _slack_error(error: SlackApiError) -> str:
    return str(error.response.get("error", "unknown")) if error.response is not None else "?"


def forget_cached(services: Services) -> None:
    """Drop every cached Slack answer of `services` (after roles changed, say)."""
    _FACTS.pop(services, None)


# --- refusing ---------------------------------------------------------------------------------


def not_admin_message(action: str) -> str:
    """What a non-admin reads when refused `action` ("run /push setup")."""
    return (
        f"Only PushOps admins can {action}. Ask a Slack workspace admin or owner, or a "
        f"PushOps admin, to give you the admin role in `{const.SLASH_COMMAND} setup`."
    )


@overload
async def require_admin(ctx: CommandContext, /, *, action: str = ...) -> Actor: ...


@overload
async def require_admin(
    *,
    team_id: str,
    user_id: str,
    client: AsyncWebClient,
    services: Services,
    action: str = ...,
) -> Actor: ...


async def require_admin(
    ctx: CommandContext | None = None,
    /,
    *,
    team_id: str | None = None,
    user_id: str | None = None,
    client: AsyncWebClient | None = None,
    services: Services | None = None,
    action: str = "do that",
) -> Actor:
    """The actor if an admin; CommandError ("Only PushOps admins can …; ask …") otherwise."""
    if ctx is not None:
        actor = await resolve_actor(ctx)
    else:
        if team_id is None or user_id is None or client is None or services is None:
            raise TypeError("require_admin needs a CommandContext or all four keyword arguments")
        actor = await resolve_actor(
            team_id=team_id, user_id=user_id, client=client, services=services
        )
    if not actor.is_admin():
        raise CommandError(not_admin_message(action))
    return actor


async def senders_configured(services: Services, team_id: str) -> bool:
    """Whether anyone holds the sender role; until then anyone in the workspace may send."""
    if services.database is None:
        return False
    async with services.database.sessions() as session:
        senders = await queries.list_members(session=session, team_id=team_id, role=Role.SENDER)
    return bool(senders)


def interaction_ids(body: Mapping[str, Any]) -> tuple[str, str]:
    """(team id, user id) of a button click or form submission.

    Raises CommandError when the person acting belongs to another workspace than the one
    the request is for (a shared channel): only the workspace's own people may act.
    """
    team = body.get("team") or {}
    user = body.get("user") or {}
    view = body.get("view") or {}
    team_id = str(team.get("id") or view.get("team_id") or user.get("team_id") or "")
    user_id = str(user.get("id") or "")
    actor_team = user.get("team_id")
    if not team_id or not user_id:
        raise CommandError("Slack did not say who acted here; try again.")
    if actor_team and actor_team != team_id:
        raise CommandError("Only people of this workspace can use this.")
    return team_id, user_id
