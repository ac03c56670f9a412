"""Every one of the client's 41 operations, through loopback HTTP against the fake OneSignal.

Each test checks what OneSignal would receive (method, path, query, key, body: the body is
validated against the operation's schema from the committed v1.2.2 fixture) and what the
caller gets back (the parsed model).
"""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.onesignal import NotFound, OneSignalClient, make_http_client
from bot.onesignal import models as m
from tests.onesignal import spec

EXTRA_OPERATIONS = {
    "get_segments",
    "view_templates",
    "view_template",
    "estimate_notification_recipients",
}


def sent(fake: Any, name: str, *, org: bool = False) -> Any:
    """The last request the fake received, checked against operation `name` of the spec."""
    request = fake.requests[-1]
    if name in spec.operations():
        spec.check_request(name, request)
    key = fake.org_api_key if org else fake.app.rest_api_key
    assert request.headers["authorization"] == f"Key {key}"
    return request


def one(request: Any, name: str) -> str:
    """A query parameter that must appear exactly once."""
    values = request.query.get(name)
    assert values is not None and len(values) == 1, f"query {name}: {values}"
    return str(values[0])


async def new_user(client: OneSignalClient, fake: Any, external_id: str = "cust-4711") -> str:
    """A user with one push subscription, made through the fake's seeding API; its sub id."""
    user = fake.add_user(
        fake.app.id, external_id, subscriptions=[{"type": "AndroidPush", "token": "tok-1"}]
    )
    return str(user["subscriptions"][0]["id"])


async def scheduled(client: OneSignalClient, fake: Any) -> str:
    later = datetime.now(UTC) + timedelta(hours=2)
    created = await client.create_notification(
        {
            "app_id": fake.app.id,
            "contents": {"en": "Later"},
            "included_segments": ["Active Users"],
            "send_after": later,
        }
    )
    return created.id


# ------------------------------------------------------------------------ the surface


def test_the_spec_fixture_has_the_37_operations() -> None:
    assert len(spec.operations()) == 37


@pytest.mark.parametrize("name", sorted(spec.operations()))
def test_method_matches_the_sdk_signature(name: str) -> None:
    sdk = spec.operations()[name]["sdk"]
    params = list(inspect.signature(getattr(OneSignalClient, name)).parameters.values())[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword = sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY)
    assert positional == sdk["positional"]
    assert keyword == sdk["optional"]


def test_client_has_41_public_operations() -> None:
    expected = set(spec.operations()) | EXTRA_OPERATIONS
    for name in expected:
        assert inspect.iscoroutinefunction(getattr(OneSignalClient, name)), name
    assert len(expected) == 41


async def test_clients_share_an_injected_pool_and_leave_it_open(fake_onesignal: Any) -> None:
    second = fake_onesignal.add_app("Second")
    async with make_http_client() as http:
        for app_id, key in (
            (fake_onesignal.app.id, fake_onesignal.app.rest_api_key),
            (second.id, second.rest_api_key),
        ):
            async with OneSignalClient(
                rest_api_key=key, base_url=fake_onesignal.url, http_client=http
            ) as client:
                page = await client.get_notifications(app_id, limit=1)
                assert page.total_count == 0
            assert not http.is_closed
        keys = [r.headers["authorization"] for r in fake_onesignal.requests]
        assert keys == [f"Key {fake_onesignal.app.rest_api_key}", f"Key {second.rest_api_key}"]


async def test_event_hooks_set_on_the_pool_see_every_request(fake_onesignal: Any) -> None:
    """The pool's own fast path must not skip hooks a user adds to it."""
    seen: list[tuple[str, str, int]] = []

    async def on_response(response: httpx.Response) -> None:
        seen.append((response.request.method, response.request.url.path, response.status_code))

    async with make_http_client() as http:
        http.event_hooks["response"].append(on_response)
        client = OneSignalClient(
            rest_api_key=fake_onesignal.app.rest_api_key,
            base_url=fake_onesignal.url,
            http_client=http,
        )
        await client.get_notifications(fake_onesignal.app.id, limit=1)
    assert seen == [("GET", "/notifications", 200)]


async def test_a_closed_pool_refuses_further_requests(fake_onesignal: Any) -> None:
    http = make_http_client()
    client = OneSignalClient(
        rest_api_key=fake_onesignal.app.rest_api_key, base_url=fake_onesignal.url, http_client=http
    )
    await client.get_notifications(fake_onesignal.app.id, limit=1)
    await http.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_notifications(fake_onesignal.app.id, limit=1)
    assert http.aiohttp_session().closed
    assert len(fake_onesignal.requests) == 1


# ---------------------------------------------------------------------- notifications


async def test_create_notification(client: OneSignalClient, fake_onesignal: Any) -> None:
    created = await client.create_notification(
        m.NotificationRequest(
            app_id=fake_onesignal.app.id,
            contents={"en": "Release 2.0 is out"},
            headings={"en": "News"},
            included_segments=["Subscribed Users"],
            url="https://example.com/r2",
        )
    )
    request = sent(fake_onesignal, "create_notification")
    assert request.path == "/notifications"
    assert request.query == {}
    assert request.json["contents"] == {"en": "Release 2.0 is out"}
    assert request.json["included_segments"] == ["Subscribed Users"]
    uuid.UUID(request.json["idempotency_key"])
    assert request.headers["content-type"] == "application/json"
    assert created.id in fake_onesignal.notifications
    assert created.recipients == 1000


async def test_create_notification_takes_a_dict_and_keeps_unknown_fields(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    key = str(uuid.uuid4())
    await client.create_notification(
        {
            "app_id": fake_onesignal.app.id,
            "contents": {"en": "Hi"},
            "included_segments": ["Active Users"],
            "ios_badgeType": "Increase",
            "idempotency_key": key,
        }
    )
    request = sent(fake_onesignal, "create_notification")
    assert request.json["ios_badgeType"] == "Increase"
    assert request.json["idempotency_key"] == key


async def test_cancel_notification(client: OneSignalClient, fake_onesignal: Any) -> None:
    notification_id = await scheduled(client, fake_onesignal)
    result = await client.cancel_notification(fake_onesignal.app.id, notification_id)
    request = sent(fake_onesignal, "cancel_notification")
    assert request.path == f"/notifications/{notification_id}"
    assert one(request, "app_id") == fake_onesignal.app.id
    assert result.success is True
    assert fake_onesignal.notifications[notification_id]["canceled"] is True


async def test_get_notification(client: OneSignalClient, fake_onesignal: Any) -> None:
    notification_id = await scheduled(client, fake_onesignal)
    details = await client.get_notification(fake_onesignal.app.id, notification_id)
    request = sent(fake_onesignal, "get_notification")
    assert request.path == f"/notifications/{notification_id}"
    assert one(request, "app_id") == fake_onesignal.app.id
    assert details.id == notification_id
    assert details.contents == {"en": "Later"}
    assert isinstance(details.send_after, int)
    sent_text = fake_onesignal.requests_to("POST", "/notifications")[0].json["send_after"]
    assert abs(datetime.fromisoformat(sent_text).timestamp() - details.send_after) < 1
    assert details.completed_at is None


async def test_get_notifications(client: OneSignalClient, fake_onesignal: Any) -> None:
    first = await scheduled(client, fake_onesignal)
    second = await scheduled(client, fake_onesignal)
    page = await client.get_notifications(fake_onesignal.app.id, limit=1, offset=0, kind=1)
    request = sent(fake_onesignal, "get_notifications")
    assert request.path == "/notifications"
    assert request.query == {
        "app_id": [fake_onesignal.app.id],
        "limit": ["1"],
        "offset": ["0"],
        "kind": ["1"],
    }
    assert page.total_count == 2
    assert len(page.notifications) == 1
    assert page.notifications[0].id in {first, second}


async def test_get_notification_history(client: OneSignalClient, fake_onesignal: Any) -> None:
    notification_id = await scheduled(client, fake_onesignal)
    history = await client.get_notification_history(
        notification_id,
        {"events": "clicked", "app_id": fake_onesignal.app.id, "email": "ops@example.com"},
    )
    request = sent(fake_onesignal, "get_notification_history")
    assert request.path == f"/notifications/{notification_id}/history"
    assert request.json["events"] == "clicked"
    assert request.json["email"] == "ops@example.com"
    assert history.success is True
    assert history.destination_url


async def test_export_events(client: OneSignalClient, fake_onesignal: Any) -> None:
    notification_id = await scheduled(client, fake_onesignal)
    export = await client.export_events(notification_id, fake_onesignal.app.id)
    request = sent(fake_onesignal, "export_events")
    assert request.path == f"/notifications/{notification_id}/export_events"
    assert one(request, "app_id") == fake_onesignal.app.id
    assert export.csv_file_url


async def test_estimate_notification_recipients(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    estimate = await client.estimate_notification_recipients(
        m.EstimateRecipientsRequest(
            app_id=fake_onesignal.app.id, included_segments=["Active Users"]
        )
    )
    request = sent(fake_onesignal, "estimate_notification_recipients")
    assert (request.method, request.path) == ("POST", "/notifications/count-unsaved")
    assert request.json == {"app_id": fake_onesignal.app.id, "included_segments": ["Active Users"]}
    assert estimate.count == 600
    assert estimate.cap_applied is False


async def test_estimate_by_external_ids(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal, "u-1")
    estimate = await client.estimate_notification_recipients(
        {
            "app_id": fake_onesignal.app.id,
            "include_aliases": {"external_id": ["u-1", "nobody"]},
            "target_channel": "push",
        }
    )
    assert sent(fake_onesignal, "estimate_notification_recipients").json["target_channel"] == "push"
    assert estimate.count == 1


# ------------------------------------------------------------- segments and templates


async def test_get_segments(client: OneSignalClient, fake_onesignal: Any) -> None:
    page = await client.get_segments(fake_onesignal.app.id)
    request = sent(fake_onesignal, "get_segments")
    assert (request.method, request.path) == ("GET", f"/apps/{fake_onesignal.app.id}/segments")
    assert request.query == {"offset": ["0"], "limit": ["300"]}
    assert request.body == b""
    names = [segment.name for segment in page.segments]
    assert "Subscribed Users" in names
    assert page.total_count == len(names)


async def test_create_segments(client: OneSignalClient, fake_onesignal: Any) -> None:
    created = await client.create_segments(
        fake_onesignal.app.id,
        segment={"name": "VIP", "filters": [{"field": "tag", "key": "vip", "relation": "exists"}]},
    )
    request = sent(fake_onesignal, "create_segments")
    assert request.path == f"/apps/{fake_onesignal.app.id}/segments"
    assert request.json["name"] == "VIP"
    assert created.success is True and created.id
    names = [s.name for s in (await client.get_segments(fake_onesignal.app.id)).segments]
    assert "VIP" in names


async def test_delete_segments(client: OneSignalClient, fake_onesignal: Any) -> None:
    segment = fake_onesignal.add_segment(fake_onesignal.app.id, "Old")
    result = await client.delete_segments(fake_onesignal.app.id, segment["id"])
    request = sent(fake_onesignal, "delete_segments")
    assert request.path == f"/apps/{fake_onesignal.app.id}/segments/{segment['id']}"
    assert result.success is True


async def test_view_templates_and_template(client: OneSignalClient, fake_onesignal: Any) -> None:
    template = fake_onesignal.add_template(fake_onesignal.app.id, "Weekly digest")
    page = await client.view_templates(fake_onesignal.app.id, limit=10, offset=0, channel="push")
    request = sent(fake_onesignal, "view_templates")
    assert (request.method, request.path) == ("GET", "/templates")
    assert request.query == {
        "app_id": [fake_onesignal.app.id],
        "limit": ["10"],
        "offset": ["0"],
        "channel": ["push"],
    }
    assert [t.name for t in page.templates] == ["Weekly digest"]

    one_template = await client.view_template(fake_onesignal.app.id, template["id"])
    request = sent(fake_onesignal, "view_template")
    assert (request.method, request.path) == ("GET", f"/templates/{template['id']}")
    assert one(request, "app_id") == fake_onesignal.app.id
    assert one_template.id == template["id"]
    assert one_template.name == "Weekly digest"


async def test_get_outcomes(client: OneSignalClient, fake_onesignal: Any) -> None:
    outcomes = await client.get_outcomes(
        fake_onesignal.app.id,
        "os__click.count",
        outcome_names2="Sales, Purchase.count",
        outcome_time_range="1d",
        outcome_platforms="0",
        outcome_attribution="direct",
    )
    request = sent(fake_onesignal, "get_outcomes")
    assert request.path == f"/apps/{fake_onesignal.app.id}/outcomes"
    assert request.query == {
        "outcome_names": ["os__click.count"],
        "outcome_names[]": ["Sales, Purchase.count"],
        "outcome_time_range": ["1d"],
        "outcome_platforms": ["0"],
        "outcome_attribution": ["direct"],
    }
    assert isinstance(outcomes.outcomes, list)


# ------------------------------------------------------------------------------ apps


async def test_get_apps(client: OneSignalClient, fake_onesignal: Any) -> None:
    apps = await client.get_apps()
    request = sent(fake_onesignal, "get_apps", org=True)
    assert request.path == "/apps"
    assert [app.id for app in apps] == [fake_onesignal.app.id]
    assert apps[0].name == fake_onesignal.app.name


async def test_get_app(client: OneSignalClient, fake_onesignal: Any) -> None:
    app = await client.get_app(fake_onesignal.app.id)
    request = sent(fake_onesignal, "get_app", org=True)
    assert request.path == f"/apps/{fake_onesignal.app.id}"
    assert app.id == fake_onesignal.app.id
    assert app.basic_auth_key is not None
    assert app.basic_auth_key.get_secret_value() == fake_onesignal.app.rest_api_key


async def test_create_app(client: OneSignalClient, fake_onesignal: Any) -> None:
    app = await client.create_app(m.AppRequest(name="Staging", site_name="Staging site"))
    request = sent(fake_onesignal, "create_app", org=True)
    assert request.path == "/apps"
    assert request.json == {"name": "Staging", "site_name": "Staging site"}
    assert app.name == "Staging"
    assert app.id != fake_onesignal.app.id


async def test_update_app(client: OneSignalClient, fake_onesignal: Any) -> None:
    app = await client.update_app(fake_onesignal.app.id, {"name": "Renamed"})
    request = sent(fake_onesignal, "update_app", org=True)
    assert (request.method, request.path) == ("PUT", f"/apps/{fake_onesignal.app.id}")
    assert request.json == {"name": "Renamed"}
    assert app.name == "Renamed"


# ----------------------------------------------------------------------------- users


async def test_create_user(client: OneSignalClient, fake_onesignal: Any) -> None:
    user = await client.create_user(
        fake_onesignal.app.id,
        {
            "identity": {"external_id": "new-1"},
            "properties": {"tags": {"plan": "pro"}, "language": "de"},
            "subscriptions": [{"type": "Email", "token": "new-1@example.com"}],
        },
    )
    request = sent(fake_onesignal, "create_user")
    assert request.path == f"/apps/{fake_onesignal.app.id}/users"
    assert user.identity["external_id"] == "new-1"
    assert user.subscriptions[0].type == "Email"


async def test_fetch_user(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal, "cust 4711")
    user = await client.fetch_user(fake_onesignal.app.id, "external_id", "cust 4711")
    request = sent(fake_onesignal, "fetch_user")
    assert request.path == f"/apps/{fake_onesignal.app.id}/users/by/external_id/cust 4711"
    assert user.identity["external_id"] == "cust 4711"
    assert user.subscriptions[0].token == "tok-1"
    assert user.properties is not None


async def test_update_user(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal)
    result = await client.update_user(
        fake_onesignal.app.id, "external_id", "cust-4711", {"properties": {"tags": {"vip": "1"}}}
    )
    request = sent(fake_onesignal, "update_user")
    assert request.path == f"/apps/{fake_onesignal.app.id}/users/by/external_id/cust-4711"
    assert request.json == {"properties": {"tags": {"vip": "1"}}}
    assert result.properties is not None
    assert result.properties.tags == {"vip": "1"}


async def test_delete_user(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal)
    await client.delete_user(fake_onesignal.app.id, "external_id", "cust-4711")
    request = sent(fake_onesignal, "delete_user")
    assert request.path == f"/apps/{fake_onesignal.app.id}/users/by/external_id/cust-4711"
    with pytest.raises(NotFound):
        await client.fetch_user(fake_onesignal.app.id, "external_id", "cust-4711")


async def test_fetch_user_identity(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal)
    identity = await client.fetch_user_identity(fake_onesignal.app.id, "external_id", "cust-4711")
    request = sent(fake_onesignal, "fetch_user_identity")
    assert request.path.endswith("/users/by/external_id/cust-4711/identity")
    assert identity.identity["external_id"] == "cust-4711"
    assert "onesignal_id" in identity.identity


async def test_identify_user_by_alias_and_delete_alias(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    await new_user(client, fake_onesignal)
    added = await client.identify_user_by_alias(
        fake_onesignal.app.id, "external_id", "cust-4711", {"identity": {"crm_id": "c-9"}}
    )
    request = sent(fake_onesignal, "identify_user_by_alias")
    assert request.json == {"identity": {"crm_id": "c-9"}}
    assert added.identity["crm_id"] == "c-9"

    left = await client.delete_alias(fake_onesignal.app.id, "external_id", "cust-4711", "crm_id")
    request = sent(fake_onesignal, "delete_alias")
    assert request.path.endswith("/users/by/external_id/cust-4711/identity/crm_id")
    assert "crm_id" not in left.identity


async def test_create_subscription(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal)
    created = await client.create_subscription(
        fake_onesignal.app.id,
        "external_id",
        "cust-4711",
        m.CreateSubscriptionRequest(subscription={"type": "Email", "token": "c@example.com"}),
    )
    request = sent(fake_onesignal, "create_subscription")
    assert request.path.endswith("/users/by/external_id/cust-4711/subscriptions")
    assert created.subscription is not None
    assert created.subscription.token == "c@example.com"


# --------------------------------------------------------------------- subscriptions


async def test_update_subscription(client: OneSignalClient, fake_onesignal: Any) -> None:
    subscription_id = await new_user(client, fake_onesignal)
    await client.update_subscription(
        fake_onesignal.app.id, subscription_id, {"subscription": {"enabled": False}}
    )
    request = sent(fake_onesignal, "update_subscription")
    assert (request.method, request.path) == (
        "PATCH",
        f"/apps/{fake_onesignal.app.id}/subscriptions/{subscription_id}",
    )
    assert request.json == {"subscription": {"enabled": False}}
    user = await client.fetch_user(fake_onesignal.app.id, "external_id", "cust-4711")
    assert user.subscriptions[0].enabled is False


async def test_delete_subscription(client: OneSignalClient, fake_onesignal: Any) -> None:
    subscription_id = await new_user(client, fake_onesignal)
    await client.delete_subscription(fake_onesignal.app.id, subscription_id)
    request = sent(fake_onesignal, "delete_subscription")
    assert request.path == f"/apps/{fake_onesignal.app.id}/subscriptions/{subscription_id}"
    user = await client.fetch_user(fake_onesignal.app.id, "external_id", "cust-4711")
    assert user.subscriptions == []


async def test_fetch_aliases(client: OneSignalClient, fake_onesignal: Any) -> None:
    subscription_id = await new_user(client, fake_onesignal)
    identity = await client.fetch_aliases(fake_onesignal.app.id, subscription_id)
    request = sent(fake_onesignal, "fetch_aliases")
    assert request.path.endswith(f"/subscriptions/{subscription_id}/user/identity")
    assert identity.identity["external_id"] == "cust-4711"


async def test_identify_user_by_subscription_id(
    client: OneSignalClient, fake_onesignal: Any
) -> None:
    subscription_id = await new_user(client, fake_onesignal)
    identity = await client.identify_user_by_subscription_id(
        fake_onesignal.app.id, subscription_id, {"identity": {"crm_id": "c-1"}}
    )
    request = sent(fake_onesignal, "identify_user_by_subscription_id")
    assert request.method == "PATCH"
    assert identity.identity["crm_id"] == "c-1"


async def test_transfer_subscription(client: OneSignalClient, fake_onesignal: Any) -> None:
    subscription_id = await new_user(client, fake_onesignal)
    fake_onesignal.add_user(fake_onesignal.app.id, "other-user")
    identity = await client.transfer_subscription(
        fake_onesignal.app.id, subscription_id, {"identity": {"external_id": "other-user"}}
    )
    request = sent(fake_onesignal, "transfer_subscription")
    assert request.path.endswith(f"/subscriptions/{subscription_id}/owner")
    assert identity.identity["external_id"] == "other-user"


async def test_get_eligible_iams(client: OneSignalClient, fake_onesignal: Any) -> None:
    subscription_id = await new_user(client, fake_onesignal)
    iams = await client.get_eligible_iams(fake_onesignal.app.id, subscription_id)
    request = sent(fake_onesignal, "get_eligible_iams")
    assert request.path.endswith(f"/subscriptions/{subscription_id}/iams")
    assert isinstance(iams.in_app_messages, list)


# ------------------------------------------------------------------- live activities


async def test_live_activity_begin_update_end(client: OneSignalClient, fake_onesignal: Any) -> None:
    app_id = fake_onesignal.app.id
    subscription_id = await new_user(client, fake_onesignal)
    await client.begin_live_activity(
        app_id, "match-1", {"push_token": "lat-1", "subscription_id": subscription_id}
    )
    request = sent(fake_onesignal, "begin_live_activity")
    assert request.path == f"/apps/{app_id}/live_activities/match-1/token"

    updated = await client.update_live_activity(
        app_id,
        "match-1",
        m.UpdateLiveActivityRequest(name="contents", event="update", event_updates={"home": 1}),
    )
    request = sent(fake_onesignal, "update_live_activity")
    assert request.path == f"/apps/{app_id}/live_activities/match-1/notifications"
    assert request.json == {"name": "contents", "event": "update", "event_updates": {"home": 1}}
    assert isinstance(updated, m.LiveActivityUpdated)

    await client.end_live_activity(app_id, "match-1", subscription_id)
    request = sent(fake_onesignal, "end_live_activity")
    assert request.path == f"/apps/{app_id}/live_activities/match-1/token/{subscription_id}"


# --------------------------------------------------------------------------- players


async def test_players(client: OneSignalClient, fake_onesignal: Any) -> None:
    app_id = fake_onesignal.app.id
    created = await client.create_player(
        {"app_id": app_id, "device_type": 1, "identifier": "fcm-1", "language": "en"}
    )
    request = sent(fake_onesignal, "create_player")
    assert request.path == "/players"
    assert created.success is True and created.id
    player_id = created.id

    player = await client.get_player(app_id, player_id, email_auth_hash="h")
    request = sent(fake_onesignal, "get_player")
    assert request.path == f"/players/{player_id}"
    assert request.query == {"app_id": [app_id], "email_auth_hash": ["h"]}
    assert player.id == player_id
    assert player.device_type == 1

    page = await client.get_players(app_id, limit=10, offset=0)
    request = sent(fake_onesignal, "get_players")
    assert request.query == {"app_id": [app_id], "limit": ["10"], "offset": ["0"]}
    assert player_id in [p.id for p in page.players]

    updated = await client.update_player(
        player_id, m.PlayerRequest(app_id=app_id, device_type=1, language="de")
    )
    request = sent(fake_onesignal, "update_player")
    assert (request.method, request.path) == ("PUT", f"/players/{player_id}")
    assert request.json == {"app_id": app_id, "device_type": 1, "language": "de"}
    assert updated.success is True

    deleted = await client.delete_player(app_id, player_id)
    request = sent(fake_onesignal, "delete_player")
    assert request.query == {"app_id": [app_id]}
    assert deleted.success is True


async def test_update_player_tags(client: OneSignalClient, fake_onesignal: Any) -> None:
    await new_user(client, fake_onesignal)
    result = await client.update_player_tags(
        fake_onesignal.app.id,
        "cust-4711",
        update_player_tags_request_body={"tags": {"level": "5"}},
    )
    request = sent(fake_onesignal, "update_player_tags")
    assert request.path == f"/apps/{fake_onesignal.app.id}/users/cust-4711"
    assert request.json == {"tags": {"level": "5"}}
    assert result.success is True


async def test_export_players(client: OneSignalClient, fake_onesignal: Any) -> None:
    export = await client.export_players(
        fake_onesignal.app.id,
        export_players_request_body=m.ExportPlayersRequest(extra_fields=["country"]),
    )
    request = sent(fake_onesignal, "export_players")
    assert request.path == "/players/csv_export"
    assert one(request, "app_id") == fake_onesignal.app.id
    assert request.json == {"extra_fields": ["country"]}
    assert export.csv_file_url
