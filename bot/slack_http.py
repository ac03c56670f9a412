"""One aiohttp session for every call to Slack: the Web API and `response_url` replies.

slack_sdk opens a new aiohttp session for each call unless it is given one: a new
connection (with its TLS handshake, against slack.com) per reply, DM or lookup. Under a
burst of `/push send --yes`, replying through `response_url` alone took a tenth of the
process's CPU that way. The session is made on first use, inside the running event loop,
and closed at shutdown (`Services.aclose`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.response import BoltResponse
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

log = logging.getLogger(__name__)

CONNECTIONS = 100
"""Connections kept open to Slack at most (replies beyond wait for one)."""

SLACK_HOOK_HOSTS: Final = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})
"""Where Slack's `response_url`s point (the commercial and the GovSlack hosts)."""


def is_slack_response_url(url: str, api_url: str) -> bool:
    """Whether `url` is on Slack's own hosts: a hooks host over HTTPS, or the Web API's origin
    (SLACK_API_URL, which tests point at a fake Slack that serves response URLs too).

    Only Slack can sign a payload, but whatever a payload names, PushOps posts nowhere else.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
        base = urlsplit(api_url)
        base_port = base.port
    except ValueError:  # a port that is not a number, an unbalanced IPv6 bracket
        return False
    if parts.scheme == "https" and parts.hostname in SLACK_HOOK_HOSTS and port in (None, 443):
        return True
    origin = (base.scheme, base.hostname, base_port)
    return bool(parts.hostname) and (parts.scheme, parts.hostname, port) == origin


class SlackHttp:
    """The shared session, made lazily in the serving loop."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session (made now, inside the running loop, when there is none yet)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class PooledRespond(AsyncRespond):
    """Bolt's `respond()`, posting to the `response_url` through the shared session."""

    def __init__(
        self,
        *,
        response_url: str | None,
        session: aiohttp.ClientSession,
        api_url: str,
        proxy: str | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        super().__init__(response_url=response_url, proxy=proxy, ssl=ssl)
        self.session = session
        self.api_url = api_url

    async def __call__(
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[dict[str, Any] | Block] | None = None,
        attachments: Sequence[dict[str, Any] | Attachment] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        """As `AsyncRespond.__call__` (a message, or a whole response as a dict)."""
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if not is_slack_response_url(self.response_url, self.api_url):
            host = urlsplit(self.response_url).hostname or "?"
            log.warning("refused to post to a response_url off Slack's hosts (%s)", host[:100])
            return WebhookResponse(
                url=self.response_url, status_code=403, body="not a Slack response_url", headers={}
            )
        client = AsyncWebhookClient(
            url=self.response_url, proxy=self.proxy, ssl=self.ssl, session=self.session
        )
        if isinstance(text, dict):
            return await client.send_dict(_build_message(**text))
        message = _build_message(
            text=text,
            blocks=blocks,
            attachments=attachments,
            response_type=response_type,
            replace_original=replace_original,
            delete_original=delete_original,
            unfurl_links=unfurl_links,
            unfurl_media=unfurl_media,
            thread_ts=thread_ts,
            metadata=metadata,
        )
        return await client.send_dict(message)


Next = Callable[[], Awaitable[BoltResponse]]


def pooled_respond_middleware(
    http: SlackHttp, api_url: str
) -> Callable[..., Awaitable[BoltResponse]]:
    """A global Bolt middleware giving listeners a `respond` on the shared session, which
    posts only to Slack's own hosts (`is_slack_response_url`).

    It replaces whatever `respond` the context holds: Bolt makes its own as soon as anything
    asks the context for one, and it asks while building the arguments of any global
    middleware registered before this one.
    """

    async def pooled_respond(context: AsyncBoltContext, next: Next) -> BoltResponse:  # noqa: A002 - Bolt passes arguments by these names
        if context.response_url is not None:
            context["respond"] = PooledRespond(
                response_url=context.response_url,
                session=http.session(),
                api_url=api_url,
                proxy=context.client.proxy if context.client else None,
                ssl=context.client.ssl if context.client else None,
            )
        return await next()

    return pooled_respond
