"""Legacy player (device) endpoints, a view over the user model's subscriptions."""

from __future__ import annotations

from typing import Any

from tests.fakes.onesignal.calls import Call, Reply, page
from tests.fakes.onesignal.errors import errors
from tests.fakes.onesignal.store import DEVICE_TYPES, TYPE_DEVICES, AppState
from tests.fakes.onesignal.users import merge_tags

PLAYER_NOT_FOUND = "No user with this id found"
# Player fields stored on the subscription under another name, and on the user's properties.
_SUBSCRIPTION_FIELDS = {
    "identifier": "token",
    "game_version": "app_version",
    "playtime": "session_time",
}
_COPIED_FIELDS = (
    "device_model",
    "device_os",
    "sdk",
    "session_count",
    "notification_types",
    "test_type",
)
_USER_FIELDS = ("language", "country", "lat", "long", "amount_spent")


def player_view(state: AppState, subscription: dict[str, Any]) -> dict[str, Any]:
    """The Player schema for one subscription."""
    user = state.user_of_subscription(subscription["id"])
    assert user is not None
    props = user["properties"]
    view: dict[str, Any] = {
        "id": subscription["id"],
        "app_id": state.app.id,
        "device_type": TYPE_DEVICES.get(subscription.get("type", ""), 1),
        "external_user_id": user["identity"].get("external_id"),
        "identifier": subscription.get("token"),
        "invalid_identifier": subscription.get("enabled", True) is not True,
        "timezone": 0,
        "tags": props.get("tags", {}),
        "created_at": props.get("first_active"),
        "last_active": props.get("last_active"),
        "badge_count": 0,
    }
    for player_key, key in _SUBSCRIPTION_FIELDS.items():
        view[player_key] = subscription.get(key)
    for key in _COPIED_FIELDS:
        view[key] = subscription.get(key)
    for key in _USER_FIELDS:
        view[key] = props.get(key)
    return view


def _player(call: Call) -> dict[str, Any]:
    subscription = call.state.subscription(call.params["player_id"])
    if subscription is None:
        raise errors(400, PLAYER_NOT_FOUND)
    return subscription


def list_players(call: Call) -> Reply:
    """GET /players?app_id=&limit=&offset= (at most 300)."""
    limit = call.int_arg("limit", 300, maximum=300)
    offset = call.int_arg("offset", 0)
    state = call.state
    subscriptions = [s for user in state.users.values() for s in user["subscriptions"]]
    players = [player_view(state, s) for s in page(subscriptions, offset, limit)]
    return Reply(
        200,
        {"total_count": len(subscriptions), "offset": offset, "limit": limit, "players": players},
    )


def create_player(call: Call) -> Reply:
    """POST /players: a device, joined to the user with its external_user_id if given."""
    state, body = call.state, call.json
    device_type = body.get("device_type")
    if device_type not in DEVICE_TYPES:
        raise errors(400, "device_type is not a valid device type")
    external_id = body.get("external_user_id")
    user = state.user_by_alias("external_id", str(external_id)) if external_id else None
    if user is None:
        identity = {"external_id": str(external_id)} if external_id else {}
        user = call.store.add_user(state.app.id, identity=identity)
    subscription = call.store.attach_subscription(state, user, {"type": DEVICE_TYPES[device_type]})
    _apply(state, subscription, body)
    return Reply(200, {"success": True, "id": subscription["id"]})


def _apply(state: AppState, subscription: dict[str, Any], body: dict[str, Any]) -> None:
    user = state.user_of_subscription(subscription["id"])
    assert user is not None
    for player_key, key in _SUBSCRIPTION_FIELDS.items():
        if player_key in body:
            subscription[key] = body[player_key]
    for key in _COPIED_FIELDS:
        if key in body:
            subscription[key] = body[key]
    for key in _USER_FIELDS:
        if key in body:
            user["properties"][key] = body[key]
    if "tags" in body:
        merge_tags(user["properties"], body["tags"])


def view_player(call: Call) -> Reply:
    """GET /players/{player_id}?app_id=."""
    return Reply(200, player_view(call.state, _player(call)))


def update_player(call: Call) -> Reply:
    """PUT /players/{player_id} (app_id in the body)."""
    subscription = _player(call)
    body = call.json
    if "device_type" in body:
        if body["device_type"] not in DEVICE_TYPES:
            raise errors(400, "device_type is not a valid device type")
        subscription["type"] = DEVICE_TYPES[body["device_type"]]
    _apply(call.state, subscription, body)
    return Reply(200, {"success": True})


def delete_player(call: Call) -> Reply:
    """DELETE /players/{player_id}?app_id=."""
    if call.state.subscription(call.params["player_id"]) is None:
        return Reply(404, {"success": False})
    call.store.detach_subscription(call.state, call.params["player_id"])
    return Reply(200, {"success": True})


def export_players(call: Call) -> Reply:
    """POST /players/csv_export?app_id=."""
    url = f"https://onesignal.s3.amazonaws.com/csv_exports/{call.state.app.id}/players.csv.gz"
    return Reply(200, {"csv_file_url": url})
