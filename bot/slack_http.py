"""One aiohttp session for every call to Slack: the Web API and `response_url` replies.

slack_sdk opens a new aiohttp session for each call unless it is given one: a new
connection (with its TLS handshake, against slack.com) per reply, DM or lookup. Under a
burst of `/push send --yes`, replying through `response_url` alone took a tenth of the
process's CPU that way. The session is made on first use, inside the running event loop,
and closed at shutdown (`Services.aclose`).

`SlackErrorCounter` counts the calls that failed, by method and Slack's error code, for the
metrics.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import async_default_handlers
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

log = logging.getLogger(__name__)

CONNECTIONS = 100
"""Connections kept open to Slack at most (replies beyond wait for one)."""

RESPONSE_URL: Final = "response_url"
"""The method name under which failed replies to a `response_url` are counted."""

CountError = Callable[[str, str], None]
"""Counts one failed call: (Slack method or RESPONSE_URL, error code)."""

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


class SlackErrorCounter(AsyncRetryHandler):
    """Counts every failed call to Slack by method and error; never asks for a retry.

    slack_sdk shows each of a client's retry handlers every answer (the Web API's, with its
    JSON parsed) and every call that raised: the one public hook that sees the `error` of an
    `ok: false` answer (an aiohttp trace would see only the HTTP status). Put it first in a
    client's `retry_handlers`, so that it sees each failure before another handler retries.

    Args:
        count: told (method, error): Slack's error code, `http_<status>` for a failed
            answer without one, `timeout` or `connection_error` when no answer came.
        method: the method to count under (RESPONSE_URL for replies); by default the Web
            API method at the end of the request's URL.
    """

    def __init__(self, count: CountError, *, method: str | None = None) -> None:
        super().__init__(max_retry_count=0)
        self._count = count
        self._method = method

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        """Count the failure, if this is one; False: retrying is for the handlers after it."""
        failure = _failure(response, error)
        if failure is not None:
            self._count(self._method or _method_of(request.url), failure)
        return False


def _failure(response: HttpResponse | None, error: Exception | None) -> str | None:
    if error is not None:
        return "timeout" if isinstance(error, TimeoutError) else "connection_error"
    if response is None:
        return None
    body = response.body
    if isinstance(body, dict) and body.get("ok") is False:
        return str(body.get("error") or "unknown")
    if response.status_code < 400:
        return None
    text = (response.data or b"").decode("utf-8", errors="replace").strip()
    return text if text.isidentifier() else f"http_{response.status_code}"


def _method_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


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


_RESPOND: Final = inspect.signature(AsyncRespond.__call__)
"""The parameters of Bolt's `respond()`, which `PooledRespond` takes as they are."""

_NAMES: Final = frozenset(list(_RESPOND.parameters)[1:])
_SELF_AND_TEXT: Final = (next(iter(_RESPOND.parameters)), "text")

_LISTS: Final = ("blocks", "attachments")
"""Parameters whose Block Kit objects are posted as dicts, and left out when empty."""


class PooledRespond(AsyncRespond):
    """Bolt's `respond()`, posting to the `response_url` through the shared session.

    Bolt's own `respond()` opens an aiohttp session per reply, and nothing public lets it use
    another; this one takes the same arguments (Bolt's signature, bound at each call, so a
    parameter Bolt adds comes along) and posts the message Bolt would post (each argument
    under its own name, None ones left out, `text` always there). tests/bot/test_slack_http.py
    holds the two to the same body for every parameter.
    """

    def __init__(
        self,
        *,
        response_url: str | None,
        session: aiohttp.ClientSession,
        api_url: str,
        proxy: str | None = None,
        ssl: SSLContext | None = None,
        count_error: CountError | None = None,
    ) -> None:
        super().__init__(response_url=response_url, proxy=proxy, ssl=ssl)
        self.session = session
        self.api_url = api_url
        self.retry_handlers: list[AsyncRetryHandler] = async_default_handlers()
        if count_error is not None:
            self.retry_handlers.insert(0, SlackErrorCounter(count_error, method=RESPONSE_URL))

    async def __call__(self, *args: Any, **kwargs: Any) -> WebhookResponse:
        """As `AsyncRespond.__call__`: a message, or a whole response as a dict."""
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        message = respond_message(*args, **kwargs)
        if not is_slack_response_url(self.response_url, self.api_url):
            host = urlsplit(self.response_url).hostname or "?"
            log.warning("refused to post to a response_url off Slack's hosts (%s)", host[:100])
            return WebhookResponse(
                url=self.response_url, status_code=403, body="not a Slack response_url", headers={}
            )
        client = AsyncWebhookClient(
            url=self.response_url,
            proxy=self.proxy,
            ssl=self.ssl,
            session=self.session,
            retry_handlers=self.retry_handlers,
        )
        return await client.send_dict(message)


def respond_message(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The body Bolt's `respond(*args, **kwargs)` posts; a TypeError for arguments it refuses.

    As in Bolt, a dict for `text` is the whole response, its keys Bolt's parameters.
    """
    if not args and kwargs.keys() <= _NAMES:
        given = kwargs  # what binding Bolt's signature gives, at a tenth of its cost
    else:
        given = _RESPOND.bind(None, *args, **kwargs).arguments  # None for `self`
    text = given.get("text", "")
    if isinstance(text, dict):
        return respond_message(**text)
    message: dict[str, Any] = {"text": text}
    for name, value in given.items():
        if name in _LISTS:
            if value:
                message[name] = [_as_dict(item) for item in value]
        elif value is not None and name not in _SELF_AND_TEXT:
            message[name] = value
    return message


def _as_dict(item: dict[str, Any] | JsonObject) -> dict[str, Any]:
    return item.to_dict() if isinstance(item, JsonObject) else item


Next = Callable[[], Awaitable[BoltResponse]]


def pooled_respond_middleware(
    http: SlackHttp, api_url: str, count_error: CountError | None = None
) -> Callable[..., Awaitable[BoltResponse]]:
    """A global Bolt middleware giving listeners a `respond` on the shared session, which
    posts only to Slack's own hosts (`is_slack_response_url`) and tells `count_error` of
    each failed reply.

    It replaces whatever `respond` the context holds: Bolt makes its own as soon as anything
    asks the context for one, and it asks while building the arguments of any global
    middleware registered before this one. Listeners are given what the context holds
    (Bolt's way for a global middleware to customize them, slackapi/bolt-python#103);
    tests/bot/test_slack_http.py::test_replies_to_response_urls_share_pooled_connections
    fails if a Bolt release stops giving them this one.
    """

    # `next` shadows the builtin: Bolt passes a middleware's arguments by these names.
    async def pooled_respond(context: AsyncBoltContext, next: Next) -> BoltResponse:
        if context.response_url is not None:
            context["respond"] = PooledRespond(
                response_url=context.response_url,
                session=http.session(),
                api_url=api_url,
                proxy=context.client.proxy if context.client else None,
                ssl=context.client.ssl if context.client else None,
                count_error=count_error,
            )
        return await next()

    return pooled_respond
