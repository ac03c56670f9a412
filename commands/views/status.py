"""`/push status`: OneSignal's delivery counters of a send, per platform, with Refresh."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from bot import const
from commands._format import Block, code, context, escape, section
from commands.views.limits import BUTTON_VALUE
from commands.views.sends import (
    SendCard,
    actions,
    button,
    cancel_button,
    describe_time,
    facts,
    headline,
    options_text,
    stoppable,
)

COUNTERS: Final = ("successful", "failed", "errored", "converted", "received", "remaining")
"""The counters shown, in this order."""

PLATFORMS: Final = {
    "ios": "iOS",
    "android": "Android",
    "huawei": "Huawei",
    "chrome_web_push": "Chrome (web)",
    "firefox_web_push": "Firefox (web)",
    "safari_web_push": "Safari (web)",
    "edge_web_push": "Edge (web)",
    "email": "Email",
    "sms": "SMS",
}
"""OneSignal's `platform_delivery_stats` keys and how to show them; others show as sent."""


@dataclass(frozen=True)
class SlackRefusal:
    """A message about a send that Slack refused for good: its purpose (`log`, `approval`,
    or what a DM told), where it was going (a channel or a user), and Slack's reason."""

    purpose: str
    destination: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class StatusView:
    """What the status reply shows.

    Attributes:
        ref: what the person typed (the Refresh button asks again with it).
        card: the send, when it is one of ours (None for a bare OneSignal id).
        notification_ids: the OneSignal notifications (one per batch).
        counters: totals over the notifications.
        per_platform: platform key -> counter -> value.
        timezone: the zone for times (the requester's).
        note: a sentence when counters are missing or partial.
        refused: the messages about the send that Slack refused for good.
    """

    ref: str
    card: SendCard | None = None
    notification_ids: tuple[str, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    per_platform: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    completed_at: datetime | None = None
    canceled: bool = False
    timezone: str = "UTC"
    note: str | None = None
    checked_at: datetime | None = None
    refused: tuple[SlackRefusal, ...] = ()


def status_blocks(status: StatusView) -> list[Block]:
    """The status reply: headline, totals, one line per platform, and Refresh."""
    blocks = [section(_title(status))]
    if status.card is not None:
        blocks.append(context(facts(status.card)))
        options = options_text(status.card)  # per time zone, say: why it is still going
        if options:
            blocks.append(context(options))
    if status.counters:
        blocks.append(section(f"*Total*: {_counter_line(status.counters)}"))
    lines = [
        f"*{escape(PLATFORMS.get(key, key))}*: {_counter_line(counts)}"
        for key, counts in sorted(status.per_platform.items())
        if counts
    ]
    if lines:
        blocks.append(section("\n".join(lines)))
    notes = _notes(status)
    if notes:
        blocks.append(context(" · ".join(notes)))
    if status.refused:
        blocks.append(section("\n".join(refusal_line(r) for r in status.refused[:MAX_REFUSALS])))
    refresh = button("Refresh", const.ACTION_STATUS_REFRESH, status.ref[:BUTTON_VALUE])
    if status.card is not None and stoppable(status.card):
        blocks.append(actions(refresh, cancel_button(status.card)))
    else:
        blocks.append(actions(refresh))
    return blocks


def status_text(status: StatusView) -> str:
    """The notification text of the status reply."""
    totals = _counter_line(status.counters) if status.counters else "no counters yet"
    return f"{_title(status)}: {totals}"


def _title(status: StatusView) -> str:
    if status.card is not None:
        return f"*{headline(status.card)}*"
    ids = ", ".join(code(i, limit=40) for i in status.notification_ids) or code(status.ref)
    return f"*OneSignal notification {ids}*"


def _counter_line(counts: Mapping[str, int]) -> str:
    shown = [f"{name} {counts[name]:,}" for name in COUNTERS if name in counts]
    return ", ".join(shown) or "no counters"


MAX_REFUSALS: Final = 10
"""Refused messages listed in a status reply (the oldest)."""

_REFUSED_WHAT: Final = {
    "log": "The log channel's message about it in <#{}>",
    "approval": "Its approval request in <#{}>",
}


def refusal_line(refusal: SlackRefusal) -> str:
    """`:warning: The log channel's message about it in #ops was not posted: Slack answered
    `channel_not_found`.`"""
    what = _REFUSED_WHAT.get(refusal.purpose, "The message to <@{}> about it")
    where = escape(refusal.destination)
    return (
        f":warning: {what.format(where)} was not posted: Slack answered "
        f"{code(refusal.reason, limit=200)}."
    )


def _notes(status: StatusView) -> list[str]:
    notes = []
    if status.canceled:
        notes.append("Cancelled at OneSignal")
    if status.completed_at is not None:
        notes.append(f"Delivery completed {describe_time(status.completed_at, status.timezone)}")
    elif status.notification_ids and not status.canceled:
        notes.append("Delivery still in progress")
    if status.note:
        notes.append(escape(status.note))
    if status.checked_at is not None:
        notes.append(f"Checked {describe_time(status.checked_at, status.timezone)}")
    return notes
