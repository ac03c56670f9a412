"""The one place where what PushOps tells people reaches Slack: post, update, DM.

`OutboxDelivery` delivers the rows of the Slack outbox for the drainer (`bot.outbox`): a DM
(`conversations.open`, its IM channel kept, then `chat.postMessage`), or a keyed channel
message (posted once, then `chat.update`d in place), each call paced by Slack's limits
(`bot.slack_limits.Pacer`), and says what Slack answered: taken, refused for good, a passing
failure, or wait (429 `Retry-After`). `Outgoing` posts at once, for what is not owed through
the outbox (the audit checkpoints, re-offered at the next round anyway). Each call finds the
workspace's client through a `ClientSource`; Slack's refusals are answered, never raised,
since a send's outcome stays what it is whatever Slack says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.digest import DIGEST, FOR_REQUESTER
from bot.outbox import Delivered, Failure, OutboxKind, OutboxMessage, Outcome, Refusal, Wait
from bot.slack_clients import ClientSource
from bot.slack_limits import Paced, Pacer
from commands._format import Block
from commands.access import slack_error
from commands.views.digests import DigestItem, digest_blocks, digest_text

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


PASSING: Final = frozenset(
    {
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)
"""Slack's errors that a later try may not meet again; any other error code is a refusal
(`channel_not_found`, `not_in_channel`, `invalid_blocks`, `user_not_found`, ...)."""

IM_CHANNELS_KEPT: Final = 10_000
"""Users whose direct-message channel id is kept (one `conversations.open` each, not one per DM)."""

OnRefused = Callable[[OutboxMessage, str], Awaitable[None]]
"""Told when Slack refused an owed message for good (the row, Slack's reason)."""


class OutboxDelivery:
    """Delivers one outbox row to Slack, paced (a `bot.outbox.Deliverer`; see the module)."""

    def __init__(
        self,
        clients: ClientSource,
        pacer: Pacer,
        *,
        max_wait: float = 2.0,
        on_refused: OnRefused | None = None,
    ) -> None:
        self._clients = clients
        self._pacer = pacer
        self._max_wait = max_wait
        self.on_refused = on_refused
        self._ims: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def __call__(self, message: OutboxMessage) -> Outcome:
        """Deliver `message`: Slack's answer as an `Outcome`."""
        client = await self._clients(message.team_id)
        if client is None:
            outcome: Outcome = Refusal("no Slack installation in this workspace")
        else:
            outcome = await self._deliver(_without_waits(client), message)
        if isinstance(outcome, Refusal) and self.on_refused is not None:
            await self.on_refused(message, outcome.reason)
        return outcome

    async def _deliver(self, client: AsyncWebClient, message: OutboxMessage) -> Outcome:
        method, channel = "", None
        try:
            if message.kind == OutboxKind.DM:
                method = "conversations.open"
                channel = await self._im(client, message)
                method = "chat.postMessage"
                return await self._post(client, message, channel)
            channel = message.channel or message.destination
            if message.ts and message.channel:
                method = "chat.update"
                return await self._update(client, message)
            method = "chat.postMessage"
            return await self._post(client, message, message.destination)
        except Paced as paced:
            return Wait(paced.seconds, "paced")
        except SLACK_ERRORS as error:
            return self._failed(message, method, channel, error)

    async def _im(self, client: AsyncWebClient, message: OutboxMessage) -> str:
        key = (message.team_id, message.destination)
        found = self._ims.get(key)
        if found is not None:
            self._ims.move_to_end(key)
            return found
        await self._pace(message.team_id, "conversations.open", None)
        opened = await client.conversations_open(users=message.destination)
        channel = str(opened["channel"]["id"])
        self._ims[key] = channel
        if len(self._ims) > IM_CHANNELS_KEPT:
            self._ims.popitem(last=False)
        return channel

    async def _post(self, client: AsyncWebClient, message: OutboxMessage, channel: str) -> Outcome:
        await self._pace(message.team_id, "chat.postMessage", channel)
        text, blocks = _content(message)
        response = await client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False
        )
        return Delivered(str(response.get("channel") or channel), str(response["ts"]))

    async def _update(self, client: AsyncWebClient, message: OutboxMessage) -> Outcome:
        assert message.channel is not None and message.ts is not None
        await self._pace(message.team_id, "chat.update", message.channel)
        text, blocks = _content(message)
        try:
            await client.chat_update(
                channel=message.channel, ts=message.ts, text=text, blocks=blocks or []
            )
        except SlackApiError as error:
            if _why(error) != "message_not_found":
                raise
            # Someone deleted the message: post it again, so its news is not lost.
            return await self._post(client, message, message.destination)
        return Delivered(message.channel, message.ts)

    async def _pace(self, team_id: str, method: str, channel: str | None) -> None:
        wait = self._pacer.reserve(team_id, method, channel, within=self._max_wait)
        if wait > 0:
            await asyncio.sleep(wait)

    def _failed(
        self, message: OutboxMessage, method: str, channel: str | None, error: BaseException
    ) -> Outcome:
        why = _why(error)
        if isinstance(error, SlackApiError) and error.response is not None:
            if error.response.status_code == 429 or why == "ratelimited":
                seconds = _retry_after(error.response.headers)
                self._pacer.blocked(message.team_id, method, channel, seconds)
                log.info("Slack asked to wait %.0f s before %s (%s)", seconds, method, message.key)
                return Wait(seconds, "ratelimited")
            if error.response.status_code >= 500 or why in PASSING:
                return Failure(why)
            log.warning("Slack refused %s to %s: %s", method, message.destination, why)
            return Refusal(why)
        log.warning("could not reach Slack for %s: %s", message.key, why)
        return Failure(why)


def _content(message: OutboxMessage) -> tuple[str, list[Block] | None]:
    """The text and blocks of an owed message; a digest's are drawn from its sends' facts."""
    payload = message.payload
    if message.purpose == DIGEST:
        items = [DigestItem.from_facts(f) for f in payload.get("items", []) if isinstance(f, dict)]
        mine = payload.get("digest") == FOR_REQUESTER
        zone = next((item.timezone for item in items if mine and item.timezone), "UTC")
        return (
            digest_text(items, timezone=zone, mine=mine),
            digest_blocks(items, timezone=zone, mine=mine),
        )
    blocks = payload.get("blocks")
    return str(payload.get("text") or ""), list(blocks) if blocks is not None else None


def _why(error: BaseException) -> str:
    """Slack's error code, `HTTP 503` for an answer without one, else the kind of failure."""
    response = error.response if isinstance(error, SlackApiError) else None
    if response is not None:
        data = response.data
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
        return f"HTTP {response.status_code}"
    return type(error).__name__


def _retry_after(headers: Any) -> float:
    """Seconds of Slack's `Retry-After` header (1 when absent or unreadable)."""
    value: Any = None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter("Retry-After") or getter("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(1.0, float(str(value)))
    except (TypeError, ValueError):
        return 1.0


def _without_waits(client: AsyncWebClient) -> AsyncWebClient:
    """`client` without the SDK's retry on 429: the drainer waits out `Retry-After` itself,
    with the row handed back, instead of holding a place asleep inside the call."""
    handlers = [
        h for h in client.retry_handlers if not isinstance(h, AsyncRateLimitErrorRetryHandler)
    ]
    if len(handlers) == len(client.retry_handlers):
        return client
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        retry_handlers=handlers,
        session=client.session,
        proxy=client.proxy,
        ssl=client.ssl,
    )
