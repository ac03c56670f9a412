"""Who is acting, and may they: Slack's admin and guest flags, `PUSHOPS_ADMINS`, stored roles.

Admins are Slack workspace admins and owners (`users.info`), the users `PUSHOPS_ADMINS` names
for the workspace, and members given the admin role in `/push setup`. Roles are stored for
users (U…/W…) and user groups (S…); a group's role reaches its members
(`usergroups.users.list`), guests excepted: a guest (Slack's restricted and single-channel
users) holds only the roles given to them by name. Slack's answers are cached per process for
`CACHE_TTL` seconds, so a send costs no extra Web API call; one `users.info` answers who is an
admin, who is a guest and which time zone a person's times are in (`user_facts`). The checks
that guard setup (apps, keys, roles, policy) and the audit log take no answer older than
`ADMIN_TTL`, so a Slack admin demoted in Slack loses them within seconds. The workspace's roles
and approval policy are read together by the workspace service and kept for
`bot.workspaces.TEAM_TTL` seconds (`team_facts`), so a send costs no read of them before its
ack. Slack's answers live in the services' `directory`, the workspace's in `services.workspaces`:
each app (and each test's) has its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Final, overload

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.directory import UserFacts
from bot.policy import Actor, ConfiguredAdmins, Role
from bot.services import Services
from bot.settings import Settings
from bot.slack_clients import is_oauth_mode
from bot.workspaces import TeamFacts
from commands.context import CommandContext, CommandError
from commands.denials import Denial, deny

log = logging.getLogger(__name__)

CACHE_TTL: Final = 60.0
"""Seconds a Slack answer about a user (admin and guest flags, time zone) or a user group is
reused."""

ADMIN_TTL: Final = 3.0
"""Seconds a Slack answer may be old for an admin check (`require_admin`): a Slack admin
demoted in Slack loses setup, keys, roles and the audit log within this."""

MISSING_TTL: Final = 10.0
"""Seconds Slack's "no such user / group" is reused: briefly, it may exist a moment later."""

_MISSING_USER: Final = frozenset({"user_not_found", "user_not_visible", "users_not_found"})
_MISSING_GROUP: Final = frozenset({"no_such_subteam", "subteam_not_found"})
# Any other refusal (ratelimited, an outage, a bad token) is not kept: the next request asks
# again rather than treat someone as a non-admin in UTC for a while.


# --- what Slack and the database say ------------------------------------------------------


async def user_facts(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    *,
    max_age: float | None = None,
) -> UserFacts:
    """The person's admin and guest flags and time zone from one `users.info` (cached, see
    CACHE_TTL; with `max_age`, an answer older than that is asked for again).

    Slack trouble is never an error here: the person is then no Slack admin, zone unknown.
    """
    users = services.directory.users
    key = (team_id, user_id)
    if max_age is not None:
        found, kept = users.peek(key)
        if found and kept is not None and time.monotonic() - kept.asked_at > max_age:
            users.forget(key)

    async def ask() -> tuple[UserFacts, float | None]:
        return await _ask_users_info(client, user_id)

    return await users.get(key, ask)


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
    is_guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
    zone = user.get("tz") if isinstance(user.get("tz"), str) else None
    facts = UserFacts(
        is_admin=is_admin, timezone=zone, is_guest=is_guest, asked_at=time.monotonic()
    )
    return facts, CACHE_TTL


async def team_facts(services: Services, team_id: str) -> TeamFacts:
    """The workspace's role holders, settings and log channel, in one read (cached, see
    TEAM_TTL)."""
    return await services.workspaces.facts(team_id)


def forget_team(services: Services, team_id: str) -> None:
    """Read the workspace's roles and settings afresh next time (changed outside this
    process's workspace service, which forgets its own changes)."""
    services.workspaces.forget_facts(team_id)


# --- resolving the actor --------------------------------------------------------------------


@overload
async def resolve_actor(ctx: CommandContext, /, *, fresh: bool = ...) -> Actor: ...


@overload
async def resolve_actor(
    *,
    team_id: str,
    user_id: str,
    client: AsyncWebClient,
    services: Services,
    facts: UserFacts | None = None,
    fresh: bool = ...,
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
    fresh: bool = False,
) -> Actor:
    """Everything the user may do in the workspace: from a command's context, or (in a
    button or form handler) from the team id, user id, Web API client and services.

    `facts`: Slack's answer about the user when the caller already has it. `fresh`: Slack's
    answer may be at most `ADMIN_TTL` old (the admin checks).
    """
    if ctx is not None:
        team_id, user_id, client, services = ctx.team_id, ctx.user_id, ctx.client, ctx.services
    if team_id is None or user_id is None or client is None or services is None:
        raise TypeError("resolve_actor needs a CommandContext or all four keyword arguments")
    team = await team_facts(services, team_id)
    roles = team.roles_of(user_id)
    if configured_admin(services.settings, team_id, user_id):
        roles.add(Role.ADMIN)
    if Role.ADMIN in roles:  # named an admin: Slack need not be asked
        return Actor(team_id=team_id, user_id=user_id, roles=frozenset(roles))
    if facts is None:
        max_age = ADMIN_TTL if fresh else None
        facts = await user_facts(services, client, team_id, user_id, max_age=max_age)
    if facts.is_admin:
        roles.add(Role.ADMIN)
    elif not facts.is_guest:  # a guest holds only what is given to them by name
        roles |= await _group_roles(team, team_id, user_id, roles, client, services)
    return Actor(team_id=team_id, user_id=user_id, roles=frozenset(roles), is_guest=facts.is_guest)


def configured_admin(settings: Settings, team_id: str, user_id: str) -> bool:
    """Whether `PUSHOPS_ADMINS` makes `user_id` an admin of `team_id` (`TEAM:USER` entries;
    a bare user id only in single-workspace mode)."""
    admins = ConfiguredAdmins.parse(settings.admins)
    return admins.names(team_id, user_id, oauth=is_oauth_mode(settings))


async def _group_roles(
    team: TeamFacts,
    team_id: str,
    user_id: str,
    held: set[Role],
    client: AsyncWebClient,
    services: Services,
) -> set[Role]:
    """The roles the user holds through user groups (Slack is asked only for groups whose
    roles the user does not already hold)."""
    roles: set[Role] = set()
    for group_id, group_roles in team.group_roles().items():
        if group_roles <= held | roles:
            continue
        if user_id in await _group_members(team_id, group_id, client, services):
            roles |= group_roles
    return roles


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

    return await services.directory.groups.get((team_id, group_id), ask)


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
async def require_admin(
    ctx: CommandContext, /, *, action: str = ..., area: str = ..., what: str = ...
) -> Actor: ...


@overload
async def require_admin(
    *,
    team_id: str,
    user_id: str,
    client: AsyncWebClient,
    services: Services,
    action: str = ...,
    area: str = ...,
    what: str = ...,
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
    area: str = "setup",
    what: str = "setup",
) -> Actor:
    """The actor if an admin (Slack's word at most `ADMIN_TTL` old); otherwise a refusal
    ("Only PushOps admins can `action`; ask …"), audited as `<area>.denied` for `what`."""
    if ctx is not None:
        team_id, user_id, client, services = ctx.team_id, ctx.user_id, ctx.client, ctx.services
    if team_id is None or user_id is None or client is None or services is None:
        raise TypeError("require_admin needs a CommandContext or all four keyword arguments")
    actor = await resolve_actor(
        team_id=team_id, user_id=user_id, client=client, services=services, fresh=True
    )
    if not actor.is_admin():
        denial = Denial(team_id, user_id, area, what, "not_admin")
        raise deny(services, denial, not_admin_message(action))
    return actor


def why_not(actor: Actor, missing: str) -> str:
    """The reason code of a refusal: `guest` for a guest without the right, else `missing`
    (`not_sender`, `not_approver`...)."""
    return "guest" if actor.is_guest else missing


GUEST_SEES_NOTHING: Final = (
    "Guests of this workspace see PushOps sends only once a PushOps admin gives them a role "
    "by name in `/push setup`."
)


async def may_see_sends(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, *, area: str
) -> None:
    """Refuse (audited as `<area>.denied`) a guest holding no role: sends are for members."""
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if not actor.can_see_sends():
        raise deny(services, Denial(team_id, user_id, area, area, "guest"), GUEST_SEES_NOTHING)


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


def interaction_ids(
    body: Mapping[str, Any], *, services: Services | None = None, area: str = "interaction"
) -> tuple[str, str]:
    """(team id, user id) of a button click or form submission.

    The workspace is the one Slack names for the request (`team`, or the view's `team_id`),
    never the actor's own: that would make the check below vacuous. Raises CommandError when
    Slack names no workspace or no one, and when the person acting belongs to another
    workspace than the request's (a shared channel): only the workspace's own people may act.
    With `services`, that refusal is audited in the request's workspace as `<area>.denied`.
    """
    team = body.get("team") or {}
    user = body.get("user") or {}
    view = body.get("view") or {}
    team_id = str(team.get("id") or view.get("team_id") or "")
    user_id = str(user.get("id") or "")
    actor_team = user.get("team_id")
    if not team_id or not user_id:
        raise CommandError("Slack did not say who acted here, or in which workspace.")
    if actor_team and actor_team != team_id:
        message = "Only people of this workspace can use this."
        if services is None:
            raise CommandError(message)
        denial = Denial(team_id, user_id, area, "act from another workspace", "other_workspace")
        raise deny(services, denial, message)
    return team_id, user_id
