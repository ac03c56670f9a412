"""Serving PushOps with a database, a key ring and the fake OneSignal, as a real workspace does.

Single-workspace mode with ONESIGNAL_APP_ID / ONESIGNAL_API_KEY set to the fake OneSignal's
seeded app, so the workspace's `default` app exists once the app has started.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.settings import Settings
from storage.crypto import KeyRing
from storage.db import Database
from tests.fakes.onesignal import FakeOneSignal
from tests.fakes.slack import FakeSlack
from tests.plugins.database import register_secret
from tests.plugins.slack import PushOps, ServeFactory, default_services, make_settings


def onesignal_settings(
    fake_slack: FakeSlack, fake_onesignal: FakeOneSignal, tmp_path: Path, **overrides: Any
) -> Settings:
    """Single-workspace settings whose `default` app is the fake OneSignal's seeded app."""
    values: dict[str, Any] = {
        "onesignal_api_url": fake_onesignal.url,
        "onesignal_app_id": fake_onesignal.app.id,
        "onesignal_api_key": register_secret(fake_onesignal.app.rest_api_key),
    }
    values.update(overrides)
    return make_settings(fake_slack, tmp_path, **values)


@contextlib.asynccontextmanager
async def serve_with_storage(
    serve_pushops: ServeFactory, settings: Settings, database: Database, keyring: KeyRing
) -> AsyncIterator[PushOps]:
    """The real app for `settings`, with `database` and `keyring` in its services."""
    services = default_services(settings, database, keyring)
    async with serve_pushops(settings, services=services) as running:
        yield running
