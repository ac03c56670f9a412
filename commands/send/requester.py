"""The person asking for a send: their Slack time zone, their right to send.

The zone decides the instant `--at 09:00` stands for, so it is known before a send's row is
stored. It comes from the same cached `users.info` answer as the admin flag
(`commands.access.user_facts`): a person costs Slack one call per `CACHE_TTL`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.policy import Actor
from bot.services import Services
from commands.access import resolve_actor, team_facts, user_facts, why_not
from commands.denials import Denial, deny


@dataclass(frozen=True)
class Requester:
    """Who asks for a send, with their zone (None: unknown, times read as UTC)."""

    actor: Actor
    timezone: str | None

    @property
    def zone_name(self) -> str:
        """The zone to store with a send ("UTC" when unknown)."""
        return self.timezone or "UTC"


NOT_A_SENDER: Final = (
    "Only PushOps senders can send notifications in this workspace. Ask a PushOps admin to "
    f"give you the sender role in `{const.SLASH_COMMAND} setup`."
)
GUEST: Final = (
    "Guests of this workspace can send notifications only once a PushOps admin gives them "
    f"the sender role by name in `{const.SLASH_COMMAND} setup`."
)


async def requester(
    *,
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    what: str = "send",
) -> Requester:
    """The requester, refused (a CommandError, audited as `send.denied` for `what`) when
    they may not send.

    Slack's answer about them and the workspace's roles are asked for at once: on a cold
    cache both take a round trip (Slack's, the database's); warm, neither does.
    """
    facts, team = await asyncio.gather(
        user_facts(services, client, team_id, user_id), team_facts(services, team_id)
    )
    actor = await resolve_actor(
        team_id=team_id, user_id=user_id, client=client, services=services, facts=facts
    )
    if not actor.can_send(senders_configured=team.senders_configured):
        denial = Denial(team_id, user_id, "send", what, why_not(actor, "not_sender"))
        raise deny(services, denial, GUEST if actor.is_guest else NOT_A_SENDER)
    return Requester(actor=actor, timezone=facts.timezone)
