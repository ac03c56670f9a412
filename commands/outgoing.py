"""The one place where what PushOps tells people about sends reaches Slack: post, update, DM.

`SlackNotifier` (commands.notify) says everything through an `Outgoing`, in `serve` and in
`pushops worker` alike. Each call finds the workspace's client through a `ClientSource`; a
refusal by Slack (or a workspace without an installation) is logged and answered with None or
False, never raised, since a send's outcome stays what it is whatever Slack says.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_clients import ClientSource
from commands._format import Block
from commands.access import slack_error

log = logging.getLogger(__name__)

SLACK_ERRORS = (SlackApiError, aiohttp.ClientError, TimeoutError)
"""What a Slack call may raise that is Slack's trouble, not ours."""


class Outgoing:
    """Messages to Slack on behalf of the notifier (see the module's docstring)."""

    def __init__(self, clients: ClientSource) -> None:
        self._clients = clients

    async def post(
        self,
        team_id: str,
        channel: str,
        text: str,
        blocks: Sequence[Block],
        *,
        refused: list[str] | None = None,
    ) -> str | None:
        """Post a message in `channel`; its ts, or None when it could not be posted (then
        Slack's error, when it answered one, is added to `refused`)."""
        client = await self._client(team_id, channel)
        if client is None:
            return None
        try:
            response = await client.chat_postMessage(
                channel=channel, text=text, blocks=list(blocks), unfurl_links=False
            )
        except SLACK_ERRORS as error:
            log.warning("could not post in %s: %s", channel, slack_error(error))
            if refused is not None:
                refused.append(slack_error(error))
            return None
        return str(response["ts"])

    async def update(
        self, team_id: str, where: dict[str, str], text: str, blocks: Sequence[Block]
    ) -> bool:
        """Replace the message at `where` (`channel`, `ts`); whether Slack took it."""
        client = await self._client(team_id, where["channel"])
        if client is None:
            return False
        try:
            await client.chat_update(
                channel=where["channel"], ts=where["ts"], text=text, blocks=list(blocks)
            )
        except SLACK_ERRORS as error:
            log.warning("could not update %s: %s", where["channel"], slack_error(error))
            return False
        return True

    async def direct(
        self, team_id: str, user_id: str, text: str, blocks: Sequence[Block] | None = None
    ) -> bool:
        """A direct message from the app to `user_id`; whether Slack took it."""
        client = await self._client(team_id, user_id)
        if client is None:
            return False
        try:
            opened = await client.conversations_open(users=user_id)
            await client.chat_postMessage(
                channel=opened["channel"]["id"],
                text=text,
                blocks=list(blocks) if blocks is not None else None,
                unfurl_links=False,
            )
        except SLACK_ERRORS as error:
            log.warning("could not write to %s: %s", user_id, slack_error(error))
            return False
        return True

    async def _client(self, team_id: str, recipient: str) -> AsyncWebClient | None:
        client = await self._clients(team_id)
        if client is None:
            log.warning("no Slack installation of team %s to write to %s", team_id, recipient)
        return client
