"""How `pushops serve` listens: uvicorn's settings, and a deadline for every request's headers.

uvicorn bounds idle keep-alive connections but not a client that sends its headers slowly
(one byte at a time, or half of them and then nothing): each such connection would stay
open for good, and enough of them hold the process. So each connection gets a deadline
(`HEADER_TIMEOUT`) by which a whole request head must have arrived, armed when it opens
and again after every response, and the server's connection limit is set. The body has its
own deadline at the door (`bot.door.BODY_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

HEADER_TIMEOUT: Final = 10.0
"""Seconds a connection has to deliver a request's headers (from opening, or from the
previous response)."""

MAX_CONNECTIONS: Final = 1000
"""Connections (and requests in progress) at once; beyond, uvicorn answers 503."""

KEEP_ALIVE: Final = 5
"""Seconds an idle keep-alive connection stays open (uvicorn's own timeout)."""

Address = tuple[str, int]
ASGIApp = Callable[..., Awaitable[None]]


class HeaderDeadlines:
    """Connections waiting for a request head, by client address, each with a timer."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._transports: dict[Address, asyncio.BaseTransport] = {}
        self._timers: dict[Address, asyncio.TimerHandle] = {}

    def opened(self, address: Address, transport: asyncio.BaseTransport) -> None:
        """A connection opened: its first request head is due within the timeout."""
        self._transports[address] = transport
        self.arm(address)

    def closed(self, address: Address) -> None:
        """A connection closed: forget it."""
        self.disarm(address)
        self._transports.pop(address, None)

    def arm(self, address: Address) -> None:
        """Close the connection unless a request head arrives within the timeout."""
        transport = self._transports.get(address)
        if transport is None:
            return
        self.disarm(address)
        loop = asyncio.get_running_loop()
        self._timers[address] = loop.call_later(self.timeout, transport.close)

    def disarm(self, address: Address) -> None:
        """A request head arrived (or the connection is gone): no deadline until it ends."""
        timer = self._timers.pop(address, None)
        if timer is not None:
            timer.cancel()

    def protocol(self, inner: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol class `inner`, reporting its connections to these deadlines."""
        return _watched(inner, self)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """`app`, disarming the deadline when a request arrives and re-arming it after."""

        async def watched(scope: dict[str, Any], receive: Any, send: Any) -> None:
            client = scope.get("client") if scope["type"] == "http" else None
            if not client:
                await app(scope, receive, send)
                return
            address = (str(client[0]), int(client[1]))
            self.disarm(address)

            async def sending(message: dict[str, Any]) -> None:
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    self.arm(address)

            await app(scope, receive, sending)

        return watched


def _watched(inner: type[asyncio.Protocol], deadlines: HeaderDeadlines) -> type[asyncio.Protocol]:
    """A protocol class that forwards everything to an `inner` instance and tells `deadlines`.

    Composition, not a subclass of uvicorn's protocols: it relies only on uvicorn building
    the class named by `Config(http=...)` with keyword arguments (its documented way of
    taking a custom protocol class) and on asyncio's Protocol interface.
    """

    class Watched(asyncio.Protocol):
        def __init__(self, **kwargs: Any) -> None:
            self._inner = inner(**kwargs)
            self._address: Address | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple | list) and len(peer) >= 2:
                self._address = (str(peer[0]), int(peer[1]))
                deadlines.opened(self._address, transport)
            self._inner.connection_made(transport)

        def data_received(self, data: bytes) -> None:
            self._inner.data_received(data)

        def eof_received(self) -> bool | None:
            return self._inner.eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._address is not None:
                deadlines.closed(self._address)
            self._inner.connection_lost(exc)

        def pause_writing(self) -> None:
            self._inner.pause_writing()

        def resume_writing(self) -> None:
            self._inner.resume_writing()

    return Watched


def server_config(
    app: ASGIApp, *, header_timeout: float = HEADER_TIMEOUT, **overrides: Any
) -> uvicorn.Config:
    """uvicorn's configuration for `app`, as `pushops serve` runs it (tests use it too).

    `overrides` go to `uvicorn.Config` as they are (a test's log level, say).
    """
    deadlines = HeaderDeadlines(header_timeout)
    inner: type[asyncio.Protocol] = import_from_string(HTTP_PROTOCOLS["auto"])
    values: dict[str, Any] = {
        "lifespan": "on",
        "log_config": None,  # logging is ours (bot.logs): one format, secrets redacted
        # X-Forwarded-For is applied inside the deadlines' middleware, which must see the
        # connection's own address (uvicorn's `proxy_headers` would apply it outside).
        "proxy_headers": False,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_keep_alive": KEEP_ALIVE,
        "http": deadlines.protocol(inner),
        # Nothing here speaks WebSocket (Socket Mode is a client), so uvicorn loads no
        # WebSocket protocol, whichever library is installed (a development one costs 1 MB).
        "ws": "none",
    }
    values.update(overrides)
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")  # uvicorn's own default
    forwarded = ProxyHeadersMiddleware(app, trusted_hosts=trusted)
    return uvicorn.Config(deadlines.middleware(forwarded), **values)
