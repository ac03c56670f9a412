"""Fixtures of the OneSignal client tests: a real client pointed at the fake over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.onesignal import OneSignalClient


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


@pytest.fixture
async def client(fake_onesignal: Any) -> AsyncIterator[OneSignalClient]:
    async with make_client(fake_onesignal) as client:
        yield client
