"""Every end of a send in one log line and in `/metrics`, through the real door.

Each kind of outcome (sent, refused by OneSignal, given up after retries, missed, expired,
rejected, cancelled) writes one line with its short id, workspace, app, state, attempts and
reason as fields, in the text format and in the JSON one, never a key. `/metrics` counts
outcomes by state and app, OneSignal's requests by operation and status, retries, lateness,
the sends waiting in the database and Slack's failed calls; no request adds a label value.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from bot import const
from bot.delivery import DeliveryPolicy
from bot.logs import build_handler
from bot.settings import Settings
from storage import queries, workspaces
from storage.models import SendState, utcnow
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID, RESPONSE_URL
from tests.scenario.prometheus import label_values, value
from tests.scenario.sendkit import (
    BOB,
    FAST,
    SEGMENT,
    only_send,
    require_approvals,
    serve_sending,
    set_log_channel,
    settings,
    wait_for_state,
)
from tests.scenario.workspace import onesignal_settings

GIVE_UP = DeliveryPolicy(
    max_attempts=2,
    backoff=0.1,
    max_backoff=0.2,
    lease=2.0,
    client_retries=1,
    client_retry_delay=0.01,
    client_retry_max_delay=0.05,
)
FIELDS = ("event", "send", "workspace", "app", "state", "attempts")


@dataclass
class OutcomeLines:
    """What `bot.outcome_log` wrote, through production's handlers in both formats."""

    text: io.StringIO
    json: io.StringIO

    def lines(self, short_id: str, event: str = "send.outcome") -> list[tuple[dict[str, Any], str]]:
        entries = [json.loads(line) for line in self.json.getvalue().splitlines()]
        texts = self.text.getvalue().splitlines()
        assert len(entries) == len(texts)
        return [
            (entry, text)
            for entry, text in zip(entries, texts, strict=True)
            if entry.get("event") == event and entry.get("send") == short_id
        ]

    async def one(
        self, short_id: str, event: str = "send.outcome", within: float = 10.0
    ) -> tuple[dict[str, Any], str]:
        """The one line of `event` about the send (waiting for it up to `within` s)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.lines(short_id, event):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # a second line would show by now
        found = self.lines(short_id, event)
        assert len(found) == 1, self.text.getvalue()
        return found[0]

    def everything(self) -> str:
        return self.text.getvalue() + self.json.getvalue()


@pytest.fixture
def outcome_lines() -> Iterator[OutcomeLines]:
    # Settings without secrets: the handlers' redaction by value must not hide a leak here.
    text, json_stream = io.StringIO(), io.StringIO()
    handlers = [
        build_handler(Settings(_env_file=None, log_format="text"), text),
        build_handler(Settings(_env_file=None, log_format="json"), json_stream),
    ]
    logger = logging.getLogger("bot.outcome_log")
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield OutcomeLines(text, json_stream)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def scrape(app: Any) -> str:
    response = await app.http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def scrape_until(app: Any, name: str, *, within: float = 5.0, **labels: str) -> str:
    """The metrics once the sample `name{labels}` shows (what counts an answer may follow
    the fake's record of the call by a moment)."""
    deadline = time.monotonic() + within
    text = await scrape(app)
    while value(text, name, **labels) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        text = await scrape(app)
    return text


async def _send_now(app: Any, database: Any, text: str = "Hello") -> Any:
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" {text}')
    await sent.reply()
    return await only_send(database)


def _assert_fields(entry: dict[str, Any], text: str, short_id: str, state: str) -> None:
    assert {key: entry[key] for key in FIELDS} == {
        "event": "send.outcome",
        "send": short_id,
        "workspace": DEFAULT_TEAM_ID,
        "app": "default",
        "state": state,
        "attempts": entry["attempts"],
    }
    assert isinstance(entry["attempts"], int)
    assert f": send.outcome send={short_id} " in text
    for key in FIELDS[2:]:
        shown = entry[key] if key != "app" else "default"
        assert f" {key}={shown}" in text, text


# --- /metrics ----------------------------------------------------------------------------------


async def test_metrics_count_sent_failed_and_cancelled_sends_and_onesignals_answers(
    app, fake_onesignal, database
):
    sent = await _send_now(app, database)
    await wait_for_state(database, sent.short_id, SendState.SENT)
    fake_onesignal.faults.statuses([403], method="POST", path="/notifications")
    refused = await app.post_command(f'send --yes --segment "{SEGMENT}" Refused')
    await refused.reply()
    scheduled = await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" Later')
    await scheduled.reply()
    kept = await app.post_command(f'send --yes --in 2h --segment "{SEGMENT}" Kept')
    await kept.reply()
    async with database.sessions() as session:
        sends = await queries.list_sends(session=session, team_id=DEFAULT_TEAM_ID)
    by_text = {send.content["message"]: send for send in sends}
    await wait_for_state(database, by_text["Refused"].short_id, SendState.FAILED)
    cancel = await app.post_command(f"cancel {by_text['Later'].short_id}")
    await cancel.reply()

    text = await scrape(app)

    outcomes = "pushops_send_outcomes_total"
    assert value(text, outcomes, state="sent", app="default") == 1.0
    assert value(text, outcomes, state="failed", app="default") == 1.0
    assert value(text, outcomes, state="cancelled", app="default") == 1.0
    assert label_values(text, outcomes, "state") == {"sent", "failed", "cancelled"}
    requests = "pushops_onesignal_requests_total"
    assert value(text, requests, operation="create_notification", status="200") == 1.0
    assert value(text, requests, operation="create_notification", status="403") == 1.0
    assert value(text, "pushops_sends_scheduled") == 1.0  # "Kept", due in 2 h
    assert value(text, "pushops_approvals_pending") == 0.0
    assert value(text, "pushops_delivery_lateness_seconds_count") == 2.0
    assert value(text, "pushops_delivery_retries_total") == 0.0


async def test_waiting_approvals_are_counted_from_the_database(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack)

    await _send_now(app, database)

    text = await scrape(app)
    assert value(text, "pushops_approvals_pending") == 1.0
    assert value(text, "pushops_sends_scheduled") == 0.0


async def test_a_made_up_request_kind_adds_no_series(app):
    body = json.dumps({"type": "made_up_kind", "team_id": DEFAULT_TEAM_ID})
    await app.post_signed(body, content_type=signing.JSON)
    await app.post_command("help")

    text = await scrape(app)

    kinds = label_values(text, "pushops_slack_requests_total", "kind")
    assert kinds == {"command", "other"}
    assert "made_up_kind" not in text


async def test_slack_api_errors_are_counted_by_method_and_error(app, fake_slack, database):
    await set_log_channel(database)
    fake_slack.fail("chat.postMessage", "channel_not_found", times=5)
    fake_slack.fail(RESPONSE_URL, "expired_url", status=404)
    await app.post_command("help")  # its reply is refused
    await app.post_command(f'send --yes --segment "{SEGMENT}" Logged')  # its log post too

    errors = "pushops_slack_api_errors_total"
    text = await scrape_until(app, errors, method="chat.postMessage", error="channel_not_found")
    posts = value(text, errors, method="chat.postMessage", error="channel_not_found")
    assert posts is not None and posts >= 1.0
    text = await scrape_until(app, errors, method="response_url", error="expired_url")
    assert value(text, errors, method="response_url", error="expired_url") == 1.0


async def test_an_unknown_slack_error_is_counted_as_other(app, fake_slack):
    fake_slack.fail(RESPONSE_URL, "some_new_error_code", status=400)

    await app.post_command("help")

    errors = "pushops_slack_api_errors_total"
    text = await scrape_until(app, errors, method="response_url", error="other")
    assert value(text, errors, method="response_url", error="other") == 1.0
    assert "some_new_error_code" not in text


# --- one line per outcome ----------------------------------------------------------------------


async def test_a_sent_send_logs_one_line_with_its_fields(
    app, fake_onesignal, database, outcome_lines
):
    send = await _send_now(app, database)

    entry, text = await outcome_lines.one(send.short_id)

    done = await wait_for_state(database, send.short_id, SendState.SENT)
    _assert_fields(entry, text, send.short_id, "sent")
    assert entry["attempts"] == 1 and entry["level"] == "INFO"
    assert entry["notification"] == done.notification_id
    assert "reason" not in entry
    assert fake_onesignal.app.rest_api_key not in outcome_lines.everything()


async def test_a_send_refused_with_403_logs_one_line_with_onesignals_reason(
    app, fake_onesignal, database, outcome_lines
):
    fake_onesignal.faults.statuses([403], method="POST", path="/notifications")

    send = await _send_now(app, database)

    entry, text = await outcome_lines.one(send.short_id)
    _assert_fields(entry, text, send.short_id, "failed")
    assert entry["level"] == "WARNING" and entry["attempts"] == 1
    assert entry["reason"].startswith("OneSignal refused it (HTTP 403)")
    assert 'reason="OneSignal refused it (HTTP 403)' in text
    assert fake_onesignal.app.rest_api_key not in outcome_lines.everything()


async def test_a_send_that_gave_up_after_retries_logs_each_retry_and_its_end(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path, outcome_lines
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    fake_onesignal.faults.statuses([503] * 4, method="POST", path="/notifications")
    async with serve_sending(serve_pushops, config, database, keyring, policy=GIVE_UP) as app:
        send = await _send_now(app, database)
        entry, text = await outcome_lines.one(send.short_id)
        metrics = await scrape(app)

    retry, retry_text = await outcome_lines.one(send.short_id, "send.retry")
    assert retry["state"] == "sending" and retry["attempts"] == 1 and "next_at" in retry
    assert "send.retry send=" in retry_text and "OneSignal failed (HTTP 503)" in retry_text
    # Out of attempts, the send is held once more only to ask OneSignal whether it has it.
    check, _ = await outcome_lines.one(send.short_id, "send.check")
    assert check["attempts"] == 2 and check["reason"].endswith("Gave up after 2 attempts.")
    _assert_fields(entry, text, send.short_id, "failed")
    assert entry["attempts"] == 3
    assert "Gave up after 2 attempts." in entry["reason"]
    assert entry["reason"].endswith("OneSignal has no notification of it: nothing was sent.")
    assert value(metrics, "pushops_delivery_retries_total") == 1.0
    assert value(metrics, "pushops_onesignal_retries_total", operation="create_notification") == 2
    requests = "pushops_onesignal_requests_total"
    assert value(metrics, requests, operation="create_notification", status="503") == 4.0
    assert value(metrics, "pushops_delivery_lateness_seconds_count") == 1.0  # the first try only
    assert fake_onesignal.app.rest_api_key not in outcome_lines.everything()


async def test_a_missed_send_logs_one_line(app, database, storage_factory, outcome_lines):
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")
    send = await storage_factory.send(
        default, state=SendState.SCHEDULED, due_at=utcnow() - timedelta(hours=2)
    )

    entry, text = await outcome_lines.one(send.short_id)

    _assert_fields(entry, text, send.short_id, "missed")
    assert entry["level"] == "WARNING" and entry["attempts"] == 0
    assert entry["reason"] == "Not sent: found more than 10 min after it was due."
    assert value(await scrape(app), "pushops_send_outcomes_total", state="missed", app="default")


async def test_an_expired_approval_logs_one_line(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path, outcome_lines
):
    config = onesignal_settings(fake_slack, fake_onesignal, tmp_path, approval_ttl=1.0)
    async with serve_sending(serve_pushops, config, database, keyring, policy=FAST) as app:
        await require_approvals(database, fake_slack)
        send = await _send_now(app, database)
        entry, text = await outcome_lines.one(send.short_id)

    _assert_fields(entry, text, send.short_id, "expired")
    assert entry["level"] == "INFO"
    assert entry["reason"] == "Nobody decided within 1 s."


async def test_a_rejected_send_logs_one_line_naming_who_rejected_it(
    app, fake_slack, database, outcome_lines
):
    await require_approvals(database, fake_slack)
    send = await _send_now(app, database)
    await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == "C0APPROVE"
    )

    response_url = app.fake.new_response_url()
    payload = signing.block_actions(
        action_id=const.ACTION_REJECT, user_id=BOB, team_id=DEFAULT_TEAM_ID,
        response_url=response_url, value=str(send.id), channel_id="C0APPROVE",
    )  # fmt: skip
    await app.post_action(payload)

    entry, text = await outcome_lines.one(send.short_id)
    _assert_fields(entry, text, send.short_id, "rejected")
    assert entry["by"] == BOB and f"by={BOB}" in text


async def test_a_cancelled_send_logs_one_line_naming_who_and_from_what(
    app, database, outcome_lines
):
    scheduled = await app.post_command(f'send --yes --in 1h --segment "{SEGMENT}" Later')
    await scheduled.reply()
    send = await only_send(database)

    cancel = await app.post_command(f"cancel {send.short_id}")
    await cancel.reply()

    entry, text = await outcome_lines.one(send.short_id)
    _assert_fields(entry, text, send.short_id, "cancelled")
    assert entry["by"] == "U0ALICE" and entry["from"] == "scheduled"
    assert "from=scheduled" in text
