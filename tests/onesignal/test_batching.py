"""Sending one notification to many external ids, in batches OneSignal accepts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bot.onesignal import (
    BatchResult,
    Forbidden,
    InvalidRequest,
    NothingSent,
    OneSignalClient,
    RateLimited,
)
from bot.onesignal.batching import batch_key
from tests.onesignal.conftest import make_client

SEND_ID = "5b0d3a52-3a8c-4f5e-9a61-1d2f4c7e8b90"


def message(fake: Any) -> dict[str, Any]:
    return {"app_id": fake.app.id, "contents": {"en": "Maintenance tonight"}}


def seed_users(fake: Any, count: int) -> list[str]:
    ids = [f"user-{n}" for n in range(count)]
    for external_id in ids:
        fake.add_user(fake.app.id, external_id, subscriptions=[{"type": "AndroidPush"}])
    return ids


async def test_5000_ids_become_3_batches_with_3_derived_keys(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    ids = seed_users(fake_onesignal, 5000)
    results = await client.send_to_external_ids(
        message(fake_onesignal), ids, idempotency_key=SEND_ID
    )
    requests = fake_onesignal.requests_to("POST", "/notifications")
    sizes = [len(r.json["include_aliases"]["external_id"]) for r in requests]
    keys = [r.json["idempotency_key"] for r in requests]
    assert sizes == [2000, 2000, 1000]
    assert len(set(keys)) == 3 and SEND_ID not in keys
    assert keys == [str(uuid.uuid5(uuid.UUID(SEND_ID), str(n))) for n in range(3)]
    assert all(r.json["target_channel"] == "push" for r in requests)
    sent = [i for r in requests for i in r.json["include_aliases"]["external_id"]]
    assert sent == ids
    assert [(r.index, r.idempotency_key, r.external_ids_count) for r in results] == list(
        zip(range(3), keys, sizes, strict=True)
    )
    assert all(r.ok and r.notification_id in fake_onesignal.notifications for r in results)
    assert [r.recipients for r in results] == sizes


async def test_resending_the_same_send_creates_nothing_new(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    ids = seed_users(fake_onesignal, 2500)
    first = await client.send_to_external_ids(message(fake_onesignal), ids, idempotency_key=SEND_ID)
    again = await client.send_to_external_ids(message(fake_onesignal), ids, idempotency_key=SEND_ID)
    assert [r.notification_id for r in again] == [r.notification_id for r in first]
    assert len(fake_onesignal.notifications) == 2


async def test_one_batch_keeps_the_callers_key(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    ids = seed_users(fake_onesignal, 3)
    (result,) = await client.send_to_external_ids(
        message(fake_onesignal), [*ids, ids[0]], idempotency_key=SEND_ID
    )
    (request,) = fake_onesignal.requests_to("POST", "/notifications")
    assert request.json["idempotency_key"] == SEND_ID
    assert request.json["include_aliases"] == {"external_id": ids}  # the repeat was dropped
    assert result == BatchResult(0, SEND_ID, 3, result.notification_id, 3)


async def test_each_batch_reports_its_own_outcome(fake_onesignal: Any) -> None:
    seed_users(fake_onesignal, 2)
    ids = ["user-0", "user-1", "ghost-1", "ghost-2", "user-0b"]
    fake_onesignal.add_user(
        fake_onesignal.app.id, "user-0b", subscriptions=[{"type": "AndroidPush"}]
    )
    fake_onesignal.faults.statuses([200, 200, 429], path="/notifications", retry_after=0.01)
    async with make_client(fake_onesignal, max_retries=0) as client:
        results = await client.send_to_external_ids(
            message(fake_onesignal), ids, idempotency_key=SEND_ID, batch_size=2
        )
    assert [r.ok for r in results] == [True, False, False]
    assert isinstance(results[1].error, NothingSent)
    assert isinstance(results[2].error, RateLimited)
    assert results[0].notification_id in fake_onesignal.notifications
    assert len(fake_onesignal.notifications) == 1


async def test_a_wrong_key_fails_every_batch_without_raising(fake_onesignal: Any) -> None:
    async with make_client(fake_onesignal, rest_api_key="os_v2_app_wrong") as client:
        results = await client.send_to_external_ids(
            message(fake_onesignal), ["a", "b", "c"], idempotency_key=SEND_ID, batch_size=2
        )
    assert [type(r.error) for r in results] == [Forbidden, Forbidden]


async def test_bad_batch_requests_are_refused_before_sending(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        await client.send_to_external_ids(message(fake_onesignal), [], idempotency_key=SEND_ID)
    with pytest.raises(InvalidRequest, match="audience"):
        await client.send_to_external_ids(
            {**message(fake_onesignal), "included_segments": ["Active Users"]},
            ["a"],
            idempotency_key=SEND_ID,
        )
    with pytest.raises(InvalidRequest, match="batch_size"):
        await client.send_to_external_ids(
            message(fake_onesignal), ["a"], idempotency_key=SEND_ID, batch_size=2001
        )
    assert fake_onesignal.requests == []


def test_batch_keys_are_stable_and_distinct() -> None:
    keys = [batch_key(SEND_ID, n, 3) for n in range(3)]
    assert keys == [batch_key(SEND_ID, n, 3) for n in range(3)]
    assert len(set(keys)) == 3
    assert batch_key(SEND_ID, 0, 1) == SEND_ID
    assert batch_key("not-a-uuid", 1, 2) == batch_key("not-a-uuid", 1, 2)
