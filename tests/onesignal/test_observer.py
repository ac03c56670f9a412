"""The pool's observer hears of every exchange: its operation, status or failure, and retry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.onesignal import Exchange, PooledHttpClient, make_http_client
from tests.onesignal.conftest import make_client

PATHS = ["pooled", "pooled-hooked"]


async def _noop_hook(_: Any) -> None:
    """Its presence sends requests through httpx instead of the pool directly."""


@pytest.fixture(params=PATHS)
async def observed(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PooledHttpClient, list]]:
    seen: list[Exchange] = []
    async with make_http_client(observer=seen.append) as http:
        if request.param == "pooled-hooked":
            http.event_hooks = {"request": [_noop_hook], "response": [_noop_hook]}
        yield http, seen


def _plain(seen: list[Exchange]) -> list[tuple[str, int | None, str | None, int]]:
    return [(e.operation, e.status, e.failure, e.retry) for e in seen]


def _notification(fake: Any) -> dict[str, Any]:
    return {"app_id": fake.app.id, "contents": {"en": "Hi"}, "included_segments": ["Active Users"]}


async def test_answers_are_seen_with_operation_status_and_retry(observed, fake_onesignal) -> None:
    http, seen = observed
    fake_onesignal.faults.statuses([429], method="POST", path="/notifications", retry_after=0.01)
    async with make_client(fake_onesignal, http_client=http) as client:
        await client.create_notification(_notification(fake_onesignal))
        await client.get_segments(fake_onesignal.app.id)

    assert _plain(seen) == [
        ("create_notification", 429, None, 0),
        ("create_notification", 200, None, 1),
        ("get_segments", 200, None, 0),
    ]
    assert all(e.seconds >= 0 for e in seen)


async def test_a_refusal_is_seen_with_its_status(observed, fake_onesignal) -> None:
    http, seen = observed
    async with make_client(
        fake_onesignal, http_client=http, rest_api_key="os_v2_app_wrong"
    ) as client:
        with pytest.raises(Exception, match="Access denied"):
            await client.get_notifications(fake_onesignal.app.id, limit=1)

    assert _plain(seen) == [("get_notifications", 403, None, 0)]


async def test_no_answer_is_seen_as_a_timeout_or_a_connection_failure(
    observed, fake_onesignal
) -> None:
    http, seen = observed
    fake_onesignal.faults.latency(1.0, method="GET", path="/notifications/")
    async with make_client(fake_onesignal, http_client=http, timeout=0.2, max_retries=1) as client:
        with pytest.raises(Exception, match="timed out"):
            await client.get_notification(fake_onesignal.app.id, str(uuid.uuid4()))
    async with make_client(
        fake_onesignal, http_client=http, base_url="http://127.0.0.1:9", max_retries=0
    ) as client:
        with pytest.raises(Exception, match="connection failed"):
            await client.get_segments(fake_onesignal.app.id)

    assert _plain(seen) == [
        ("get_notification", None, "timeout", 0),
        ("get_notification", None, "timeout", 1),
        ("get_segments", None, "connection", 0),
    ]
