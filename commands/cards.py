"""From a stored send (and the services' answers) to what the views draw."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.delivery import (
    Audience,
    DeliveryOptions,
    Estimate,
    Send,
    SendContent,
    SendRejected,
    counters_of,
)
from commands.views.sends import FinalNumbers, SendCard, audience_text

ESTIMATE_UNAVAILABLE = "Estimate unavailable."


def card_of(send: Send, *, reason: str | None = None) -> SendCard:
    """The card of `send`; `reason` (a failure, a cancellation) shows under it."""
    message, title, url, image = _content(send)
    return replace(_card(send, message, title, url, image, reason), **_extras(send))


def _card(
    send: Send,
    message: str,
    title: str | None,
    url: str | None,
    image: str | None,
    reason: str | None,
) -> SendCard:
    return SendCard(
        send_id=str(send.id),
        short_id=send.short_id,
        state=send.state,
        app_name=send.app_name,
        requester_id=send.requester_id,
        message=message,
        title=title,
        url=url,
        image=image,
        audience=describe_audience(send),
        timezone=send.timezone or "UTC",
        due_at=send.due_at,
        finished_at=send.finished_at,
        notification_id=send.notification_id,
        is_test=send.is_test,
        approvals_required=send.approvals_required,
        approvals_received=send.approvals_received,
        reason=reason,
        final=final_numbers(send),
    )


def final_numbers(send: Send) -> FinalNumbers | None:
    """The final counters read of `send`, as the views show them; None before they were."""
    counted = counters_of(send)
    if counted is None:
        return None
    return FinalNumbers(dict(counted.totals), counted.finished, counted.read_at)


def _content(send: Send) -> tuple[str, str | None, str | None, str | None]:
    try:
        content = SendContent.from_stored(send.content)
    except (SendRejected, TypeError):  # a row written by an older version: show what is there
        text = send.content.get("message") or send.content.get("contents", {}).get("en")
        return str(text or ""), None, None, None
    message = content.english_message() or ""
    return message, content.english_title(), content.url, content.image


def _extras(send: Send) -> dict[str, Any]:
    """The template, other languages and delivery options a card shows."""
    try:
        content = SendContent.from_stored(send.content)
        options = DeliveryOptions.from_stored(send.options)
    except (SendRejected, TypeError):
        return {}
    return {
        "template": content.template.name if content.template else None,
        "languages": tuple((c, t.title, t.message) for c, t in content.languages.items()),
        "delivery": tuple(options.describe()),
        "buttons": tuple((b.label, b.url) for b in options.buttons),
        "data": tuple(options.data.items()),
    }


def describe_audience(send: Send) -> str:
    """`segment Active Users`, `30 segments: A, B, … and 28 more`, `2 users: a, b` (mrkdwn)."""
    try:
        audience = Audience.from_stored(send.audience)
    except (SendRejected, TypeError):
        return "an audience this version cannot read"
    return audience_text(audience.segments, audience.excluded_segments, audience.external_ids)


def estimate_text(estimate: Estimate) -> str:
    """`Reaches about 600 subscriptions now.`, or why there is no estimate."""
    if estimate.count is None:
        return estimate.note or ESTIMATE_UNAVAILABLE
    noun = "subscription" if estimate.count == 1 else "subscriptions"
    text = f"Reaches about {estimate.count:,} {noun} now."
    return f"{text} {estimate.note}" if estimate.note else text
