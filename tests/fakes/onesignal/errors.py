"""OneSignal's error bodies, copied from the real API, and the exception handlers raise."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

ACCESS_DENIED = (
    "Access denied.  Please include an 'Authorization: Key' header with a valid API key "
    "(https://documentation.onesignal.com/docs/keys-and-ids)."
)
APP_ID_MISSING = "app_id not found. You may be missing a Content-Type: application/json header."
APP_NOT_FOUND = "App not found"
RATE_LIMITED = "API rate limit exceeded."
NOTIFICATION_NOT_FOUND = "Notification not found"
ALREADY_SENT = "Notification has already been sent to all recipients"
NO_CONTENTS = "Message Notifications must have English language content"
NO_TARGET = (
    "You must include which players, segments, or tags you wish to send this notification to."
)
NOT_SUBSCRIBED = "All included players are not subscribed"
MAX_IDS = 2000


class ApiError(Exception):
    """A handler's refusal: the status and the JSON body the client receives."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def errors(status: int, *messages: str) -> ApiError:
    """The common OneSignal shape: `{"errors": ["..."]}`."""
    return ApiError(status, {"errors": list(messages)})


def user_model_error(status: int, code: str, title: str) -> ApiError:
    """The user model's shape: `{"errors": [{"code": ..., "title": ...}]}`."""
    return ApiError(status, {"errors": [{"code": code, "title": title}]})


def user_not_found() -> ApiError:
    return user_model_error(404, "user-2", "User not found")


def subscription_not_found() -> ApiError:
    return user_model_error(404, "subscription-0", "Subscription not found")


def too_many_ids(field: str) -> ApiError:
    return errors(400, f"You may only send a notification to {MAX_IDS} {field} at a time")


def body_for_status(status: int) -> dict[str, Any]:
    """The body OneSignal answers with when it fails with `status` on its own."""
    if status == 429:
        return {"errors": [RATE_LIMITED]}
    if status in (401, 403):
        return {"errors": [ACCESS_DENIED]}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"errors": [phrase]}
