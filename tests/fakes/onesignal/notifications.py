"""Notification endpoints: create (idempotent), list, view, cancel, history, exports, count.

Delivery is stepwise and deterministic: a new notification waits with `remaining` equal to
its audience; each `advance()` delivers the next third of it (a tenth of each batch fails,
a tenth of the successes convert), and the last step sets `completed_at`, except that one
delivered per time zone or when each user is active completes only once its last user can
have had it (`last_delivery`): until then it can be cancelled. Every body is checked
against the documented shape first (`shapes`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta, timezone
from typing import Any

from dateutil import parser as dateparser

from tests.fakes.onesignal.audience import Audience, check_targeting, count
from tests.fakes.onesignal.calls import Call, Reply, page
from tests.fakes.onesignal.errors import (
    ALREADY_SENT,
    NO_CONTENTS,
    NOT_SUBSCRIBED,
    NOTIFICATION_NOT_FOUND,
    errors,
)
from tests.fakes.onesignal.shapes import check_notification
from tests.fakes.onesignal.store import AppState, new_id, now_unix

DELIVERY_STEPS = 3
WRITE_ONLY = frozenset({"idempotency_key"})
REPLAYED = {"Idempotent-Replayed": "true"}
# The API reads naive times as UTC-11:00; a client must always send an offset.
API_DEFAULT_TZ = timezone(timedelta(hours=-11))
_GMT_OFFSET = re.compile(r"\b(?:GMT|UTC)\s*([+-]\d{1,2}(?::?\d{2})?)")
_PARENTHESES = re.compile(r"\([^)]*\)")
_PLATFORM = {"push": "android", "email": "email", "sms": "sms"}


def create(call: Call) -> Reply:
    """POST /notifications."""
    state, body = call.state, call.json
    key = body.get("idempotency_key") or body.get("external_id")
    key = key or call.headers.get("idempotency-key")
    if key and (first := state.idempotent.get(str(key))) is not None:
        return Reply(200, first, REPLAYED)
    _check_content(state, body)
    check_targeting(body)
    check_notification(body)
    send_after = parse_send_after(body["send_after"]) if body.get("send_after") else None
    audience = count(state, body)
    if audience.count == 0:
        return Reply(200, _nothing_sent(body, audience))
    notification = _stored(state, body, audience.count, send_after)
    call.store.notifications[notification["id"]] = notification
    answer: dict[str, Any] = {
        "id": notification["id"],
        "external_id": body.get("external_id"),
        "recipients": audience.count,
    }
    if audience.invalid:
        answer["errors"] = audience.invalid
    if key:
        state.idempotent[str(key)] = answer
    return Reply(200, answer)


def _nothing_sent(body: dict[str, Any], audience: Audience) -> dict[str, Any]:
    """OneSignal's 200 for a notification that reaches nobody: nothing was created.

    The two documented forms: ids the app does not know at all get no `id` (openapi v1.2.2:
    "If no id is returned, then a message was not created and the targeted User IDs do not
    exist under the provided app_id"), legacy player ids with OneSignal's classic
    `{"errors": ["All included players are not subscribed"]}`; anything else reaching nobody
    (users without a subscription, an empty segment) gets an empty `id` (openapi 5.12).
    """
    if audience.unknown_ids:
        by_players = body.get("include_player_ids") or body.get("include_subscription_ids")
        return {"errors": [NOT_SUBSCRIBED] if by_players else audience.invalid}
    return {"id": "", "external_id": None, "errors": audience.invalid or [NOT_SUBSCRIBED]}


def _check_content(state: AppState, body: dict[str, Any]) -> None:
    template_id = body.get("template_id")
    if template_id:
        if str(template_id) not in state.templates:
            raise errors(400, "template_id is invalid")
        return
    if body.get("content_available"):
        return
    if body.get("target_channel") == "email":
        if not body.get("email_body"):
            raise errors(400, "Email body must not be empty")
        return
    contents = body.get("contents")
    if contents is not None and not isinstance(contents, dict):
        raise errors(400, "contents must be an object of language code to text")
    if not contents or not contents.get("en"):
        raise errors(400, NO_CONTENTS)


def parse_send_after(raw: Any) -> int:
    """Unix time of a `send_after` in any of the formats the API documents."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return int(raw)
    if not isinstance(raw, str):
        raise errors(400, "send_after must be a date string")
    text = _GMT_OFFSET.sub(r"\1", _PARENTHESES.sub("", raw)).strip()
    try:
        moment = dateparser.parse(text)
    except (ValueError, OverflowError):
        raise errors(400, f"send_after is not a valid date: {raw}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=API_DEFAULT_TZ)
    return int(moment.timestamp())


def _stored(
    state: AppState, body: dict[str, Any], audience: int, send_after: int | None
) -> dict[str, Any]:
    queued_at = now_unix()
    stored: dict[str, Any] = {"id": new_id()}
    stored.update((k, v) for k, v in body.items() if k != "id")
    stored.update(
        {
            "app_id": state.app.id,
            "queued_at": queued_at,
            "send_after": send_after if send_after is not None else queued_at,
            "completed_at": None,
            "successful": 0,
            "failed": 0,
            "errored": 0,
            "converted": 0,
            "received": 0,
            "remaining": audience,
            "canceled": False,
            "platform_delivery_stats": {},
            "throttle_rate_per_minute": body.get("throttle_rate_per_minute"),
            "outcomes": [],
        }
    )
    return stored


def advance(notification: dict[str, Any]) -> None:
    """Deliver the next step of a notification (nothing once completed or canceled)."""
    if notification["canceled"] or notification["completed_at"] is not None:
        return
    total = (
        notification["successful"]
        + notification["failed"]
        + notification["errored"]
        + notification["remaining"]
    )
    batch = min(notification["remaining"], math.ceil(total / DELIVERY_STEPS))
    failed = batch // 10
    notification["successful"] += batch - failed
    notification["failed"] += failed
    notification["remaining"] -= batch
    notification["received"] = notification["successful"]
    notification["converted"] = notification["successful"] // 10
    platform = _PLATFORM[notification.get("target_channel") or "push"]
    notification["platform_delivery_stats"] = {
        platform: {
            key: notification[key]
            for key in ("successful", "failed", "errored", "converted", "received")
        }
    }
    if notification["remaining"] == 0 and now_unix() >= last_delivery(notification):
        notification["completed_at"] = max(now_unix(), notification["send_after"])


SPREAD_SECONDS = {"timezone": 26 * 3600, "last-active": 24 * 3600}
"""How long after `send_after` a notification delivered per time zone (UTC+14 first, UTC-12
last) or when each user is usually active may still reach someone, and be cancelled."""


def last_delivery(notification: dict[str, Any]) -> int:
    """When the notification's last recipient gets it (unix time)."""
    spread = SPREAD_SECONDS.get(notification.get("delayed_option") or "", 0)
    return int(notification["send_after"]) + spread


def public(notification: dict[str, Any]) -> dict[str, Any]:
    """The notification as GET answers it (write-only fields left out)."""
    return {k: v for k, v in notification.items() if k not in WRITE_ONLY}


def _owned(call: Call) -> dict[str, Any]:
    notification = call.store.notifications.get(call.params["notification_id"])
    if notification is None or notification["app_id"] != call.state.app.id:
        raise errors(404, NOTIFICATION_NOT_FOUND)
    return notification


def view(call: Call) -> Reply:
    """GET /notifications/{notification_id}?app_id=."""
    notification = _owned(call)
    if call.store.auto_advance and notification["send_after"] <= now_unix():
        advance(notification)
    return Reply(200, public(notification))


def listing(call: Call) -> Reply:
    """GET /notifications?app_id=&limit=&offset=&kind= (newest first; all are API-made)."""
    limit = call.int_arg("limit", 50, maximum=50)
    offset = call.int_arg("offset", 0)
    kind = call.arg("kind")
    if kind not in (None, "", "0", "1", "3"):
        raise errors(400, "kind must be one of 0, 1, 3")
    app_id = call.state.app.id
    mine = [n for n in call.store.notifications.values() if n["app_id"] == app_id]
    if kind in ("0", "3"):
        mine = []
    mine.reverse()  # insertion order breaks ties in queued_at
    mine.sort(key=lambda n: n["queued_at"], reverse=True)
    return Reply(
        200,
        {
            "total_count": len(mine),
            "offset": offset,
            "limit": limit,
            "notifications": [public(n) for n in page(mine, offset, limit)],
        },
    )


def cancel(call: Call) -> Reply:
    """DELETE /notifications/{notification_id}?app_id=."""
    notification = _owned(call)
    if notification["completed_at"] is not None:
        raise errors(400, ALREADY_SENT)
    notification["canceled"] = True
    return Reply(200, {"success": True})


def history(call: Call) -> Reply:
    """POST /notifications/{notification_id}/history (app_id and events in the body)."""
    notification = _owned(call)
    events = call.json.get("events")
    if events not in ("sent", "clicked"):
        raise errors(400, "events must be one of: sent, clicked")
    url = _export_url(call.state, f"{notification['id']}_{events}")
    return Reply(200, {"success": True, "destination_url": url})


def export_events(call: Call) -> Reply:
    """POST /notifications/{notification_id}/export_events?app_id=."""
    notification = _owned(call)
    return Reply(200, {"csv_file_url": _export_url(call.state, f"{notification['id']}_events")})


def _export_url(state: AppState, name: str) -> str:
    return f"https://onesignal.s3.amazonaws.com/csv_exports/{state.app.id}/{name}.csv.gz"


def count_unsaved(call: Call) -> Reply:
    """POST /notifications/count-unsaved: the audience the same body would reach now."""
    body = call.json
    check_targeting(body)
    reached = count(call.state, body).count
    return Reply(200, {"count": reached, "uncapped_count": reached, "cap_applied": False})
