"""The shortcuts that open the compose form: "Send as push" on a message, "Compose a push"
anywhere in Slack.

"Send as push" (`send_as_push`, a message shortcut) starts the form with the message's text as
the notification's, read as a phone would show it (`commands.send.mrkdwn`): the people it
mentions are looked up by name first, all at once and within `NAMES_BUDGET`, since the trigger
that opens the form dies 3 s after the click. "Compose a push" (`compose_push`, a global
shortcut) opens it empty. Both are acknowledged at once; who may send is checked as for
`/push send` and a refusal is answered where the shortcut was used (by DM for a global one).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.services import Services
from commands.access import interaction_ids
from commands.context import CommandError
from commands.notify import notifier_of
from commands.outgoing import SLACK_ERRORS
from commands.send.form import open_compose
from commands.send.mrkdwn import mentioned_users, plain_text
from commands.send.requester import requester
from commands.views.compose import ComposeInput

log = logging.getLogger(__name__)

NAMES_BUDGET: Final = 1.0
"""Seconds the names of mentioned people may take (Slack's trigger lives 3 s)."""
MOST_NAMES: Final = 20
"""People looked up by name for one message; any others show as their Slack id."""


async def _names(client: AsyncWebClient, user_ids: tuple[str, ...]) -> dict[str, str]:
    """user id -> display name (else real name) for those Slack answers for in time."""
    asked = user_ids[:MOST_NAMES]
    try:
        async with asyncio.timeout(NAMES_BUDGET):
            found = await asyncio.gather(*(_name(client, user) for user in asked))
    except TimeoutError:
        log.info("names of %d mentioned people not all known in time", len(asked))
        return {}
    return {user: name for user, name in zip(asked, found, strict=True) if name}


async def _name(client: AsyncWebClient, user_id: str) -> str | None:
    try:
        answer = await client.users_info(user=user_id)
    except SLACK_ERRORS as error:  # a deleted user, say: the id shows instead
        log.info("no name for a mentioned user: %s", type(error).__name__)
        return None
    user = answer.get("user") or {}
    profile = user.get("profile") or {}
    name = profile.get("display_name") or profile.get("real_name") or user.get("real_name")
    return str(name) if name else None


async def message_text(client: AsyncWebClient, body: dict[str, Any]) -> str:
    """The shortcut's message as the plain text of a notification."""
    text = str((body.get("message") or {}).get("text") or "")
    channel = body.get("channel") or {}
    here = {str(channel["id"]): str(channel["name"])} if channel.get("name") else {}
    names = await _names(client, mentioned_users(text))
    return plain_text(text, names=names, channels=here)


async def _open(
    services: Services,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond | None,
) -> None:
    """Check the person may send, then open the form (filled from the message, if any)."""
    channel = (body.get("channel") or {}).get("id")
    team_id, user_id = "", ""
    try:
        team_id, user_id = interaction_ids(body, services=services, area="send")
        _, text = await asyncio.gather(
            requester(
                services=services,
                client=client,
                team_id=team_id,
                user_id=user_id,
                what="open the compose form",
            ),
            message_text(client, body),
        )
        filled = ComposeInput(message=text) if text else None
        await open_compose(
            services,
            client,
            team_id=team_id,
            trigger_id=str(body.get("trigger_id") or ""),
            channel=channel,
            filled=filled,
        )
    except CommandError as error:
        await refuse_opening(services, respond, team_id, user_id, str(error))


async def refuse_opening(
    services: Services, respond: AsyncRespond | None, team_id: str, user_id: str, text: str
) -> None:
    """Say why the form did not open: where the shortcut or button was used (`respond`),
    else by DM (a global shortcut, a button on the Home tab)."""
    if respond is not None:
        await respond(text=text, response_type="ephemeral", replace_original=False)
        return
    notifier = notifier_of(services)
    if notifier is not None and team_id and user_id:
        await notifier.tell(team_id, user_id, text)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to "Send as push" (message shortcut) and "Compose a push" (global shortcut)."""

    async def on_message(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        services.after_ack(
            _open(services, body, client, respond), respond=respond, kind="message_action"
        )

    async def on_global(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        services.after_ack(_open(services, body, client, None), respond=None, kind="shortcut")

    app.message_shortcut(const.CALLBACK_SEND_AS_PUSH)(on_message)
    app.global_shortcut(const.CALLBACK_COMPOSE_PUSH)(on_global)
