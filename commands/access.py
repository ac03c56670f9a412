"""Who is acting, and may they: Slack's admin flags, `PUSHOPS_ADMINS` and stored roles.

Admins are Slack workspace admins and owners (`users.info`), the users named in
`PUSHOPS_ADMINS`, and members given the admin role in `/push setup`. Roles are stored for
users (U…/W…) and user groups (S…); a group's role reaches its members
(`usergroups.users.list`). Slack's answers are cached per process for `CACHE_TTL` seconds,
so a click or a form costs no extra Web API call while someone works in the setup form; one
`users.info` answers both who is an admin and which time zone a person's times are in
(`user_facts`). The workspace's roles and approval policy are read together and kept for
`TEAM_TTL` seconds (`team_facts`), so a send costs no read of them before its ack.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, overload

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.cache import Expiring
from bot.policy import Actor, Role
from bot.services import Services
from commands.context import CommandContext, CommandError
from storage import queries
from storage.db import Database

log = logging.getLogger(__name__)

CACHE_TTL: Final = 60.0
"""Seconds a Slack answer about a user (admin flag, time zone) or a user group is reused."""

MISSING_TTL: Final = 10.0
"""Seconds Slack's "no such user / group" is reused: briefly, it may exist a moment later."""

TEAM_TTL: Final = 5.0
"""Seconds a workspace's stored roles and approval policy are reused before the next read.

`/push setup` in this process drops them at once when it changes them; a change made through
another replica (or straight in the database) is seen here at most this much later.
"""

_MISSING_USER: Final = frozenset({"user_not_found", "user_not_visible", "users_not_found"})
_MISSING_GROUP: Final = frozenset({"no_such_subteam", "subteam_not_found"})
# Any other refusal (ratelimited, an outage, a bad token) is not kept: the next request asks
# again rather than treat someone as a non-admin in UTC for a while.


@dataclass(frozen=True)
class UserFacts:
    """What Slack says of a person (`users.info`): workspace admin or owner, and time zone.

    `timezone` is None when unknown: times are then read as UTC.
    """

    is_admin: bool = False
    timezone: str | None = None


@dataclass(frozen=True)
class TeamFacts:
    """A workspace's stored role holders, settings (the approval policy lives there) and log
    channel."""

    members: tuple[tuple[str, Role], ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    log_channel_id: str | None = None

    def roles_of(self, subject_id: str) -> set[Role]:
        """The roles held by this user or group itself."""
        return {role for subject, role in self.members if subject == subject_id}

    def group_roles(self) -> dict[str, set[Role]]:
        """User group id -> the roles given to the group."""
        groups: dict[str, set[Role]] = {}
        for subject, role in self.members:
            if is_usergroup_id(subject):
                groups.setdefault(subject, set()).add(role)
        return groups

    @property
    def senders_configured(self) -> bool:
        """Whether anyone holds the sender role; until then anyone in the workspace may send."""
        return any(role == Role.SENDER for _, role in self.members)


class _Facts:
    """The cached answers of one `Services` (one app): Slack's and the database's."""

    def __init__(self) -> None:
        self.users: Expiring[tuple[str, str], UserFacts] = Expiring()
        self.groups: Expiring[tuple[str, str], frozenset[str]] = Expiring()
        self.teams: Expiring[str, TeamFacts] = Expiring()


# Keyed by the Services object, so each app (and each test's app) has its own cache without
# a field in Services; the entry goes when the Services does.
_FACTS: weakref.WeakKeyDictionary[Services, _Facts] = weakref.WeakKeyDictionary()


def _facts(services: Services) -> _Facts:
    facts = _FACTS.get(services)
    if facts is None:
        facts = _FACTS[services] = _Facts()
    return facts


def database_of(services: Services) -> Database:
    """The database, or a CommandError saying PushOps runs without one."""
    if services.database is None:
        raise CommandError(
            "PushOps runs without a database here, so it cannot keep settings. "
            "Ask whoever runs it to set DATABASE_URL."
        )
    return services.database


# --- what Slack and the database say ------------------------------------------------------


async def user_facts(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str
) -> UserFacts:
    """The person's admin flag and time zone from one `users.info` (cached, see CACHE_TTL).

    Slack trouble is never an error here: the person is then no Slack admin, zone unknown.
    """

    async def ask() -> tuple[UserFacts, float | None]:
        return await _ask_users_info(client, user_id)

    return await _facts(services).users.get((team_id, user_id), ask)


async def _ask_users_info(client: AsyncWebClient, user_id: str) -> tuple[UserFacts, float | None]:
    try:
        response = await client.users_info(user=user_id)
    except SlackApiError as error:
        reason = slack_error(error)
        log.warning("users.info refused for %s: %s", user_id, reason)
        return UserFacts(), MISSING_TTL if reason in _MISSING_USER else None
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("users.info for %s failed: %s", user_id, type(error).__name__)
        return UserFacts(), None
    user: Mapping[str, Any] = response.get("user") or {}
    is_admin = bool(user.get("is_admin") or user.get("is_owner")) and not user.get("deleted")
    zone = user.get("tz") if isinstance(user.get("tz"), str) else None
    return UserFacts(is_admin=is_admin, timezone=zone), CACHE_TTL


async def team_facts(services: Services, team_id: str) -> TeamFacts:
    """The workspace's role holders, settings and log channel, in one read (cached, see
    TEAM_TTL)."""
    database = services.database
    if database is None:
        return TeamFacts()

    async def read() -> tuple[TeamFacts, float | None]:
        async with database.sessions() as session:
            members = await queries.list_members(session=session, team_id=team_id)
            workspace = await queries.get_workspace(session=session, team_id=team_id)
        held = tuple((member.subject_id, member.role) for member in members)
        if workspace is None:
            return TeamFacts(members=held), TEAM_TTL
        facts = TeamFacts(
            members=held, settings=dict(workspace.settings), log_channel_id=workspace.log_channel_id
        )
        return facts, TEAM_TTL

    return await _facts(services).teams.get(team_id, read)


def forget_team(services: Services, team_id: str) -> None:
    """Read the workspace's roles and settings afresh next time (they were just changed)."""
    _facts(services).teams.forget(team_id)


# --- resolving the actor --------------------------------------------------------------------


@overload
async def resolve_actor(ctx: CommandContext, /) -> Actor: ...


@overload
async def resolve_actor(
    *,
    team_id: str,
    user_id: str,
    client: AsyncWebClient,
    services: Services,
    facts: UserFacts | None = None,
) -> Actor: ...


async def resolve_actor(
    ctx: CommandContext | None = None,
    /,
    *,
    team_id: str | None = None,
    user_id: str | None = None,
    client: AsyncWebClient | None = None,
    services: Services | None = None,
    facts: UserFacts | None = None,
) -> Actor:
    """Everything the user may do in the workspace: from a command's context, or (in a
    button or form handler) from the team id, user id, Web API client and services.

    `facts`: Slack's answer about the user when the caller already has it.
    """
    if ctx is not None:
        team_id, user_id, client, services = ctx.team_id, ctx.user_id, ctx.client, ctx.services
    if team_id is None or user_id is None or client is None or services is None:
        raise TypeError("resolve_actor needs a CommandContext or all four keyword arguments")
    roles = await _roles(team_id, user_id, client, services, facts)
    return Actor(team_id=team_id, user_id=user_id, roles=frozenset(roles))


async def _roles(
    team_id: str,
    user_id: str,
    client: AsyncWebClient,
    services: Services,
    facts: UserFacts | None,
) -> set[Role]:
    """The user's roles; cheap sources first, Slack only when they do not settle it."""
    team = await team_facts(services, team_id)
    roles = team.roles_of(user_id)
    if user_id in services.settings.admin_ids:
        roles.add(Role.ADMIN)
    if Role.ADMIN not in roles:
        if facts is None:
            facts = await user_facts(services, client, team_id, user_id)
        if facts.is_admin:
            roles.add(Role.ADMIN)
    if Role.ADMIN in roles:
        return roles
    for group_id, group_roles in team.group_roles().items():
        if group_roles <= roles:
            continue
        if user_id in await _group_members(team_id, group_id, client, services):
            roles |= group_roles
    return roles


def is_usergroup_id(subject_id: str) -> bool:
    """Whether a stored subject is a Slack user group (S…) rather than a user (U…/W…)."""
    return subject_id.startswith("S")


async def _group_members(
    team_id: str, group_id: str, client: AsyncWebClient, services: Services
) -> frozenset[str]:
    """The members of a user group (cached); empty when Slack does not say."""

    async def ask() -> tuple[frozenset[str], float | None]:
        try:
            response = await client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            reason = slack_error(error)
            log.warning("usergroups.users.list refused for %s: %s", group_id, reason)
            return frozenset(), MISSING_TTL if reason in _MISSING_GROUP else None
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("usergroups.users.list for %s failed: %s", group_id, type(error).__name__)
            return frozenset(), None
        return frozenset(str(u) for u in response.get("users") or ()), CACHE_TTL

    return await _facts(services).groups.get((team_id, group_id), ask)


def slack_error(error: BaseException) -> str:
    """Slack's short error code (`not_in_channel`, `ratelimited`): what to tell and log,
    rather than the whole response; for a failure without one (a timeout, a dropped
    connection), the kind of failure."""
    if isinstance(error, SlackApiError) and error.response is not None:
        return str(error.response.get("error", "unknown"))
    return type(error).__name__


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
    return (await team_facts(services, team_id)).senders_configured


def interaction_enterprise_id(body: Mapping[str, Any]) -> str | None:
    """The Enterprise Grid org of the workspace a click or form submission comes from.

    None outside Grid. A workspace row created by such a request keeps it, so that what
    PushOps says later, outside any request, finds an org-wide installation's token.
    """
    enterprise = body.get("enterprise") or {}
    team = body.get("team") or {}
    return str(enterprise.get("id") or team.get("enterprise_id") or "") or None


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
