"""How a OneSignal request travels: onto the aiohttp pool of `make_http_client` directly, or httpx.

A `create_notification` through `httpx.AsyncClient` on the aiohttp transport spends about two
thirds of its CPU in httpx's request and response layers (URL and header merging, cookie
extraction, auth and redirect machinery, stream wrappers) before aiohttp does the actual
work (benchmarks/onesignal_client.py). A process delivering a burst of sends pays that on
every send, so the client built by `make_http_client` (a `PooledHttpClient`) lets
`OneSignalClient` hand its requests to the aiohttp session underneath directly. It stays a
complete `httpx.AsyncClient` for anything else; any other injected `httpx.AsyncClient` (a
`MockTransport`, a proxy, hooks...) is used through httpx's public API, as is a
`PooledHttpClient` once event hooks are set on it.

A `PooledHttpClient` may carry an `observer`, told of every exchange on either path (the
operation, OneSignal's HTTP status or why there was none, the retry number, the time it
took): the way a process counts its OneSignal requests without this package knowing of
any metrics library. An httpx event hook would see only the httpx path, and none of the
failures without an answer.
"""

from __future__ import annotations

import email.message
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# A send to a large segment can take OneSignal several seconds to accept.
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)
USER_AGENT: Final = "pushops-onesignal/0.1"

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "Answer",
    "Channel",
    "Exchange",
    "ExchangeObserver",
    "PooledHttpClient",
    "is_timeout",
    "make_http_client",
]


@dataclass(frozen=True, slots=True)
class Answer:
    """OneSignal's HTTP answer, read in full: what the client needs of it, whichever path."""

    status: int
    headers: Mapping[str, str]  # case-insensitive in both paths
    content: bytes

    @property
    def is_success(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text, in the charset it declares (UTF-8 when none or unknown)."""
        message = email.message.Message()
        message["content-type"] = self.headers.get("Content-Type", "")
        charset = message.get_content_charset(failobj=None) or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP exchange with OneSignal, as an observer of the pool sees it.

    Attributes:
        operation: the client's operation (`create_notification`, `fetch_user`...).
        status: OneSignal's HTTP status; None when no answer came.
        failure: why no answer came: `timeout`, or `connection` (refused, dropped...).
        retry: 0 for the first try of a request, n for its n-th retry.
        seconds: how long the exchange took.
    """

    operation: str
    status: int | None
    failure: Literal["timeout", "connection"] | None
    retry: int
    seconds: float


ExchangeObserver = Callable[[Exchange], None]
"""Told of each exchange once it ended; it must be quick and must not raise."""


def is_timeout(error: BaseException) -> bool:
    """Whether a failure without an answer was a timeout (else the connection failed)."""
    cause = error.__cause__ if isinstance(error, httpx.TransportError) else error
    if isinstance(cause, aiohttp.ClientError | TimeoutError):
        # The aiohttp transport maps a dropped connection to httpx.ConnectTimeout; its own
        # exception says what really happened.
        return isinstance(cause, TimeoutError)
    return isinstance(error, httpx.TimeoutException)


class PooledHttpClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` on one aiohttp connection pool that `OneSignalClient` uses directly.

    Build it with `make_http_client`. The aiohttp session is created on first use, inside
    the running loop, and closed with this client. `observer` is told of every exchange of
    every `OneSignalClient` on this pool (see `Exchange`).
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        timeout: float | httpx.Timeout,
        observer: ExchangeObserver | None = None,
    ) -> None:
        self.observer = observer
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._pool_transport = AiohttpTransport(limits=limits, client=self.aiohttp_session)
        super().__init__(
            transport=self._pool_transport, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )

    def aiohttp_session(self) -> aiohttp.ClientSession:
        """The aiohttp session under this client, shared by its httpx transport."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                # aiohttp's 0 is "no limit", httpx's None.
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry,
                ssl=self._pool_transport.ssl_context,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    @property
    def direct(self) -> bool:
        """Whether a request may skip httpx: open, and no event hook expects to see it."""
        hooks = self.event_hooks
        return not (self.is_closed or hooks["request"] or hooks["response"])

    async def aclose(self) -> None:
        """Close the httpx client and the aiohttp pool."""
        await super().aclose()
        await self._close_session()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await super().__aexit__(exc_type, exc_value, traceback)
        await self._close_session()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_http_client(
    *,
    max_connections: int = 100,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    observer: ExchangeObserver | None = None,
) -> PooledHttpClient:
    """A pooled `httpx.AsyncClient` on aiohttp, to share between `OneSignalClient`s.

    httpx's own async transport (httpcore) is several times slower under concurrency
    (encode/httpx#3215), and `OneSignalClient` sends through this client's aiohttp pool
    directly (see the module docstring); `benchmarks/onesignal_client.py` measures each.
    aiohttp is already installed for slack-bolt. Create it inside the event loop that will
    use it. `observer` is told of every exchange through it (`Exchange`).
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return PooledHttpClient(limits=limits, timeout=timeout, observer=observer)


def _aiohttp_timeout(timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
    """httpx's timeouts in aiohttp's terms, as the httpx-aiohttp transport maps them."""
    return aiohttp.ClientTimeout(
        sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
    )


def _query_value(value: Any) -> str:
    # httpx writes booleans as true/false; yarl refuses them.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Channel:
    """Sends requests through `http`: its aiohttp pool when `http` allows it, else httpx.

    Raises what the path raises for a request without an answer: `httpx.TransportError`
    (chained to aiohttp's error) through httpx, `aiohttp.ClientError` or `TimeoutError`
    directly. Tells the pool's observer, if any, of each exchange.
    """

    __slots__ = ("_aiohttp_timeout", "_http", "_observer", "_timeout")

    def __init__(self, http: httpx.AsyncClient, timeout: httpx.Timeout) -> None:
        self._http = http
        self._timeout = timeout
        self._aiohttp_timeout = _aiohttp_timeout(timeout)
        self._observer = http.observer if isinstance(http, PooledHttpClient) else None

    async def send(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        retry: int = 0,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> Answer:
        """One HTTP exchange of `operation` (its `retry`-th retry), its answer read in full."""
        observer = self._observer
        if observer is None:
            return await self._exchange(method, url, params, content, headers)
        started = time.monotonic()
        try:
            answer = await self._exchange(method, url, params, content, headers)
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as error:
            failure: Literal["timeout", "connection"] = (
                "timeout" if is_timeout(error) else "connection"
            )
            observer(Exchange(operation, None, failure, retry, time.monotonic() - started))
            raise
        observer(Exchange(operation, answer.status, None, retry, time.monotonic() - started))
        return answer

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> Answer:
        http = self._http
        if isinstance(http, PooledHttpClient) and http.direct:
            return await self._send_direct(
                http.aiohttp_session(), method, url, params, content, headers
            )
        response = await http.request(
            method, url, params=params, content=content, headers=headers, timeout=self._timeout
        )
        return Answer(response.status_code, response.headers, response.content)

    async def _send_direct(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> Answer:
        query = {name: _query_value(value) for name, value in params.items()} if params else None
        async with session.request(
            method,
            url,
            params=query,
            data=content,
            headers=headers,
            timeout=self._aiohttp_timeout,
            allow_redirects=False,  # as through httpx, whose clients do not follow them
        ) as response:
            body = await response.read()
        return Answer(response.status, response.headers, body)
