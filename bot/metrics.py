"""Prometheus metrics of one PushOps process, served as text on `GET /metrics`.

Every label takes values from a set fixed in advance (Slack's request kinds, the send
states, OneSignal's operations and HTTP statuses, Slack's methods and error codes) or, for
app names, chosen by admins and capped per process; never an id or free text, so no request
can add a series.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy.exc import SQLAlchemyError

from bot.onesignal import Exchange
from bot.slack_http import RESPONSE_URL
from storage import outbox, queries
from storage.db import Database
from storage.models import OutboxState, SendState

log = logging.getLogger(__name__)

OTHER: Final = "other"
"""The label value of anything outside a label's known set."""

# Slack wants an answer within 3 s; the buckets resolve the part of that range that matters.
_ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)
# From a timer's 10 ms slot to a send found at the misfire grace's end (600 s by default).
_LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)

MAX_APP_LABELS: Final = 50
"""App names counted under their own label per process; later ones count as `other`.

Names are chosen by admins, so a single workspace has a handful; in OAuth mode every
workspace names its own, and this keeps their sum bounded."""

STORED_TTL: Final = 5.0
"""Seconds the counts read from the database serve scrapes (several scrapers, replicas)."""
STORED_TIMEOUT: Final = 2.0
"""Seconds a scrape waits for the database before showing the stored counts as unknown."""

REQUEST_KINDS: Final = frozenset(
    {
        "command",
        "event",
        "block_actions",
        "block_suggestion",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
        "interactive_message",
        "url_verification",
    }
)
"""The kinds of Slack request counted by name (`bot.app` names them); others are `other`."""

SLACK_ERRORS: Final = frozenset(
    {
        "access_denied",
        "account_inactive",
        "cannot_dm_bot",
        "cant_update_message",
        "channel_not_found",
        "duplicate_external_id",
        "edit_window_closed",
        "ekm_access_denied",
        "exchanged_trigger_id",
        "expired_trigger_id",
        "expired_url",
        "fatal_error",
        "hash_conflict",
        "internal_error",
        "invalid_arguments",
        "invalid_auth",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_code",
        "invalid_trigger_id",
        "is_archived",
        "message_not_found",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "no_text",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "ratelimited",
        "request_timeout",
        "restricted_action",
        "service_unavailable",
        "team_not_found",
        "token_expired",
        "token_revoked",
        "too_many_attachments",
        "used_url",
        "user_not_found",
        "users_not_found",
        "view_not_found",
        "timeout",
        "connection_error",
    }
)
"""Slack's error codes counted by name (and our two for calls without an answer)."""

_SLACK_METHOD: Final = re.compile(r"[a-z]+(\.[a-zA-Z0-9]+){1,3}")
_HTTP_ERROR: Final = re.compile(r"http_[1-5][0-9][0-9]")
_OPERATION: Final = re.compile(r"[a-z][a-z_]{1,60}")


class Metrics:
    """The process's metrics, in a registry of their own.

    A registry per instance (not prometheus_client's global one) lets several apps live in
    one process, as they do in the tests, without "duplicated timeseries" errors.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._slack_metrics()
        self._send_metrics()
        self._onesignal_metrics()
        self._app_labels: set[str] = set()
        self._stored_until = 0.0
        self._stored_lock: asyncio.Lock | None = None

    def _slack_metrics(self) -> None:
        self.slack_requests = Counter(
            "pushops_slack_requests",
            "Slack requests handled, by kind (command, block_actions, view_submission, event...).",
            ["kind"],
            registry=self.registry,
        )
        self.slack_ack_seconds = Histogram(
            "pushops_slack_ack_seconds",
            "Time from a Slack request reaching the app to its acknowledgement.",
            buckets=_ACK_BUCKETS,
            registry=self.registry,
        )
        self.http_events = Counter(
            "pushops_http_slack_events",
            "HTTP requests to /slack/events, by response status.",
            ["status"],
            registry=self.registry,
        )
        self.commands = Counter(
            "pushops_commands",
            "/push subcommands run, by subcommand (unknown ones counted as 'unknown').",
            ["subcommand"],
            registry=self.registry,
        )
        self.unexpected_errors = Counter(
            "pushops_unexpected_errors",
            "Errors that reached the top-level error handler (each one is logged).",
            registry=self.registry,
        )
        self.slack_api_errors = Counter(
            "pushops_slack_api_errors",
            "Slack Web API calls and response_url replies that failed, by method and error.",
            ["method", "error"],
            registry=self.registry,
        )

    def _send_metrics(self) -> None:
        self.send_outcomes = Counter(
            "pushops_send_outcomes",
            "Sends reaching an outcome (sent, failed, missed, expired, rejected, cancelled), "
            "by state and app name.",
            ["state", "app"],
            registry=self.registry,
        )
        self.delivery_retries = Counter(
            "pushops_delivery_retries",
            "Delivery attempts that failed in passing and were planned again, same key.",
            registry=self.registry,
        )
        self.delivery_lateness_seconds = Histogram(
            "pushops_delivery_lateness_seconds",
            "Time from a send's due time to its first OneSignal request.",
            buckets=_LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.sends_scheduled = Gauge(
            "pushops_sends_scheduled",
            "Sends of every workspace scheduled (waiting for their time), read from the database.",
            registry=self.registry,
        )
        self.approvals_pending = Gauge(
            "pushops_approvals_pending",
            "Sends of every workspace waiting for approval, read from the database.",
            registry=self.registry,
        )
        self.slack_outbox = Gauge(
            "pushops_slack_outbox_messages",
            "Messages owed to Slack in the outbox, by state: pending (not yet taken), refused "
            "(Slack refused them for good), done (kept a day), read from the database.",
            ["state"],
            registry=self.registry,
        )

    def _onesignal_metrics(self) -> None:
        self.onesignal_requests = Counter(
            "pushops_onesignal_requests",
            "HTTP requests to OneSignal, by operation and status (the HTTP status code, or "
            "'timeout' or 'connection_error' when no answer came).",
            ["operation", "status"],
            registry=self.registry,
        )
        self.onesignal_retries = Counter(
            "pushops_onesignal_retries",
            "OneSignal requests that repeated an earlier one (429, 5xx, no answer), by operation.",
            ["operation"],
            registry=self.registry,
        )

    # --- what the rest of the process reports ---------------------------------------------

    def request_kind(self, kind: str) -> None:
        """Count a Slack request of `kind` (`other` unless it is one of REQUEST_KINDS)."""
        self.slack_requests.labels(kind=kind if kind in REQUEST_KINDS else OTHER).inc()

    def onesignal_exchange(self, exchange: Exchange) -> None:
        """Count one exchange with OneSignal (the observer of the pooled client)."""
        operation = exchange.operation if _OPERATION.fullmatch(exchange.operation) else OTHER
        self.onesignal_requests.labels(operation=operation, status=_status(exchange)).inc()
        if exchange.retry > 0:
            self.onesignal_retries.labels(operation=operation).inc()

    def slack_api_error(self, method: str, error: str) -> None:
        """Count a failed Slack call of `method` (`response_url` for replies) with `error`."""
        if method != RESPONSE_URL and not _SLACK_METHOD.fullmatch(method):
            method = OTHER
        known = error in SLACK_ERRORS or _HTTP_ERROR.fullmatch(error)
        self.slack_api_errors.labels(method=method, error=error if known else OTHER).inc()

    def send_outcome(self, state: SendState, app: str) -> None:
        """Count a send reaching `state`, of the app named `app`."""
        self.send_outcomes.labels(state=state.value, app=self._app_label(app)).inc()

    def _app_label(self, app: str) -> str:
        if app in self._app_labels:
            return app
        if len(self._app_labels) >= MAX_APP_LABELS or not app.isprintable() or len(app) > 80:
            return OTHER
        self._app_labels.add(app)
        return app

    # --- scraping -----------------------------------------------------------------------------

    async def read_stored(self, database: Database) -> None:
        """Set the gauges read from the database, at most once per STORED_TTL seconds.

        The counts are the same whichever replica is scraped. A database that does not
        answer within STORED_TIMEOUT makes them NaN (unknown), not stale, and the rest of
        the metrics are served all the same.
        """
        if time.monotonic() < self._stored_until:
            return
        if self._stored_lock is None:  # made at first use, inside the serving loop
            self._stored_lock = asyncio.Lock()
        async with self._stored_lock:
            if time.monotonic() < self._stored_until:
                return
            try:
                async with asyncio.timeout(STORED_TIMEOUT), database.sessions() as session:
                    counts = await queries.count_sends(
                        session=session,
                        states=(SendState.SCHEDULED, SendState.PENDING_APPROVAL),
                    )
                    owed = await outbox.outbox_counts(session=session)
            except (SQLAlchemyError, OSError, TimeoutError) as error:
                log.warning("metrics: could not count sends (%s)", type(error).__name__)
                self.sends_scheduled.set(math.nan)
                self.approvals_pending.set(math.nan)
                for state in OutboxState:
                    self.slack_outbox.labels(state=state.value).set(math.nan)
            else:
                self.sends_scheduled.set(counts[SendState.SCHEDULED])
                self.approvals_pending.set(counts[SendState.PENDING_APPROVAL])
                for state, count in owed.items():
                    self.slack_outbox.labels(state=state.value).set(count)
            self._stored_until = time.monotonic() + STORED_TTL

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def _status(exchange: Exchange) -> str:
    if exchange.status is None:
        return "timeout" if exchange.failure == "timeout" else "connection_error"
    return str(exchange.status) if 100 <= exchange.status <= 599 else OTHER
