"""Who a notification reaches: OneSignal's targeting rules over the fake's stored data.

The rule, deterministic so tests can assert counts (create_notification's `recipients` and
`POST /notifications/count-unsaved` use the same one):
- `included_segments`: the sum of the sizes of the named segments, minus the sum of the sizes
  of `excluded_segments`, never below 0. A segment's size is the `size` it was given
  (`add_segment(..., size=N)`; the seeded defaults: Subscribed Users 1000, Active Users 600,
  Engaged Users 200, Inactive Users 400); without one, it is the number of the app's users
  that match its filters and have an enabled subscription on the target channel. Unknown
  segment names count 0 (the real API ignores them too).
- `include_aliases` ({label: [ids]}), `include_external_user_ids`: the distinct stored users
  found by those aliases with an enabled subscription on the target channel
  (`target_channel`, default push). Ids the app does not know are reported in
  `errors.invalid_aliases` / `errors.invalid_external_user_ids`.
- `include_subscription_ids`, `include_player_ids`: the enabled subscriptions among them;
  unknown ids are reported in `errors.invalid_player_ids`.
- `include_email_tokens`, `include_phone_numbers` and the raw device-token lists: one each
  (OneSignal creates missing email/SMS subscribers on the fly).
- `filters`: users with an enabled subscription matching the filters (`tag` with =, !=, >, <,
  exists, not_exists; `language`, `country` with = and !=; `{"operator": "OR"}` separates
  alternatives; other fields match everyone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.onesignal.errors import MAX_IDS, NO_TARGET, errors, too_many_ids
from tests.fakes.onesignal.store import AppState, reachable

ID_LISTS = (
    "include_player_ids",
    "include_subscription_ids",
    "include_external_user_ids",
    "include_email_tokens",
    "include_phone_numbers",
    "include_ios_tokens",
    "include_wp_wns_uris",
    "include_amazon_reg_ids",
    "include_chrome_reg_ids",
    "include_chrome_web_reg_ids",
    "include_android_reg_ids",
)
TARGETS = ("included_segments", "include_aliases", "filters", *ID_LISTS)
CHANNELS = ("push", "email", "sms")


@dataclass(slots=True)
class Audience:
    """How many a notification reaches, and the `errors` object naming unknown targets.

    `unknown_ids`: the notification targets ids and the app knows none of them (OneSignal
    then answers without an `id` at all, rather than with an empty one).
    """

    count: int
    invalid: dict[str, Any] | None = None
    unknown_ids: bool = False


def check_targeting(body: dict[str, Any]) -> list[str]:
    """The targeting kinds used; 400 like the API for none, misuse, or over 2,000 ids."""
    used = [key for key in TARGETS if body.get(key)]
    if not used:
        raise errors(400, NO_TARGET)
    if "include_aliases" in used and len(used) > 1:
        raise errors(400, "include_aliases cannot be combined with other targeting parameters")
    for key in used:
        _check_shape(key, body[key])
    channel = body.get("target_channel")
    if channel is not None and channel not in CHANNELS:
        raise errors(400, "target_channel must be one of push, email, sms")
    return used


def _check_shape(key: str, value: Any) -> None:
    if key == "include_aliases":
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise errors(400, "include_aliases must be an object of alias label to id list")
        if sum(len(v) for v in value.values()) > MAX_IDS:
            raise too_many_ids("include_aliases")
        return
    if not isinstance(value, list):
        raise errors(400, f"{key} must be an array")
    if key in ID_LISTS and len(value) > MAX_IDS:
        raise too_many_ids(key)


def count(state: AppState, body: dict[str, Any]) -> Audience:
    """The audience of a (validated) notification body in this app."""
    channel = body.get("target_channel") or "push"
    if body.get("include_aliases"):
        aliases = body["include_aliases"]
        reached, unknown = _by_aliases(state, aliases, channel)
        return Audience(
            reached, {"invalid_aliases": unknown} if unknown else None, unknown == aliases
        )
    if body.get("include_external_user_ids"):
        aliases = {"external_id": body["include_external_user_ids"]}
        reached, unknown = _by_aliases(state, aliases, channel)
        missing = unknown.get("external_id")
        return Audience(
            reached,
            {"invalid_external_user_ids": missing} if missing else None,
            unknown == aliases,
        )
    ids = [*(body.get("include_subscription_ids") or []), *(body.get("include_player_ids") or [])]
    if ids:
        return _by_subscriptions(state, ids)
    if body.get("included_segments"):
        return Audience(_segments(state, body, channel))
    if body.get("filters"):
        users = state.users.values()
        return Audience(sum(1 for user in users if _matches(user, body["filters"], channel)))
    return Audience(sum(len(body.get(key) or []) for key in ID_LISTS))


def _by_aliases(
    state: AppState, aliases: dict[str, list[Any]], channel: str
) -> tuple[int, dict[str, list[Any]]]:
    """Distinct reachable users found by the aliases, and the ids nobody has, per label."""
    users: set[str] = set()
    unknown: dict[str, list[Any]] = {}
    for label, values in aliases.items():
        for value in values:
            user = state.user_by_alias(label, str(value))
            if user is None:
                unknown.setdefault(label, []).append(value)
            elif any(reachable(s, channel) for s in user["subscriptions"]):
                users.add(user["identity"]["onesignal_id"])
    return len(users), unknown


def _by_subscriptions(state: AppState, ids: list[Any]) -> Audience:
    reached = 0
    unknown: list[Any] = []
    for subscription_id in ids:
        subscription = state.subscription(str(subscription_id))
        if subscription is None:
            unknown.append(subscription_id)
        elif subscription.get("enabled", True) is True:
            reached += 1
    return Audience(
        reached, {"invalid_player_ids": unknown} if unknown else None, len(unknown) == len(ids)
    )


def _segments(state: AppState, body: dict[str, Any], channel: str) -> int:
    def size(name: Any) -> int:
        segment = state.segment_named(str(name))
        if segment is None:
            return 0
        if segment.size is not None:
            return segment.size
        return sum(1 for user in state.users.values() if _matches(user, segment.filters, channel))

    included = sum(size(name) for name in body["included_segments"])
    excluded = sum(size(name) for name in body.get("excluded_segments") or [])
    return max(0, included - excluded)


def segment_size(state: AppState, name: str, channel: str = "push") -> int:
    """The size the counting rule gives one segment of this app."""
    return _segments(state, {"included_segments": [name]}, channel)


def _matches(user: dict[str, Any], filters: list[Any], channel: str) -> bool:
    if not any(reachable(s, channel) for s in user["subscriptions"]):
        return False
    groups: list[list[dict[str, Any]]] = [[]]
    for item in filters:
        if isinstance(item, dict) and str(item.get("operator", "")).upper() == "OR":
            groups.append([])
        elif isinstance(item, dict) and "field" in item:
            groups[-1].append(item)
    return any(all(_condition(user, c) for c in group) for group in groups)


def _condition(user: dict[str, Any], condition: dict[str, Any]) -> bool:
    props = user["properties"]
    field = condition.get("field")
    relation = condition.get("relation", "=")
    if field == "tag":
        present = condition.get("key") in props.get("tags", {})
        actual = props.get("tags", {}).get(condition.get("key"))
    elif field in ("language", "country"):
        present, actual = field in props, props.get(field)
    else:
        return True
    return _relation(relation, present, actual, condition.get("value"))


def _relation(relation: str, present: bool, actual: Any, wanted: Any) -> bool:
    if relation == "exists":
        return present
    if relation == "not_exists":
        return not present
    if relation == "=":
        return present and str(actual) == str(wanted)
    if relation == "!=":
        return not present or str(actual) != str(wanted)
    if relation in (">", "<") and present:
        try:
            left, right = float(actual), float(wanted)
        except (TypeError, ValueError):
            return False
        return left > right if relation == ">" else left < right
    return False
