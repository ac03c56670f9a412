"""User-model endpoints: users, aliases (identity) and subscriptions."""

from __future__ import annotations

from typing import Any

from tests.fakes.onesignal.calls import Call, Reply
from tests.fakes.onesignal.errors import (
    ApiError,
    errors,
    subscription_not_found,
    user_model_error,
    user_not_found,
)
from tests.fakes.onesignal.store import DEVICE_TYPES, AppState

SUBSCRIPTION_TYPES = frozenset(DEVICE_TYPES.values())


def merge_tags(properties: dict[str, Any], tags: Any) -> None:
    """Apply tags like the API: an empty or null value deletes the tag."""
    if not isinstance(tags, dict):
        raise errors(400, "tags must be an object")
    current = properties.setdefault("tags", {})
    for key, value in tags.items():
        if value in ("", None):
            current.pop(key, None)
        else:
            current[key] = value


def _identity_of(body: dict[str, Any], key: str = "identity") -> dict[str, str]:
    identity = body.get(key) or {}
    if not isinstance(identity, dict) or not all(isinstance(v, str) for v in identity.values()):
        raise errors(400, f"{key} must be an object of alias label to string id")
    if "onesignal_id" in identity:
        raise errors(400, "onesignal_id cannot be set")
    return identity


def _conflict(taken: dict[str, str]) -> ApiError:
    error = user_model_error(409, "user-3", "Aliases claimed by another user")
    error.body["errors"][0]["meta"] = {"conflicting_aliases": taken}
    return error


def _add_aliases(state: AppState, user: dict[str, Any], identity: dict[str, str]) -> None:
    """Give `user` these aliases; 409 if another user holds one of them."""
    user_id = user["identity"]["onesignal_id"]
    taken = {
        label: value
        for label, value in identity.items()
        if state.aliases.get((label, value), user_id) != user_id
    }
    if taken:
        raise _conflict(taken)
    for label, value in identity.items():
        old = user["identity"].get(label)
        if old is not None:
            state.aliases.pop((label, old), None)
        user["identity"][label] = value
        state.aliases[(label, value)] = user_id


def _subscription_body(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise errors(400, "subscription must be an object")
    if raw.get("type") not in SUBSCRIPTION_TYPES:
        raise errors(
            400, f"subscription type must be one of {', '.join(sorted(SUBSCRIPTION_TYPES))}"
        )
    return {k: v for k, v in raw.items() if k != "id"}


def _user(call: Call) -> dict[str, Any]:
    user = call.state.user_by_alias(call.params["alias_label"], call.params["alias_id"])
    if user is None:
        raise user_not_found()
    return user


def _subscription(call: Call) -> dict[str, Any]:
    subscription = call.state.subscription(call.params["subscription_id"])
    if subscription is None:
        raise subscription_not_found()
    return subscription


def create_user(call: Call) -> Reply:
    """POST /apps/{app_id}/users: 201 new, 200 when the aliases name one existing user."""
    state, body = call.state, call.json
    identity = _identity_of(body)
    subscriptions = body.get("subscriptions") or []
    if not isinstance(subscriptions, list):
        raise errors(400, "subscriptions must be an array")
    subscriptions = [_subscription_body(s) for s in subscriptions]
    if not identity and not subscriptions:
        raise errors(400, "A user needs at least one alias or subscription")
    owners = {state.aliases[(k, v)] for k, v in identity.items() if (k, v) in state.aliases}
    if len(owners) > 1:
        raise _conflict({k: v for k, v in identity.items() if (k, v) in state.aliases})
    if owners:
        user = state.users[owners.pop()]
        _add_aliases(state, user, identity)
        _merge_properties(user, body.get("properties") or {})
        for subscription in subscriptions:
            call.store.attach_subscription(state, user, subscription)
        return Reply(200, user)
    user = call.store.add_user(state.app.id, properties=body.get("properties"), identity=identity)
    for subscription in subscriptions:
        call.store.attach_subscription(state, user, subscription)
    return Reply(201, user)


def _merge_properties(user: dict[str, Any], properties: Any) -> None:
    if not isinstance(properties, dict):
        raise errors(400, "properties must be an object")
    for key, value in properties.items():
        if key == "tags":
            merge_tags(user["properties"], value)
        else:
            user["properties"][key] = value


def fetch_user(call: Call) -> Reply:
    """GET /apps/{app_id}/users/by/{alias_label}/{alias_id}."""
    return Reply(200, _user(call))


def update_user(call: Call) -> Reply:
    """PATCH /apps/{app_id}/users/by/{alias_label}/{alias_id}: 202 with the properties sent."""
    user, body = _user(call), call.json
    properties = body.get("properties") or {}
    _merge_properties(user, properties)
    deltas = body.get("deltas") or {}
    if not isinstance(deltas, dict):
        raise errors(400, "deltas must be an object")
    props = user["properties"]
    for key in ("session_time", "session_count", "amount_spent"):
        if key in deltas:
            props[key] = props.get(key, 0) + deltas[key]
    if deltas.get("purchases"):
        props.setdefault("purchases", []).extend(deltas["purchases"])
    return Reply(202, {"properties": properties})


def delete_user(call: Call) -> Reply:
    """DELETE /apps/{app_id}/users/by/{alias_label}/{alias_id}."""
    call.store.remove_user(call.state, _user(call))
    return Reply(200, {})


def update_player_tags(call: Call) -> Reply:
    """PUT /apps/{app_id}/users/{external_user_id}: tags of the user with that external id."""
    user = call.state.user_by_alias("external_id", call.params["external_user_id"])
    if user is None:
        raise errors(400, "User with this external_user_id not found")
    merge_tags(user["properties"], call.json.get("tags"))
    return Reply(200, {"success": True})


def identify_user(call: Call) -> Reply:
    """PATCH /apps/{app_id}/users/by/{alias_label}/{alias_id}/identity."""
    user = _user(call)
    _add_aliases(call.state, user, _identity_of(call.json))
    return Reply(200, {"identity": user["identity"]})


def fetch_identity(call: Call) -> Reply:
    """GET /apps/{app_id}/users/by/{alias_label}/{alias_id}/identity."""
    return Reply(200, {"identity": _user(call)["identity"]})


def delete_alias(call: Call) -> Reply:
    """DELETE /apps/{app_id}/users/by/{alias_label}/{alias_id}/identity/{alias_label_to_delete}."""
    user = _user(call)
    label = call.params["alias_label_to_delete"]
    if label == "onesignal_id":
        raise errors(400, "onesignal_id cannot be deleted")
    if label not in user["identity"]:
        raise errors(400, f"The user has no alias {label}")
    call.state.aliases.pop((label, user["identity"].pop(label)), None)
    return Reply(200, {"identity": user["identity"]})


def create_subscription(call: Call) -> Reply:
    """POST /apps/{app_id}/users/by/{alias_label}/{alias_id}/subscriptions."""
    user = _user(call)
    given = _subscription_body(call.json.get("subscription"))
    subscription = call.store.attach_subscription(call.state, user, given)
    return Reply(201, {"subscription": subscription})


def update_subscription(call: Call) -> Reply:
    """PATCH /apps/{app_id}/subscriptions/{subscription_id}."""
    subscription = _subscription(call)
    given = call.json.get("subscription")
    if not isinstance(given, dict):
        raise errors(400, "subscription must be an object")
    if "type" in given and given["type"] not in SUBSCRIPTION_TYPES:
        raise errors(400, "subscription type is not valid")
    subscription.update((k, v) for k, v in given.items() if k != "id")
    return Reply(202, {})


def delete_subscription(call: Call) -> Reply:
    """DELETE /apps/{app_id}/subscriptions/{subscription_id}."""
    _subscription(call)
    call.store.detach_subscription(call.state, call.params["subscription_id"])
    return Reply(202, {})


def _owner(call: Call) -> dict[str, Any]:
    _subscription(call)
    owner = call.state.user_of_subscription(call.params["subscription_id"])
    assert owner is not None
    return owner


def fetch_aliases(call: Call) -> Reply:
    """GET /apps/{app_id}/subscriptions/{subscription_id}/user/identity."""
    return Reply(200, {"identity": _owner(call)["identity"]})


def identify_by_subscription(call: Call) -> Reply:
    """PATCH /apps/{app_id}/subscriptions/{subscription_id}/user/identity."""
    owner = _owner(call)
    _add_aliases(call.state, owner, _identity_of(call.json))
    return Reply(200, {"identity": owner["identity"]})


def transfer_subscription(call: Call) -> Reply:
    """PATCH /apps/{app_id}/subscriptions/{subscription_id}/owner: move it to another user."""
    _subscription(call)
    identity = call.json.get("identity") or {}
    if not isinstance(identity, dict) or len(identity) != 1:
        raise errors(400, "identity must name exactly one alias of the new owner")
    ((label, value),) = identity.items()
    target = call.state.user_by_alias(label, str(value))
    if target is None:
        raise user_not_found()
    moved = call.store.detach_subscription(call.state, call.params["subscription_id"])
    call.store.attach_subscription(call.state, target, moved)
    return Reply(200, {"identity": target["identity"]})


def eligible_iams(call: Call) -> Reply:
    """GET /apps/{app_id}/subscriptions/{subscription_id}/iams."""
    _subscription(call)
    return Reply(200, {"in_app_messages": []})
