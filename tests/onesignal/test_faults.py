"""What the client does when OneSignal refuses, fails, stalls or drops the connection."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from bot.onesignal import (
    BadRequest,
    Forbidden,
    InvalidRequest,
    NotFound,
    NothingSent,
    OneSignalAPIError,
    OneSignalClient,
    OneSignalConnectError,
    OneSignalTimeout,
    OneSignalTransportError,
    RateLimited,
    ServerError,
    Unauthorized,
)
from tests.onesignal.conftest import HTTP_PATHS, make_client, open_http_client


def notification(fake: Any, **extra: Any) -> dict[str, Any]:
    return {
        "app_id": fake.app.id,
        "contents": {"en": "Hello"},
        "included_segments": ["Active Users"],
        **extra,
    }


NOT_SUBSCRIBED = "All included players are not subscribed"


def keys_sent(fake: Any) -> list[str]:
    return [r.json["idempotency_key"] for r in fake.requests_to("POST", "/notifications")]


# ----------------------------------------------------------------------------- 429


async def test_429_with_retry_after_waits_then_retries(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    fake_onesignal.faults.statuses([429], path="/notifications", retry_after=0.3)
    created = await client.create_notification(notification(fake_onesignal))
    first, second = fake_onesignal.requests_to("POST", "/notifications")
    assert second.time - first.time >= 0.3
    assert list(fake_onesignal.notifications) == [created.id]


async def test_429_is_retried_even_for_a_write(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    """A 429 means OneSignal did nothing, so even a non-repeatable write may go again."""
    fake_onesignal.faults.statuses([429], path=f"/apps/{fake_onesignal.app.id}/segments")
    created = await client.create_segments(
        fake_onesignal.app.id, segment={"name": "VIP", "filters": []}
    )
    assert created.success is True
    assert len(fake_onesignal.requests_to("POST", f"/apps/{fake_onesignal.app.id}/segments")) == 2


async def test_429_beyond_the_retries_raises_rate_limited(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    fake_onesignal.faults.statuses([429, 429, 429], path="/notifications", retry_after=0.01)
    async with make_client(fake_onesignal, http_client=http_client, max_retries=2) as client:
        with pytest.raises(RateLimited) as caught:
            await client.get_notifications(fake_onesignal.app.id)
    assert caught.value.status == 429
    assert caught.value.retry_after == pytest.approx(0.01)
    assert caught.value.errors == ["API rate limit exceeded."]
    assert len(fake_onesignal.requests_to("GET", "/notifications")) == 3


async def test_retry_after_above_the_cap_is_not_waited_for(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    fake_onesignal.faults.statuses([429], path="/notifications", retry_after=120)
    async with make_client(fake_onesignal, http_client=http_client, retry_max_delay=5.0) as client:
        with pytest.raises(RateLimited) as caught:
            await client.get_notifications(fake_onesignal.app.id)
    assert caught.value.retry_after == 120
    assert len(fake_onesignal.requests_to("GET", "/notifications")) == 1


# ------------------------------------------------------------- 5xx and transport errors


async def test_503_is_retried_for_a_read(client: OneSignalClient, fake_onesignal: Any) -> None:
    fake_onesignal.faults.statuses([503, 502], path=f"/apps/{fake_onesignal.app.id}/segments")
    page = await client.get_segments(fake_onesignal.app.id)
    assert page.segments
    assert len(fake_onesignal.requests_to("GET", f"/apps/{fake_onesignal.app.id}/segments")) == 3


async def test_503_is_not_retried_for_a_write_that_is_unsafe_to_repeat(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    fake_onesignal.faults.statuses([503], path=f"/apps/{fake_onesignal.app.id}/segments")
    with pytest.raises(ServerError) as caught:
        await client.create_segments(fake_onesignal.app.id, segment={"name": "VIP", "filters": []})
    assert caught.value.status == 503
    assert len(fake_onesignal.requests_to("POST", f"/apps/{fake_onesignal.app.id}/segments")) == 1


async def test_503_then_success_creates_one_notification_with_one_key(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    fake_onesignal.faults.statuses([503, 500], path="/notifications")
    created = await client.create_notification(notification(fake_onesignal))
    keys = keys_sent(fake_onesignal)
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert list(fake_onesignal.notifications) == [created.id]


async def test_dropped_connection_is_retried_with_the_same_key(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    fake_onesignal.faults.drop_connections(2, method="POST", path="/notifications")
    created = await client.create_notification(notification(fake_onesignal))
    keys = keys_sent(fake_onesignal)
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert list(fake_onesignal.notifications) == [created.id]


async def test_dropped_connection_is_retried_for_a_read(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    fake_onesignal.faults.drop_connections(1, path=f"/apps/{fake_onesignal.app.id}/segments")
    page = await client.get_segments(fake_onesignal.app.id)
    assert page.segments


async def test_dropped_connection_on_an_unsafe_write_surfaces(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    fake_onesignal.faults.drop_connections(1, path=f"/apps/{fake_onesignal.app.id}/segments")
    with pytest.raises(OneSignalConnectError):
        await client.create_segments(fake_onesignal.app.id, segment={"name": "VIP", "filters": []})
    assert len(fake_onesignal.requests_to("POST", f"/apps/{fake_onesignal.app.id}/segments")) == 1


async def test_every_retry_failing_raises_the_last_error(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    fake_onesignal.faults.drop_connections(10, method="POST", path="/notifications")
    async with make_client(fake_onesignal, http_client=http_client, max_retries=2) as client:
        with pytest.raises(OneSignalConnectError):
            await client.create_notification(notification(fake_onesignal))
    assert len(set(keys_sent(fake_onesignal))) == 1
    assert len(keys_sent(fake_onesignal)) == 3
    assert fake_onesignal.notifications == {}


async def test_a_timeout_surfaces_as_a_transport_error(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    fake_onesignal.faults.latency(1.0, path="/notifications")
    async with make_client(
        fake_onesignal, http_client=http_client, timeout=0.2, max_retries=1
    ) as client:
        with pytest.raises(OneSignalTimeout) as caught:
            await client.get_notification(fake_onesignal.app.id, str(uuid.uuid4()))
    assert isinstance(caught.value, OneSignalTransportError)
    assert len(fake_onesignal.requests_to("GET", "/notifications/")) == 2


@pytest.mark.parametrize("path", HTTP_PATHS)
async def test_a_client_on_a_shared_pool_waits_as_long_as_the_pool_is_set_to(
    fake_onesignal: Any, path: str
) -> None:
    fake_onesignal.faults.latency(1.0, path="/notifications")
    async with open_http_client(path, timeout=0.2) as http:
        # no timeout of its own: the pool's is the one every client on it uses
        client = make_client(fake_onesignal, http_client=http, timeout=None, max_retries=1)
        started = time.monotonic()
        with pytest.raises(OneSignalTimeout):
            await client.get_notification(fake_onesignal.app.id, str(uuid.uuid4()))
        elapsed = time.monotonic() - started

    assert len(fake_onesignal.requests_to("GET", "/notifications/")) == 2
    assert elapsed < 0.9  # two tries of 0.2 s and a short wait, never a full second


async def test_unreachable_server_is_a_connect_error(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    async with make_client(
        fake_onesignal, http_client=http_client, base_url="http://127.0.0.1:9", max_retries=1
    ) as client:
        with pytest.raises(OneSignalConnectError):
            await client.get_segments(fake_onesignal.app.id)


async def test_replayed_key_returns_the_first_notification(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    key = str(uuid.uuid4())
    first = await client.create_notification(notification(fake_onesignal, idempotency_key=key))
    again = await client.create_notification(notification(fake_onesignal, idempotency_key=key))
    assert again.id == first.id
    assert len(fake_onesignal.notifications) == 1


# ------------------------------------------------------------------------ 4xx: no retry


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequest), (401, Unauthorized), (403, Forbidden), (404, NotFound)],
)
async def test_client_errors_are_not_retried(
    client: OneSignalClient, fake_onesignal: Any, status: int, error: type[OneSignalAPIError]
) -> None:
    # POST only: a GET a timeout test left stalled in the fake may still arrive at its faults.
    fake_onesignal.faults.statuses([status], method="POST", path="/notifications")
    with pytest.raises(error) as caught:
        await client.create_notification(notification(fake_onesignal))
    assert caught.value.status == status
    assert caught.value.errors
    assert len(fake_onesignal.requests_to("POST", "/notifications")) == 1
    assert fake_onesignal.notifications == {}


async def test_wrong_key_is_forbidden_and_unknown_app_not_found(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    async with make_client(
        fake_onesignal, http_client=http_client, rest_api_key="os_v2_app_wrong"
    ) as client:
        with pytest.raises(Forbidden) as caught:
            await client.get_notifications(fake_onesignal.app.id, limit=1)
        assert "Access denied" in str(caught.value)
        with pytest.raises(NotFound):
            await client.get_notifications(str(uuid.uuid4()), limit=1)
    assert len(fake_onesignal.requests) == 2


async def test_missing_audience_is_a_bad_request_with_onesignal_reason(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    with pytest.raises(BadRequest) as caught:
        await client.create_notification({"app_id": fake_onesignal.app.id, "contents": {"en": "x"}})
    assert "segments" in "; ".join(caught.value.errors)


async def test_user_model_error_objects_are_readable(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    with pytest.raises(NotFound) as caught:
        await client.fetch_user(fake_onesignal.app.id, "external_id", "nobody")
    assert caught.value.errors == ["User not found (user-2)"]
    assert isinstance(caught.value.body, dict)


# ---------------------------------------------------------------------- nothing sent


@pytest.mark.parametrize(
    ("audience", "reason"),
    [
        # a user without any subscription: 200 with an empty id
        ({"include_aliases": {"external_id": ["no-device"]}}, NOT_SUBSCRIBED),
        # ids the app does not know at all: 200 without any id (openapi v1.2.2)
        ({"include_aliases": {"external_id": ["ghost"]}}, "invalid_aliases: external_id: ghost"),
        # OneSignal's classic answer, `{"errors": ["All included players are not subscribed"]}`
        ({"include_player_ids": ["ghost"]}, NOT_SUBSCRIBED),
    ],
)
async def test_200_with_an_empty_or_no_id_is_nothing_sent_and_not_retried(
    client: OneSignalClient, fake_onesignal: Any, audience: dict[str, Any], reason: str
) -> None:
    fake_onesignal.add_user(fake_onesignal.app.id, "no-device", subscriptions=[])
    body = {"app_id": fake_onesignal.app.id, "contents": {"en": "x"}, **audience}
    if "include_aliases" in audience:
        body["target_channel"] = "push"

    with pytest.raises(NothingSent) as caught:
        await client.create_notification(body)

    assert caught.value.status == 200
    assert caught.value.reason == reason
    assert "nothing" in str(caught.value)
    assert len(fake_onesignal.requests_to("POST", "/notifications")) == 1
    assert fake_onesignal.notifications == {}


# --------------------------------------------------------------------- bad input


async def test_invalid_body_is_refused_before_sending(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await client.create_notification({"contents": {"en": "no app"}})
    assert "app_id" in str(caught.value)
    with pytest.raises(InvalidRequest):
        await client.estimate_notification_recipients({"app_id": fake_onesignal.app.id})
    with pytest.raises(InvalidRequest):
        await client.fetch_user(fake_onesignal.app.id, "external_id", "")
    assert fake_onesignal.requests == []


async def test_org_operations_need_the_organization_key(fake_onesignal: Any) -> None:
    async with make_client(fake_onesignal, organization_api_key=None) as client:
        with pytest.raises(InvalidRequest, match="organization"):
            await client.get_apps()
    assert fake_onesignal.requests == []
