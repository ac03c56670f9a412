"""The metrics keep every label within a set fixed in advance, and say so when they cannot count."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from bot.metrics import MAX_APP_LABELS, Metrics
from bot.onesignal import Exchange
from storage import outbox
from storage.db import Database
from storage.models import OutboxKind, SendState, utcnow
from storage.outbox import OutboxEntry
from tests.scenario.prometheus import label_values, value


def _values(metrics: Metrics, name: str, label: str) -> set[str]:
    return label_values(metrics.render().decode(), name, label)


def test_request_kinds_outside_slacks_own_count_as_other():
    metrics = Metrics()

    for kind in ("command", "block_actions", "made_up_kind", "x" * 30):
        metrics.request_kind(kind)

    assert _values(metrics, "pushops_slack_requests_total", "kind") == {
        "command", "block_actions", "other",
    }  # fmt: skip


def test_slack_errors_and_methods_stay_within_known_sets():
    metrics = Metrics()

    metrics.slack_api_error("chat.postMessage", "channel_not_found")
    metrics.slack_api_error("chat.postMessage", "brand_new_error")
    metrics.slack_api_error("response_url", "http_404")
    metrics.slack_api_error("https://evil.example/api/x?token=1", "ratelimited")

    assert _values(metrics, "pushops_slack_api_errors_total", "method") == {
        "chat.postMessage", "response_url", "other",
    }  # fmt: skip
    assert _values(metrics, "pushops_slack_api_errors_total", "error") == {
        "channel_not_found", "other", "http_404", "ratelimited",
    }  # fmt: skip


def test_onesignal_statuses_are_codes_or_the_two_kinds_of_no_answer():
    metrics = Metrics()

    answers: list[tuple[int | None, Literal["timeout"] | None]] = [
        (200, None), (403, None), (999, None), (None, "timeout"),
    ]  # fmt: skip
    for status, failure in answers:
        metrics.onesignal_exchange(Exchange("create_notification", status, failure, 0, 0.1))
    metrics.onesignal_exchange(Exchange("fetch_user", None, "connection", 1, 0.1))

    name = "pushops_onesignal_requests_total"
    assert _values(metrics, name, "status") == {
        "200", "403", "other", "timeout", "connection_error",
    }  # fmt: skip
    assert _values(metrics, "pushops_onesignal_retries_total", "operation") == {"fetch_user"}


def test_app_names_beyond_the_cap_count_as_other():
    metrics = Metrics()

    for index in range(MAX_APP_LABELS + 5):
        metrics.send_outcome(SendState.SENT, f"app {index}")
    metrics.send_outcome(SendState.SENT, "app 0")  # one seen before stays itself

    apps = _values(metrics, "pushops_send_outcomes_total", "app")
    assert len(apps) == MAX_APP_LABELS + 1
    assert "other" in apps and "app 0" in apps and f"app {MAX_APP_LABELS}" not in apps


async def test_stored_counts_are_unknown_when_the_database_cannot_answer(tmp_path: Path):
    database = Database.open(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    metrics = Metrics()
    try:
        await metrics.read_stored(database)
    finally:
        await database.dispose()

    text = metrics.render().decode()
    assert "pushops_sends_scheduled NaN" in text
    assert "pushops_approvals_pending NaN" in text
    assert 'pushops_slack_outbox_messages{state="pending"} NaN' in text


async def test_messages_owed_to_slack_are_counted_by_state(sqlite_database: Database):
    entries = [
        OutboxEntry(
            team_id="T0TEST",
            key=f"dm:{n}",
            kind=OutboxKind.DM,
            purpose="delivered",
            destination=f"U0{n}",
            payload={"text": "sent"},
        )
        for n in range(3)
    ]
    async with sqlite_database.sessions.begin() as session:
        await outbox.enqueue(session=session, entries=entries, replace=False)
    (refused,) = await outbox.claim_outbox(
        session_factory=sqlite_database.sessions, now=utcnow(), worker_id="w", limit=1
    )
    await outbox.finish_outbox(
        session_factory=sqlite_database.sessions,
        worker_id="w",
        results=[(refused, outbox.Refused("user_not_found"))],
    )
    metrics = Metrics()

    await metrics.read_stored(sqlite_database)

    text = metrics.render().decode()
    assert value(text, "pushops_slack_outbox_messages", state="pending") == 2.0
    assert value(text, "pushops_slack_outbox_messages", state="refused") == 1.0
    assert value(text, "pushops_slack_outbox_messages", state="done") == 0.0
