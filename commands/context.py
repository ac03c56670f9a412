"""What a `/push` subcommand handler receives, how a subcommand declares itself, and how a
listener answers whoever clicked a button about a send."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import Send
from bot.services import Services
from commands._format import Block


class CommandError(Exception):
    """Bad input or a refused request; its message goes to the user as is.

    Write the message for the person who typed the command: what is wrong and how to fix it
    ("No audience: add --segment NAME or --user ID."). Never put a secret in it.
    """


class ReplyFailedError(Exception):
    """Slack refused a reply posted to a `response_url` (expired, or used too often)."""


@dataclass(frozen=True, kw_only=True)
class CommandContext:
    """One `/push` invocation, parsed.

    Attributes:
        subcommand: the subcommand name, lower-cased (`send`, `cancel`...).
        args: the words after the subcommand, split like a shell (quotes group words).
        text: everything after `/push`, with Slack's `&amp;`/`&lt;`/`&gt;` unescaped.
        team_id / enterprise_id / user_id / channel_id: who asked, where (tenancy: every
            query is scoped by `team_id`).
        trigger_id: opens a modal; valid for 3 s after Slack sent the command.
        respond: Bolt's `respond` bound to the command's `response_url`.
        client: the Web API client holding this workspace's bot token.
        services: the process services (database, OneSignal HTTP pool, tasks...).
        logger: a logger for the handler.
        prepared: what the subcommand's `before_ack` returned (None without one).
    """

    subcommand: str
    args: tuple[str, ...]
    text: str
    team_id: str
    enterprise_id: str | None
    user_id: str
    channel_id: str | None
    trigger_id: str | None
    respond: AsyncRespond
    client: AsyncWebClient
    services: Services
    logger: logging.Logger
    prepared: object = None

    async def reply(self, text: str, *, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        """An ephemeral message to the caller through the command's `response_url`.

        `text` is the notification and fallback text; `blocks`, when given, is what shows.
        """
        response = await self.respond(
            text=text,
            blocks=list(blocks) if blocks is not None else None,
            response_type="ephemeral",
        )
        if response.status_code != 200:
            raise ReplyFailedError(f"response_url answered HTTP {response.status_code}")


Handler = Callable[[CommandContext], Awaitable[None]]
"""Runs after the ack; may take its time (OneSignal, views.open, the database)."""

BeforeAck = Callable[[CommandContext], Awaitable[object]]
"""Runs before the ack, so it must be fast and local (validate, store a row); its return value
becomes `ctx.prepared` for `handle`. Raise `CommandError` to refuse with a message."""


@dataclass(frozen=True, kw_only=True)
class Subcommand:
    """A `/push` subcommand: its name (from bot.const) and its handlers.

    Attributes:
        name: what follows `/push` (`bot.const.SUB_*`).
        handle: the work after the ack; raising `CommandError` replies its message.
        before_ack: optional fast, local work before the ack (see `BeforeAck`).
    """

    name: str
    handle: Handler
    before_ack: BeforeAck | None = None


# --- answering a click on a message about a send ----------------------------------------------

Respond = Callable[..., Awaitable[Any]]
"""Bolt's `respond` (a click's response_url), or what stands for it where there is none (the
Home tab): called with `text=` and Slack's message options."""

Reply = Callable[[str, Sequence[Block]], Awaitable[None]]
"""Answers the requester where they are (a response_url, an ephemeral message, a DM)."""


def send_uuid(value: object) -> uuid.UUID | None:
    """The send UUID a button carries, or None for a malformed one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def button_send_id(body: Mapping[str, Any]) -> uuid.UUID | None:
    """The send UUID in the value of the button clicked in `body`."""
    actions = body.get("actions") or [{}]
    return send_uuid(actions[0].get("value"))


async def load_send(services: Services, team_id: str, send_id: uuid.UUID | None) -> Send | None:
    """The send with this UUID in this workspace (another workspace's is not found)."""
    if send_id is None:
        return None
    return await services.recall.get(team_id=team_id, send_id=send_id)


async def refuse(respond: Respond, message: str) -> None:
    """An ephemeral answer to a clicker that leaves the message clicked on as it is."""
    await respond(text=message, response_type="ephemeral", replace_original=False)


def replacing(respond: Respond) -> Reply:
    """A reply that replaces the message whose button was clicked."""

    async def reply(text: str, blocks: Sequence[Block]) -> None:
        await respond(text=text, blocks=list(blocks), replace_original=True)

    return reply
