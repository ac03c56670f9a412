"""Pytest fixtures: the fake OneSignal server (one per session, reset before each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.onesignal import FakeOneSignal


@pytest.fixture(scope="session")
def fake_onesignal_server() -> Iterator[FakeOneSignal]:
    """The running fake OneSignal, shared by the whole session; prefer `fake_onesignal`."""
    fake = FakeOneSignal()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_onesignal(fake_onesignal_server: FakeOneSignal) -> Iterator[FakeOneSignal]:
    """The fake OneSignal, reset for this test: one seeded app, no requests, no faults."""
    fake_onesignal_server.reset()
    yield fake_onesignal_server
    # Let go of anything a failed test left held, so its client is not stuck at teardown.
    fake_onesignal_server.faults.clear()
