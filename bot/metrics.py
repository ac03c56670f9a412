"""Prometheus metrics of one PushOps process, served as text on `GET /metrics`."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Slack wants an answer within 3 s; the buckets resolve the part of that range that matters.
_ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)


class Metrics:
    """The process's counters, in a registry of their own.

    A registry per instance (not prometheus_client's global one) lets several apps live in
    one process, as they do in the tests, without "duplicated timeseries" errors.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
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

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
