"""Fixtures of the OneSignal client tests: a real client pointed at the fake over loopback.

Every test that takes `client` or `http_client` runs once per way a request can travel:
`pooled` (the client of `make_http_client`, whose aiohttp pool `OneSignalClient` uses
directly), `pooled-hooked` (the same client with an event hook, so requests go through
httpx and its aiohttp transport) and `httpx` (a plain `httpx.AsyncClient` on httpcore, as a
user might inject).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.onesignal import OneSignalClient, make_http_client

HTTP_PATHS = ["pooled", "pooled-hooked", "httpx"]


def make_client(fake: Any, **overrides: Any) -> OneSignalClient:
    """A client of the fake's seeded app with fast retries (tests wait milliseconds)."""
    options: dict[str, Any] = {
        "rest_api_key": fake.app.rest_api_key,
        "organization_api_key": fake.org_api_key,
        "base_url": fake.url,
        "timeout": 5.0,
        "retry_base_delay": 0.01,
        "retry_max_delay": 1.0,
    }
    options.update(overrides)
    return OneSignalClient(**options)


async def _noop_hook(_: Any) -> None:
    """An event hook that only makes its presence felt: requests must then go through httpx."""


def open_http_client(path: str, timeout: float | None = None) -> httpx.AsyncClient:
    """An httpx client for one of `HTTP_PATHS`, with its own defaults or `timeout` (the
    caller closes it)."""
    if path == "httpx":
        return httpx.AsyncClient() if timeout is None else httpx.AsyncClient(timeout=timeout)
    http = make_http_client() if timeout is None else make_http_client(timeout=timeout)
    if path == "pooled-hooked":
        http.event_hooks = {"request": [_noop_hook], "response": [_noop_hook]}
    return http


@pytest.fixture(params=HTTP_PATHS)
async def http_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with open_http_client(request.param) as http:
        yield http


@pytest.fixture
async def client(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> AsyncIterator[OneSignalClient]:
    async with make_client(fake_onesignal, http_client=http_client) as client:
        yield client
