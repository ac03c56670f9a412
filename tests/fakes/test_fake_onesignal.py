"""The fake OneSignal behaves like the real API: keys, scoping, errors, state and faults."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.onesignal import ROUTES, FakeOneSignal

ACCESS_DENIED = {
    "errors": [
        "Access denied.  Please include an 'Authorization: Key' header with a valid API key "
        "(https://documentation.onesignal.com/docs/keys-and-ids)."
    ]
}


@pytest.fixture
def client(fake_onesignal: FakeOneSignal) -> Iterator[httpx.Client]:
    """A plain client holding the seeded app's REST key."""
    auth = {"Authorization": f"Key {fake_onesignal.app.rest_api_key}"}
    with httpx.Client(base_url=fake_onesignal.url, headers=auth, timeout=10) as http:
        yield http


def notification(app_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_id": app_id,
        "contents": {"en": "Release 2.0 is out"},
        "included_segments": ["Subscribed Users"],
    }
    body.update(extra)
    return body


def send(client: httpx.Client, fake: FakeOneSignal, **extra: Any) -> httpx.Response:
    return client.post("/notifications", json=notification(fake.app.id, **extra))


def view(client: httpx.Client, fake: FakeOneSignal, notification_id: str) -> dict[str, Any]:
    response = client.get(f"/notifications/{notification_id}", params={"app_id": fake.app.id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Keys and app scoping


def test_a_send_with_the_apps_key_is_created_and_recorded(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    response = send(client, fake_onesignal, headings={"en": "News"})

    assert response.status_code == 200
    body = response.json()
    assert body["external_id"] is None
    assert body["recipients"] == 1000  # the seeded "Subscribed Users" segment
    stored = fake_onesignal.notifications[body["id"]]
    assert stored["contents"] == {"en": "Release 2.0 is out"}
    assert stored["app_id"] == fake_onesignal.app.id
    (request,) = fake_onesignal.requests_to("POST", "/notifications")
    assert request.headers["authorization"] == f"Key {fake_onesignal.app.rest_api_key}"
    assert request.json["headings"] == {"en": "News"}
    assert request.query == {}
    assert request.time <= time.monotonic()


@pytest.mark.parametrize(
    "authorization",
    [None, "Key wrong-key", "Bearer {key}", "Key {org}"],
    ids=["missing", "wrong", "other-scheme", "org-key-on-app-endpoint"],
)
def test_a_missing_or_wrong_key_is_refused_with_onesignals_text(
    fake_onesignal: FakeOneSignal, authorization: str | None
) -> None:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(
            key=fake_onesignal.app.rest_api_key, org=fake_onesignal.org_api_key
        )
    body = notification(fake_onesignal.app.id)

    response = httpx.post(f"{fake_onesignal.url}/notifications", json=body, headers=headers)

    assert response.status_code == 403
    assert response.json() == ACCESS_DENIED
    assert fake_onesignal.notifications == {}
    assert len(fake_onesignal.requests) == 1  # refused requests are recorded too


def test_the_legacy_basic_scheme_is_accepted(fake_onesignal: FakeOneSignal) -> None:
    headers = {"Authorization": f"Basic {fake_onesignal.app.rest_api_key}"}
    body = notification(fake_onesignal.app.id)

    response = httpx.post(f"{fake_onesignal.url}/notifications", json=body, headers=headers)

    assert response.status_code == 200


def test_the_key_of_one_app_is_refused_by_another(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    second = fake_onesignal.add_app("Second")
    fake_onesignal.add_segment(second.id, "Everyone", size=5)
    body = notification(second.id, included_segments=["Everyone"])

    refused = client.post("/notifications", json=body)
    accepted = client.post(
        "/notifications", json=body, headers={"Authorization": f"Key {second.rest_api_key}"}
    )

    assert refused.status_code == 403
    assert refused.json() == ACCESS_DENIED
    assert accepted.status_code == 200
    assert accepted.json()["recipients"] == 5
    assert second.rest_api_key != fake_onesignal.app.rest_api_key


@pytest.mark.parametrize("key", ["rest", "wrong"])
def test_an_unknown_app_is_404_whatever_the_key(fake_onesignal: FakeOneSignal, key: str) -> None:
    api_key = fake_onesignal.app.rest_api_key if key == "rest" else "wrong"
    url = f"{fake_onesignal.url}/apps/00000000-0000-4000-8000-000000000000/segments"

    response = httpx.get(url, headers={"Authorization": f"Key {api_key}"})

    assert response.status_code == 404
    assert response.json() == {"errors": ["App not found"]}


def test_a_body_sent_without_a_json_content_type_has_no_app_id(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    raw = httpx.Request("POST", "/", json=notification(fake_onesignal.app.id)).content

    response = client.post("/notifications", content=raw, headers={"Content-Type": "text/plain"})

    assert response.status_code == 400
    assert response.json() == {
        "errors": ["app_id not found. You may be missing a Content-Type: application/json header."]
    }


def test_app_endpoints_need_the_organization_key(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    org = {"Authorization": f"Key {fake_onesignal.org_api_key}"}

    refused = client.get("/apps")
    listed = client.get("/apps", headers=org)
    created = client.post("/apps", json={"name": "Staging"}, headers=org)
    renamed = client.put(f"/apps/{created.json()['id']}", json={"name": "Stage"}, headers=org)

    assert refused.status_code == 403
    assert [app["id"] for app in listed.json()] == [fake_onesignal.app.id]
    assert created.status_code == 200
    new_key = created.json()["basic_auth_key"]
    assert new_key not in (fake_onesignal.app.rest_api_key, fake_onesignal.org_api_key)
    assert renamed.json()["name"] == "Stage"
    segments = client.get(
        f"/apps/{created.json()['id']}/segments", headers={"Authorization": f"Key {new_key}"}
    )
    assert segments.json()["total_count"] == 0


# Notifications


def test_a_replayed_idempotency_key_returns_the_first_result_and_sends_nothing(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    key = "4f8f2c4e-1b0a-4c57-9d63-2f1c1f3f0a11"

    first = send(client, fake_onesignal, idempotency_key=key)
    replay = send(client, fake_onesignal, idempotency_key=key, contents={"en": "changed"})

    assert first.status_code == replay.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert list(fake_onesignal.notifications) == [first.json()["id"]]


def test_an_idempotency_key_is_scoped_to_its_app_and_read_from_the_header_too(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    second = fake_onesignal.add_app()
    fake_onesignal.add_segment(second.id, "Subscribed Users", size=3)
    key = {"Idempotency-Key": "0e0c7f0e-3b8a-4d8e-a1b1-6f3f3b2a9c10"}

    first = client.post("/notifications", json=notification(fake_onesignal.app.id), headers=key)
    replay = client.post("/notifications", json=notification(fake_onesignal.app.id), headers=key)
    other = client.post(
        "/notifications",
        json=notification(second.id),
        headers={**key, "Authorization": f"Key {second.rest_api_key}"},
    )

    assert replay.headers["idempotent-replayed"] == "true"
    assert other.json()["id"] not in ("", first.json()["id"])
    assert len(fake_onesignal.notifications) == 2


@pytest.mark.parametrize(
    "field",
    [
        "include_aliases",
        "include_subscription_ids",
        "include_player_ids",
        "include_external_user_ids",
    ],
)
def test_more_than_2000_ids_in_one_request_are_refused(
    fake_onesignal: FakeOneSignal, client: httpx.Client, field: str
) -> None:
    def targeting(count: int) -> dict[str, Any]:
        ids = [f"user-{n}" for n in range(count)]
        value: Any = {"external_id": ids} if field == "include_aliases" else ids
        return {"included_segments": None, field: value}

    too_many = send(client, fake_onesignal, **targeting(2001))
    at_limit = send(client, fake_onesignal, **targeting(2000))

    assert too_many.status_code == 400
    assert too_many.json() == {
        "errors": [f"You may only send a notification to 2000 {field} at a time"]
    }
    assert at_limit.status_code == 200  # nobody known: "nothing sent", not a refusal
    assert "id" not in at_limit.json() and at_limit.json()["errors"]
    assert fake_onesignal.notifications == {}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"contents": {"en": "Hi", "xx": "?"}}, "contents has unsupported language code(s): xx"),
        ({"headings": {"en": 5}}, "headings.en: 5 is not of type 'string'"),
        ({"throttle_rate_per_minute": 500}, "throttle_rate_per_minute: 500 is not of type"),
        ({"throttle_rate_per_minute": "fast"}, "throttle_rate_per_minute must be a whole number"),
        ({"delayed_option": "tomorrow"}, "delayed_option must be timezone or last-active"),
        ({"delayed_option": "timezone"}, "delayed_option timezone needs delivery_time_of_day"),
        ({"delivery_time_of_day": "09:00"}, "delivery_time_of_day needs delayed_option timezone"),
        (
            {"delayed_option": "timezone", "delivery_time_of_day": "9 o'clock"},
            "delivery_time_of_day is not a time of day",
        ),
        ({"ttl": "2h"}, "ttl: '2h' is not of type"),
        ({"ttl": 3_000_000}, "ttl must be between 0 and 2419200"),
        ({"priority": "high"}, "priority: 'high' is not of type"),
        ({"buttons": [{"text": "Open"}]}, "buttons.0: 'id' is a required property"),
        ({"buttons": [{"id": "b", "url": "https://x.io"}]}, "buttons items take"),
        ({"data": "plan=pro"}, "data: 'plan=pro' is not of type"),
        ({"data": {"k": "v" * 3000}}, "data must be at most 2048 bytes"),
        ({"colour": "red"}, "Unknown field(s): colour"),
    ],
)
def test_a_field_in_the_wrong_shape_is_refused(
    fake_onesignal: FakeOneSignal, client: httpx.Client, change: dict[str, Any], error: str
) -> None:
    response = send(client, fake_onesignal, **change)

    assert response.status_code == 400
    assert error in response.json()["errors"][0]
    assert fake_onesignal.notifications == {}


def test_every_documented_delivery_field_in_its_shape_is_taken(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    response = send(
        client,
        fake_onesignal,
        contents={"en": "Hi", "de": "Hallo", "zh-Hans": "你好"},
        headings={"en": "T", "de": "T"},
        delayed_option="timezone",
        delivery_time_of_day="9:00AM",
        throttle_rate_per_minute="500",
        ttl=7200,
        priority=10,
        buttons=[{"id": "b1", "text": "Open"}],
        web_buttons=[{"id": "b1", "text": "Open", "url": "https://example.com"}],
        data={"plan": "pro"},
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"contents": None}, "Message Notifications must have English language content"),
        ({"contents": {"de": "Hallo"}}, "Message Notifications must have English language content"),
        (
            {"included_segments": None},
            "You must include which players, segments, or tags you wish to send this "
            "notification to.",
        ),
    ],
    ids=["no-contents", "no-english", "no-audience"],
)
def test_an_invalid_notification_is_400_with_the_apis_message(
    fake_onesignal: FakeOneSignal, client: httpx.Client, change: dict[str, Any], error: str
) -> None:
    response = send(client, fake_onesignal, **change)

    assert response.status_code == 400
    assert response.json() == {"errors": [error]}
    assert fake_onesignal.notifications == {}


def test_targets_reaching_nobody_answer_200_with_an_empty_id(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.add_user(fake_onesignal.app.id, "cust-1")
    fake_onesignal.add_user(fake_onesignal.app.id, "cust-2", subscriptions=[])
    aliases = {"external_id": ["cust-1", "ghost"]}

    partly = send(client, fake_onesignal, included_segments=None, include_aliases=aliases)
    unsubscribed = send(
        client, fake_onesignal, included_segments=None, include_aliases={"external_id": ["cust-2"]}
    )
    empty_segment = send(client, fake_onesignal, included_segments=["No Such Segment"])

    assert partly.json()["recipients"] == 1
    assert partly.json()["errors"] == {"invalid_aliases": {"external_id": ["ghost"]}}
    assert unsubscribed.json()["id"] == ""
    assert unsubscribed.json()["errors"] == ["All included players are not subscribed"]
    assert empty_segment.json()["id"] == ""
    assert len(fake_onesignal.notifications) == 1


def test_ids_the_app_does_not_know_at_all_answer_200_without_an_id(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    # openapi v1.2.2: "If no id is returned, then a message was not created and the
    # targeted User IDs do not exist under the provided app_id."
    ghosts = send(
        client, fake_onesignal, included_segments=None, include_aliases={"external_id": ["ghost"]}
    )
    players = send(client, fake_onesignal, included_segments=None, include_player_ids=["ghost"])

    assert ghosts.status_code == players.status_code == 200
    assert ghosts.json() == {"errors": {"invalid_aliases": {"external_id": ["ghost"]}}}
    assert players.json() == {"errors": ["All included players are not subscribed"]}
    assert fake_onesignal.notifications == {}


def test_delivery_counters_advance_step_by_step_to_completion(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.add_segment(fake_onesignal.app.id, "Beta", size=30)
    notification_id = send(client, fake_onesignal, included_segments=["Beta"]).json()["id"]
    seen = [view(client, fake_onesignal, notification_id)]

    for _ in range(3):
        fake_onesignal.advance_delivery(notification_id)
        seen.append(view(client, fake_onesignal, notification_id))

    assert [s["remaining"] for s in seen] == [30, 20, 10, 0]
    assert [s["successful"] for s in seen] == [0, 9, 18, 27]
    assert [s["failed"] for s in seen] == [0, 1, 2, 3]
    assert [s["completed_at"] is None for s in seen] == [True, True, True, False]
    assert seen[-1]["completed_at"] >= seen[-1]["send_after"]
    assert seen[-1]["platform_delivery_stats"]["android"]["successful"] == 27
    assert seen[-1]["canceled"] is False


def test_auto_advance_delivers_a_step_on_each_view(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.auto_advance = True
    notification_id = send(client, fake_onesignal).json()["id"]

    remaining = [view(client, fake_onesignal, notification_id)["remaining"] for _ in range(4)]

    assert remaining == [666, 332, 0, 0]


def test_a_notification_with_send_after_is_stored_as_scheduled(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    with_offset = send(client, fake_onesignal, send_after="2031-09-24 14:00:00 GMT-0700")
    naive = send(client, fake_onesignal, send_after="2031-09-24T14:00:00")
    unreadable = send(client, fake_onesignal, send_after="next blue moon")

    scheduled = view(client, fake_onesignal, with_offset.json()["id"])
    assert scheduled["send_after"] == 1948050000  # 2031-09-24T21:00:00Z
    assert scheduled["remaining"] == 1000
    assert scheduled["completed_at"] is None
    # The API reads a time without an offset as UTC-11:00.
    assert view(client, fake_onesignal, naive.json()["id"])["send_after"] == 1948050000 + 4 * 3600
    assert unreadable.status_code == 400


def test_cancel_stops_a_notification_unless_it_was_already_sent(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app = {"app_id": fake_onesignal.app.id}
    pending = send(client, fake_onesignal).json()["id"]
    sent = send(client, fake_onesignal).json()["id"]
    fake_onesignal.complete_delivery(sent)

    cancelled = client.delete(f"/notifications/{pending}", params=app)
    too_late = client.delete(f"/notifications/{sent}", params=app)
    unknown = client.delete("/notifications/3c5f7a52-0000-4000-8000-000000000000", params=app)
    fake_onesignal.advance_delivery(pending)

    assert cancelled.json() == {"success": True}
    assert view(client, fake_onesignal, pending)["canceled"] is True
    assert view(client, fake_onesignal, pending)["remaining"] == 1000
    assert too_late.status_code == 400
    assert too_late.json() == {"errors": ["Notification has already been sent to all recipients"]}
    assert unknown.status_code == 404
    assert unknown.json() == {"errors": ["Notification not found"]}


def test_a_notification_is_invisible_to_another_app(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    second = fake_onesignal.add_app()
    notification_id = send(client, fake_onesignal).json()["id"]

    response = client.get(
        f"/notifications/{notification_id}",
        params={"app_id": second.id},
        headers={"Authorization": f"Key {second.rest_api_key}"},
    )

    assert response.status_code == 404


def test_notifications_are_listed_newest_first_in_pages(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    ids = [send(client, fake_onesignal).json()["id"] for _ in range(3)]

    page = client.get("/notifications", params={"app_id": fake_onesignal.app.id, "limit": 2})

    assert page.json()["total_count"] == 3
    assert page.json()["limit"] == 2
    assert [n["id"] for n in page.json()["notifications"]] == [ids[2], ids[1]]


def test_count_unsaved_counts_segments_and_reachable_users(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app_id = fake_onesignal.app.id
    fake_onesignal.add_user(app_id, "a", properties={"tags": {"plan": "pro"}})
    fake_onesignal.add_user(app_id, "b", properties={"tags": {"plan": "free"}})
    fake_onesignal.add_user(app_id, "c", subscriptions=[{"type": "Email", "token": "c@x.io"}])
    fake_onesignal.add_segment(
        app_id, "Pro", filters=[{"field": "tag", "key": "plan", "value": "pro"}]
    )

    def estimate(**targeting: Any) -> Any:
        response = client.post("/notifications/count-unsaved", json={"app_id": app_id, **targeting})
        return response.json()

    assert estimate(included_segments=["Active Users"], excluded_segments=["Engaged Users"]) == {
        "count": 400,
        "uncapped_count": 400,
        "cap_applied": False,
    }
    assert estimate(included_segments=["Pro"])["count"] == 1
    assert estimate(include_aliases={"external_id": ["a", "b", "c", "zz"]})["count"] == 2
    assert estimate(include_aliases={"external_id": ["c"]}, target_channel="email")["count"] == 1
    assert fake_onesignal.segment_size(app_id, "Pro") == 1


# Users, subscriptions, segments, templates


def test_users_are_found_by_alias_and_unknown_ones_are_404(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app_id = fake_onesignal.app.id
    user = fake_onesignal.add_user(app_id, "cust-4711", aliases={"crm": "C-9"})

    found = client.get(f"/apps/{app_id}/users/by/crm/C-9")
    missing = client.get(f"/apps/{app_id}/users/by/external_id/nobody")

    assert found.json() == user
    assert found.json()["identity"]["external_id"] == "cust-4711"
    assert found.json()["subscriptions"][0]["type"] == "AndroidPush"
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"code": "user-2", "title": "User not found"}]}


def test_creating_a_user_with_another_users_aliases_is_a_conflict(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app_id = fake_onesignal.app.id
    fake_onesignal.add_user(app_id, "one")
    fake_onesignal.add_user(app_id, "two", aliases={"crm": "C-2"})

    created = client.post(f"/apps/{app_id}/users", json={"identity": {"external_id": "three"}})
    conflict = client.post(
        f"/apps/{app_id}/users", json={"identity": {"external_id": "one", "crm": "C-2"}}
    )

    assert created.status_code == 201
    assert fake_onesignal.find_user(app_id, "external_id", "three") is not None
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["meta"]["conflicting_aliases"] == {
        "external_id": "one",
        "crm": "C-2",
    }


def test_a_subscription_moves_to_another_user(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app_id = fake_onesignal.app.id
    subscription_id = fake_onesignal.add_user(app_id, "old")["subscriptions"][0]["id"]
    fake_onesignal.add_user(app_id, "new", subscriptions=[])

    moved = client.patch(
        f"/apps/{app_id}/subscriptions/{subscription_id}/owner",
        json={"identity": {"external_id": "new"}},
    )
    owner = client.get(f"/apps/{app_id}/subscriptions/{subscription_id}/user/identity")

    assert moved.status_code == 200
    assert owner.json()["identity"]["external_id"] == "new"
    new_user = fake_onesignal.find_user(app_id, "external_id", "new")
    assert new_user is not None
    assert [s["id"] for s in new_user["subscriptions"]] == [subscription_id]


def test_segments_are_created_listed_and_deleted(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    base = f"/apps/{fake_onesignal.app.id}/segments"
    body = {"name": "VIP", "filters": [{"field": "tag", "key": "vip", "relation": "exists"}]}

    created = client.post(base, json=body)
    duplicate = client.post(base, json=body)
    listed = client.get(base, params={"offset": 4, "limit": 10})
    deleted = client.delete(f"{base}/{created.json()['id']}")
    again = client.delete(f"{base}/{created.json()['id']}")

    assert created.status_code == 201
    assert duplicate.status_code == 409
    assert duplicate.json()["success"] is False
    assert listed.json()["total_count"] == 5  # the four default segments, then VIP
    assert [s["name"] for s in listed.json()["segments"]] == ["VIP"]
    assert deleted.json() == {"success": True}
    assert again.status_code == 404
    assert again.json() == {"success": False}


def test_templates_are_listed_and_viewed(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app = {"app_id": fake_onesignal.app.id}
    template = fake_onesignal.add_template(fake_onesignal.app.id, "Welcome")

    listed = client.get("/templates", params=app)
    viewed = client.get(f"/templates/{template['id']}", params=app)
    unknown = client.get("/templates/00000000-0000-4000-8000-000000000000", params=app)
    body = notification(fake_onesignal.app.id, template_id=template["id"])
    del body["contents"]  # the template gives it
    sent = client.post("/notifications", json=body)

    assert listed.json() == {"templates": [template]}
    assert viewed.json() == template
    assert unknown.status_code == 404
    assert sent.status_code == 200


def test_outcomes_take_both_name_lists_and_count_clicks(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    notification_id = send(client, fake_onesignal).json()["id"]
    fake_onesignal.complete_delivery(notification_id)
    names = {"outcome_names": "os__click.count,Revenue.sum", "outcome_names[]": "Sales, Plus.count"}

    response = client.get(f"/apps/{fake_onesignal.app.id}/outcomes", params=names)

    clicks = fake_onesignal.notifications[notification_id]["converted"]
    assert clicks > 0
    assert response.json() == {
        "outcomes": [
            {"id": "os__click", "value": clicks, "aggregation": "count"},
            {"id": "Revenue", "value": 0, "aggregation": "sum"},
            {"id": "Sales, Plus", "value": 0, "aggregation": "count"},
        ]
    }


def test_every_operation_is_served(fake_onesignal: FakeOneSignal, client: httpx.Client) -> None:
    app_id = fake_onesignal.app.id
    two_devices = [{"type": "AndroidPush"}, {"type": "iOSPush"}]
    user = fake_onesignal.add_user(app_id, "u1", aliases={"crm": "C-1"}, subscriptions=two_devices)
    template = fake_onesignal.add_template(app_id, "T")
    notification_id = send(client, fake_onesignal).json()["id"]
    segment = fake_onesignal.add_segment(app_id, "Doomed", size=1)
    params = {
        "app_id": app_id,
        "notification_id": notification_id,
        "segment_id": segment["id"],
        "activity_id": "match-42",
        "subscription_id": user["subscriptions"][0]["id"],
        "player_id": user["subscriptions"][1]["id"],
        "external_user_id": "u1",
        "alias_label": "external_id",
        "alias_id": "u1",
        "alias_label_to_delete": "crm",
        "template_id": template["id"],
    }
    org = {"Authorization": f"Key {fake_onesignal.org_api_key}"}

    # Deletions last, the user's own last of all, so that every operation finds its target.
    ordered = sorted(ROUTES, key=lambda r: (r.method == "DELETE", r.operation == "delete_user"))
    served = {}
    for route in ordered:
        path = route.template.format(**params)
        headers = org if route.key == "org" else None
        response = client.request(
            route.method, path, params={"app_id": app_id}, json={"app_id": app_id}, headers=headers
        )
        served[route.operation] = response.status_code

    assert len(served) == 41
    assert [op for op, status in served.items() if status >= 500 or status in (403, 404)] == []


def test_the_export_path_works_with_its_query_escaped_into_the_path(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    response = client.post(f"/players/csv_export%3Fapp_id={fake_onesignal.app.id}")

    assert response.status_code == 200
    assert response.json()["csv_file_url"].startswith("https://")
    (request,) = fake_onesignal.requests_to("POST", "/players/csv_export")
    assert request.query == {"app_id": [fake_onesignal.app.id]}


# Faults


def test_injected_statuses_answer_in_order_then_serve_normally(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.faults.statuses([429, 503], method="POST", path="/notifications", retry_after=2)

    limited = send(client, fake_onesignal)
    unavailable = send(client, fake_onesignal)
    listing = client.get("/notifications", params={"app_id": fake_onesignal.app.id})
    served = send(client, fake_onesignal)

    assert limited.status_code == 429
    assert limited.json() == {"errors": ["API rate limit exceeded."]}
    assert limited.headers["retry-after"] == "2"
    assert unavailable.status_code == 503
    assert unavailable.json()["errors"]
    assert listing.status_code == 200  # another method: not faulted
    assert served.status_code == 200
    assert list(fake_onesignal.notifications) == [served.json()["id"]]
    assert len(fake_onesignal.requests_to("POST", "/notifications")) == 3


def test_a_fractional_retry_after_is_sent_as_written(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.faults.statuses([429], retry_after=0.05)

    assert send(client, fake_onesignal).headers["retry-after"] == "0.05"


def test_a_dropped_connection_fails_the_request_and_changes_nothing(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.faults.drop_connections(1, method="POST", path="/notifications")

    with pytest.raises(httpx.RemoteProtocolError):
        send(client, fake_onesignal)
    retried = send(client, fake_onesignal)

    assert fake_onesignal.notifications.keys() == {retried.json()["id"]}
    assert len(fake_onesignal.requests_to("POST", "/notifications")) == 2


def test_latency_delays_matching_requests(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.faults.latency(0.05, path="/notifications")

    started = time.monotonic()
    response = send(client, fake_onesignal)

    assert time.monotonic() - started >= 0.05
    assert response.status_code == 200


async def test_a_held_request_waits_until_released_while_others_are_served(
    fake_onesignal: FakeOneSignal,
) -> None:
    hold = fake_onesignal.faults.hold(method="POST", path="/notifications")
    auth = {"Authorization": f"Key {fake_onesignal.app.rest_api_key}"}
    body = notification(fake_onesignal.app.id)

    async with httpx.AsyncClient(base_url=fake_onesignal.url, headers=auth, timeout=10) as http:
        held = asyncio.create_task(http.post("/notifications", json=body))
        assert await asyncio.to_thread(hold.arrived.wait, 10)
        meanwhile = await http.get(f"/apps/{fake_onesignal.app.id}/segments")
        assert fake_onesignal.notifications == {}
        hold.release()
        response = await held

    assert meanwhile.status_code == 200
    assert hold.arrivals == 1
    assert fake_onesignal.notifications.keys() == {response.json()["id"]}


async def test_a_late_answer_comes_after_the_request_was_served(
    fake_onesignal: FakeOneSignal,
) -> None:
    fake_onesignal.faults.answer_late(0.5, method="POST", path="/notifications")
    auth = {"Authorization": f"Key {fake_onesignal.app.rest_api_key}"}
    body = notification(
        fake_onesignal.app.id, idempotency_key="7c6e3a43-0c4e-4b8e-9d1a-8f1e0c3a9b21"
    )

    async with httpx.AsyncClient(base_url=fake_onesignal.url, headers=auth) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/notifications", json=body, timeout=0.1)
        created = fake_onesignal.notifications  # served already, only the answer was late
        started = time.monotonic()
        replayed = await http.post("/notifications", json=body, timeout=5)

    assert len(created) == 1
    assert time.monotonic() - started >= 0.5
    assert replayed.json()["id"] in created
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_a_held_answer_waits_until_released_after_the_request_was_served(
    fake_onesignal: FakeOneSignal,
) -> None:
    hold = fake_onesignal.faults.hold_answers(method="POST", path="/notifications")
    auth = {"Authorization": f"Key {fake_onesignal.app.rest_api_key}"}
    body = notification(fake_onesignal.app.id)

    async with httpx.AsyncClient(base_url=fake_onesignal.url, headers=auth, timeout=10) as http:
        held = asyncio.create_task(http.post("/notifications", json=body))
        assert await asyncio.to_thread(hold.arrived.wait, 10)
        (created,) = fake_onesignal.notifications
        assert not held.done()
        hold.release()
        response = await held

    assert response.json()["id"] == created
    assert hold.arrivals == 1


def test_reset_drops_state_requests_and_faults(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    app = fake_onesignal.app
    fake_onesignal.add_app()
    fake_onesignal.add_user(app.id, "gone")
    send(client, fake_onesignal)
    fake_onesignal.faults.statuses([500])

    fake_onesignal.reset()

    assert fake_onesignal.app == app
    assert fake_onesignal.notifications == {}
    assert fake_onesignal.requests == []
    assert fake_onesignal.find_user(app.id, "external_id", "gone") is None
    assert send(client, fake_onesignal).status_code == 200


def test_recording_can_be_turned_off_for_benchmarks(
    fake_onesignal: FakeOneSignal, client: httpx.Client
) -> None:
    fake_onesignal.record_requests = False

    response = send(client, fake_onesignal)

    assert fake_onesignal.requests == []
    assert fake_onesignal.notifications.keys() == {response.json()["id"]}
    fake_onesignal.reset()
    assert fake_onesignal.record_requests is True


# Running it by hand


@pytest.mark.slow
def test_it_runs_by_hand_and_prints_what_to_configure() -> None:
    command = [sys.executable, "-m", "tests.fakes.onesignal", "--port", "0", "--users", "2"]
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        printed: dict[str, str] = {}
        for line in iter(process.stdout.readline, ""):
            if line.startswith("Ctrl-C"):
                break
            name, equals, value = line.strip().partition("=")
            if equals:
                printed[name] = value
        key = {"Authorization": f"Key {printed['ONESIGNAL_API_KEY']}"}
        base = f"{printed['ONESIGNAL_API_URL']}/apps/{printed['ONESIGNAL_APP_ID']}"

        user = httpx.get(f"{base}/users/by/external_id/user-2", headers=key)
        apps = httpx.get(
            f"{printed['ONESIGNAL_API_URL']}/apps",
            headers={"Authorization": f"Key {printed['ONESIGNAL_ORG_KEY']}"},
        )
    finally:
        process.terminate()
        returncode = process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    assert user.status_code == 200
    assert [app["id"] for app in apps.json()] == [printed["ONESIGNAL_APP_ID"]]
    assert returncode == 0
