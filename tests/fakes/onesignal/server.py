"""`FakeOneSignal`: the fake's state, faults and uvicorn server behind one object."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from tests.fakes.onesignal import notifications as _notifications
from tests.fakes.onesignal.asgi import FakeOneSignalASGI, HideDroppedConnections
from tests.fakes.onesignal.audience import segment_size
from tests.fakes.onesignal.faults import Faults
from tests.fakes.onesignal.records import FakeApp, RecordedRequest
from tests.fakes.onesignal.store import Store, new_id, new_key

START_TIMEOUT_SECONDS = 10.0
_hidden_drops = HideDroppedConnections()


class FakeOneSignal:
    """A stateful fake of the OneSignal REST API on 127.0.0.1, for tests and trials.

    `start()` serves it from a daemon thread with its own event loop; `url` is then the base
    URL to give a client. One app is seeded (`app`), with OneSignal's four default segments;
    `reset()` returns to that state (same app id and keys) and clears every fault.
    State is shared with the server thread: read it through the properties below, which
    copy it under the lock.
    """

    def __init__(
        self,
        *,
        app_id: str | None = None,
        rest_api_key: str | None = None,
        org_api_key: str | None = None,
        app_name: str = "PushOps Test",
    ) -> None:
        self.faults = Faults()
        self._store = Store(
            app_id=app_id or new_id(),
            rest_api_key=rest_api_key or new_key("app"),
            org_api_key=org_api_key or new_key("org"),
            app_name=app_name,
        )
        self._asgi = FakeOneSignalASGI(self._store, self.faults)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def __repr__(self) -> str:
        return f"FakeOneSignal(url={self.url!r}, app_id={self.app.id!r})"

    # Serving

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port) from a background thread; returns `url`."""
        if self._server is not None:
            raise RuntimeError("the fake OneSignal is already running")
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every response waits ~40 ms on delayed ACKs.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        config = uvicorn.Config(
            self._asgi,
            log_config=None,  # leave the test process's logging set-up alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="auto",  # httptools when installed, for the client benchmark
            timeout_graceful_shutdown=1,
        )
        logging.getLogger("uvicorn.error").addFilter(_hidden_drops)
        self._server = uvicorn.Server(config)
        self._asgi.closing = False
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-onesignal", daemon=True
        )
        self._thread.start()
        self._wait_started()
        bound_host, bound_port = sock.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        assert self._server is not None and self._thread is not None
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OneSignal server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving (held requests are let go) and wait for the thread to end."""
        if self._server is None or self._thread is None:
            return
        self._asgi.closing = True
        self._server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT_SECONDS)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOneSignal:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Identity

    @property
    def app(self) -> FakeApp:
        """The seeded app (id, rest_api_key, name)."""
        return self._store.default_app

    @property
    def org_api_key(self) -> str:
        """The organization key, for get_apps, create_app, get_app and update_app."""
        return self._store.org_api_key

    def add_app(
        self, name: str = "Second", *, app_id: str | None = None, rest_api_key: str | None = None
    ) -> FakeApp:
        """Another app, with its own REST key (a key of one app is refused by the other)."""
        return self._store.add_app(name, app_id=app_id, rest_api_key=rest_api_key)

    def reset(self) -> None:
        """Drop all state, requests and faults; re-seed the default app."""
        self.faults.clear()
        self._store.reset()

    # What the fake received and holds

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (refused and faulted ones too); a copy."""
        with self._store.lock:
            return list(self._store.requests)

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """The received requests with this method whose path starts with `path_prefix`."""
        method = method.upper()
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    @property
    def notifications(self) -> dict[str, dict[str, Any]]:
        """Notification id -> stored notification, all apps (a copy of the mapping).

        A stored notification holds the body it was created with, `send_after` as unix time,
        and the counters GET answers (`successful`, `failed`, `remaining`, `canceled`,
        `completed_at`, …).
        """
        with self._store.lock:
            return dict(self._store.notifications)

    @property
    def auto_advance(self) -> bool:
        """When true, each GET of a notification that is due advances its delivery a step."""
        return self._store.auto_advance

    @auto_advance.setter
    def auto_advance(self, value: bool) -> None:
        self._store.auto_advance = value

    @property
    def record_requests(self) -> bool:
        """Whether `requests` keeps what arrives (True; benchmarks may turn it off)."""
        return self._store.record_requests

    @record_requests.setter
    def record_requests(self, value: bool) -> None:
        self._store.record_requests = value

    # Seeding

    def add_user(
        self,
        app_id: str,
        external_id: str,
        *,
        properties: dict[str, Any] | None = None,
        aliases: dict[str, str] | None = None,
        subscriptions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store a user (the User schema: properties, identity, subscriptions) and return it.

        `subscriptions=None` gives the user one enabled AndroidPush subscription, so that
        sends reach it; pass `[]` for a user nobody can reach. Each subscription given is
        completed with realistic defaults (id, token, enabled=True, notification_types=1…).
        """
        identity = {**(aliases or {}), "external_id": external_id}
        if subscriptions is None:
            subscriptions = [{"type": "AndroidPush"}]
        return self._store.add_user(
            app_id, properties=properties, identity=identity, subscriptions=subscriptions
        )

    def add_segment(
        self,
        app_id: str,
        name: str,
        *,
        size: int | None = None,
        filters: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A segment (the SegmentData schema). `size` fixes how many it reaches; without
        it the count is the app's reachable users matching `filters` (see audience.py)."""
        return self._store.add_segment(app_id, name, size=size, filters=filters)

    def segment_size(self, app_id: str, name: str) -> int:
        """How many a send to this segment would reach now (0 for an unknown name)."""
        with self._store.lock:
            return segment_size(self._store.app_state(app_id), name)

    def add_template(
        self,
        app_id: str,
        name: str,
        *,
        content: dict[str, Any] | None = None,
        channel: str = "push",
    ) -> dict[str, Any]:
        """A template (the TemplateResource schema) that view_templates lists."""
        return self._store.add_template(app_id, name, content=content, channel=channel)

    def find_user(self, app_id: str, alias_label: str, alias_id: str) -> dict[str, Any] | None:
        """The stored user with that alias, or None."""
        with self._store.lock:
            return self._store.app_state(app_id).user_by_alias(alias_label, alias_id)

    def advance_delivery(self, notification_id: str | None = None) -> None:
        """Move delivery one step forward: of one notification, or (None) of every one.

        Each step delivers a third of the audience (a tenth of each batch fails); the last
        sets `completed_at`. Scheduled notifications advance too: this is time passing.
        Canceled and completed notifications do not change.
        """
        with self._store.lock:
            if notification_id is None:
                targets = list(self._store.notifications.values())
            elif notification_id in self._store.notifications:
                targets = [self._store.notifications[notification_id]]
            else:
                raise KeyError(f"the fake OneSignal has no notification {notification_id!r}")
            for notification in targets:
                _notifications.advance(notification)

    def complete_delivery(self, notification_id: str | None = None) -> None:
        """Advance until delivered (canceled ones stay as they are)."""
        for _ in range(_notifications.DELIVERY_STEPS):
            self.advance_delivery(notification_id)
