"""The fake's state: apps and everything they hold, guarded by one lock.

The server thread mutates it while handling requests and the test thread seeds and reads it,
so every access goes through `Store.lock` (a re-entrant lock: handlers run whole under it).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.onesignal.records import FakeApp, RecordedRequest

PUSH_TYPES = frozenset(
    {
        "iOSPush",
        "AndroidPush",
        "FireOSPush",
        "ChromeExtensionPush",
        "ChromePush",
        "WindowsPush",
        "SafariLegacyPush",
        "FirefoxPush",
        "macOSPush",
        "HuaweiPush",
        "SafariPush",
    }
)
# Legacy player `device_type` <-> user-model subscription `type`.
DEVICE_TYPES: dict[int, str] = {
    0: "iOSPush",
    1: "AndroidPush",
    2: "FireOSPush",
    4: "ChromeExtensionPush",
    5: "ChromePush",
    6: "WindowsPush",
    7: "SafariLegacyPush",
    8: "FirefoxPush",
    9: "macOSPush",
    11: "Email",
    13: "HuaweiPush",
    14: "SMS",
    17: "SafariPush",
}
TYPE_DEVICES = {name: number for number, name in DEVICE_TYPES.items()}
# The segments every new OneSignal app has, with the sizes the seeded app gives them.
DEFAULT_SEGMENTS: dict[str, int] = {
    "Subscribed Users": 1000,
    "Active Users": 600,
    "Engaged Users": 200,
    "Inactive Users": 400,
}


def now_unix() -> int:
    return int(time.time())


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def new_key(kind: str) -> str:
    """A key shaped like OneSignal's current ones (`os_v2_app_…`, `os_v2_org_…`)."""
    return f"os_v2_{kind}_{secrets.token_hex(24)}"


def channel_of(subscription: dict[str, Any]) -> str:
    kind = subscription.get("type")
    if kind == "Email":
        return "email"
    if kind == "SMS":
        return "sms"
    return "push"


def reachable(subscription: dict[str, Any], channel: str) -> bool:
    """An enabled subscription of that channel: one a notification would reach."""
    types = subscription.get("notification_types")
    return (
        channel_of(subscription) == channel
        and subscription.get("enabled", True) is True
        and (types is None or (isinstance(types, int) and types > 0))
    )


@dataclass(slots=True)
class Segment:
    """A segment: its public record, and the size counting rules use (None: count users)."""

    data: dict[str, Any]
    size: int | None
    filters: list[dict[str, Any]]


@dataclass
class AppState:
    """One app and what belongs to it."""

    app: FakeApp
    fields: dict[str, Any]
    segments: dict[str, Segment] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # onesignal_id -> user
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)  # (label, id) -> user
    subscriptions: dict[str, str] = field(default_factory=dict)  # subscription id -> user
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> first body

    def segment_named(self, name: str) -> Segment | None:
        for segment in self.segments.values():
            if segment.data["name"] == name:
                return segment
        return None

    def user_by_alias(self, label: str, value: str) -> dict[str, Any] | None:
        user_id = self.aliases.get((label, value))
        return None if user_id is None else self.users[user_id]

    def user_of_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        user_id = self.subscriptions.get(subscription_id)
        return None if user_id is None else self.users[user_id]

    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        user = self.user_of_subscription(subscription_id)
        if user is None:
            return None
        found: dict[str, Any] = next(s for s in user["subscriptions"] if s["id"] == subscription_id)
        return found


class Store:
    """Everything the fake remembers; `reset()` brings it back to one seeded app."""

    def __init__(self, *, app_id: str, rest_api_key: str, org_api_key: str, app_name: str) -> None:
        self.lock = threading.RLock()
        self.org_api_key = org_api_key
        self._seed = FakeApp(id=app_id, rest_api_key=rest_api_key, name=app_name)
        self.apps: dict[str, AppState] = {}
        self.notifications: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.auto_advance = False
        self.record_requests = True
        self.reset()

    @property
    def default_app(self) -> FakeApp:
        return self.apps[self._seed.id].app

    def reset(self) -> None:
        with self.lock:
            self.apps.clear()
            self.notifications.clear()
            self.requests.clear()
            self.auto_advance = False
            self.record_requests = True
            seed = self._seed
            self.add_app(seed.name, app_id=seed.id, rest_api_key=seed.rest_api_key)
            for name, size in DEFAULT_SEGMENTS.items():
                self.add_segment(seed.id, name, size=size, read_only=True)

    def app_state(self, app_id: str) -> AppState:
        """The app's state; a clear error for a test that names an app the fake lacks."""
        try:
            return self.apps[app_id]
        except KeyError:
            raise KeyError(f"the fake OneSignal has no app {app_id!r}") from None

    def add_app(
        self, name: str, *, app_id: str | None = None, rest_api_key: str | None = None
    ) -> FakeApp:
        app = FakeApp(id=app_id or new_id(), rest_api_key=rest_api_key or new_key("app"), name=name)
        stamp = now_iso()
        with self.lock:
            if app.id in self.apps:
                raise ValueError(f"the fake OneSignal already has an app {app.id!r}")
            fields = {"created_at": stamp, "updated_at": stamp, "apns_env": "production"}
            self.apps[app.id] = AppState(app=app, fields=fields)
        return app

    def add_segment(
        self,
        app_id: str,
        name: str,
        *,
        size: int | None = None,
        filters: list[dict[str, Any]] | None = None,
        read_only: bool = False,
    ) -> dict[str, Any]:
        stamp = now_iso()
        with self.lock:
            state = self.app_state(app_id)
            if state.segment_named(name) is not None:
                raise ValueError(f"app {app_id!r} already has a segment named {name!r}")
            segment_id = new_id()
            data: dict[str, Any] = {
                "id": segment_id,
                "name": name,
                "created_at": stamp,
                "updated_at": stamp,
                "app_id": app_id,
                "read_only": read_only,
                "is_active": True,
            }
            state.segments[segment_id] = Segment(data, size, list(filters or []))
            return data

    def add_template(
        self,
        app_id: str,
        name: str,
        *,
        content: dict[str, Any] | None = None,
        channel: str = "push",
    ) -> dict[str, Any]:
        stamp = now_iso()
        template_id = new_id()
        template: dict[str, Any] = {
            "id": template_id,
            "name": name,
            "created_at": stamp,
            "updated_at": stamp,
            "channel": channel,
            "content": content if content is not None else {"contents": {"en": name}},
        }
        with self.lock:
            self.app_state(app_id).templates[template_id] = template
        return template

    def add_user(
        self,
        app_id: str,
        *,
        properties: dict[str, Any] | None = None,
        identity: dict[str, str] | None = None,
        subscriptions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store a new user; aliases must be free (callers check conflicts first)."""
        with self.lock:
            state = self.app_state(app_id)
            user_id = new_id()
            ids = {"onesignal_id": user_id, **(identity or {})}
            for label, value in ids.items():
                if (label, value) in state.aliases:
                    raise ValueError(f"alias {label}={value!r} already belongs to another user")
            stamp = now_unix()
            props = {
                "tags": {},
                "language": "en",
                "timezone_id": "UTC",
                "country": "US",
                "first_active": stamp,
                "last_active": stamp,
            }
            props.update(properties or {})
            user: dict[str, Any] = {"properties": props, "identity": ids, "subscriptions": []}
            state.users[user_id] = user
            for label, value in ids.items():
                state.aliases[(label, value)] = user_id
            for subscription in subscriptions or []:
                self.attach_subscription(state, user, subscription)
            return user

    def attach_subscription(
        self, state: AppState, user: dict[str, Any], given: dict[str, Any]
    ) -> dict[str, Any]:
        """Give `user` a subscription built from `given` plus realistic defaults."""
        subscription: dict[str, Any] = {
            "id": new_id(),
            "type": "AndroidPush",
            "token": secrets.token_hex(16),
            "enabled": True,
            "notification_types": 1,
            "session_time": 0,
            "session_count": 1,
            "sdk": "050200",
            "device_model": "Pixel 8",
            "device_os": "14",
            "test_type": 0,
            "app_version": "1.0.0",
        }
        subscription.update(given)
        user["subscriptions"].append(subscription)
        state.subscriptions[subscription["id"]] = user["identity"]["onesignal_id"]
        return subscription

    def detach_subscription(self, state: AppState, subscription_id: str) -> dict[str, Any]:
        user = state.users[state.subscriptions.pop(subscription_id)]
        found: dict[str, Any] = next(s for s in user["subscriptions"] if s["id"] == subscription_id)
        user["subscriptions"].remove(found)
        return found

    def remove_user(self, state: AppState, user: dict[str, Any]) -> None:
        for label, value in user["identity"].items():
            state.aliases.pop((label, value), None)
        for subscription in user["subscriptions"]:
            state.subscriptions.pop(subscription["id"], None)
        del state.users[user["identity"]["onesignal_id"]]
