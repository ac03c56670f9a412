"""The reply to `/push audit [N]` (the latest events, a line each), and audit checkpoints."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from bot.checkpoints import Checkpoint
from bot.words import plural
from bot.workspaces import AuditEvent
from commands._format import Block, code, context, dismiss_actions, escape, section
from commands.views.limits import MESSAGE_BLOCKS, fit, listing, pack

_DETAIL_SHOWN: Final = 60  # characters of one detail value
_DETAILS_SHOWN: Final = 240  # characters (as sent) of all details of one event
_TARGET_SHOWN: Final = 80  # characters (as sent) of an event's target
_AUDIENCE_SHOWN: Final = 150  # characters (as sent) of the segments of a send's audience
_SECTIONS: Final = MESSAGE_BLOCKS - 3  # besides the headline, the hint and Dismiss
_SLACK_USER: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")


def who(actor: str) -> str:
    """A Slack user as a mention; anything else (the scheduler, the settings) as code."""
    return f"<@{actor}>" if _SLACK_USER.match(actor) else code(actor or "?", limit=40)


def when(event: AuditEvent) -> str:
    """The event's time in the reader's zone (Slack formats it), UTC in the fallback."""
    moment = event.created_at.astimezone(UTC)
    fallback = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


Words = Callable[[Any, Mapping[str, Any]], str | None]
"""A detail's words, from its value and the event's other details; None: nothing to show."""


def details_text(details: Mapping[str, Any]) -> str:
    """The event's details as a person reads them (already redacted where they were stored).

    `due <date>`, `audience "Active Users"`, `scheduled → sending`, `reason "…"`; a field
    without words of its own shows as `name: value`. Each value is shortened, and the whole
    to `_DETAILS_SHOWN` characters (as sent) by whole parts, so no date or mention is cut in
    two (a first part too long alone is cut, `fit` keeps those whole); `pushops audit export`
    keeps every field exact.
    """
    shown: list[str] = []
    size = 0
    for part in _detail_parts(details):
        if size + len(part) > _DETAILS_SHOWN:
            shown.append("…" if shown else fit(part, _DETAILS_SHOWN))
            break
        shown.append(part)
        size += len(part) + 2
    return ", ".join(shown)


def _detail_parts(details: Mapping[str, Any]) -> list[str]:
    """One mrkdwn part per detail a person needs: those of `_ORDER` in its order, then the
    others by name (details are stored as canonical JSON, keys sorted: they keep no order)."""
    parts: list[str] = []
    for key in sorted(details, key=_rank):
        if key in _HIDDEN:
            continue
        value = details[key]
        words = _WORDS.get(key)
        part = words(value, details) if words else f"{escape(key)}: {_value(value)}"
        if part:
            parts.append(part)
    return parts


def _value(value: Any) -> str:
    """A value for people: none, yes/no, a list joined, text escaped and shortened."""
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return escape(_short(", ".join(str(item) for item in value), _DETAIL_SHOWN))
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{k} {v}" for k, v in value.items())
        return escape(_short(pairs, _DETAIL_SHOWN))
    return escape(_short(value, _DETAIL_SHOWN))


def _short(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quoted(value: Any) -> str:
    return f"“{_value(value)}”"


def _slack_date(value: Any) -> str:
    """An ISO time as Slack shows it in the reader's zone (UTC in the fallback)."""
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError:
        return _value(value)
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _due(value: Any, details: Mapping[str, Any]) -> str:
    return f"due {_slack_date(value)}" if value else "due now"


def _segment(name: Any) -> str:
    return f"“{escape(_short(str(name), _DETAIL_SHOWN))}”"


def _audience(value: Any, details: Mapping[str, Any]) -> str:
    """`audience “Active Users”, “Beta”`, or `audience 3 users by external id`."""
    segments = details.get("segments") or []
    if segments:
        return "audience " + listing(list(segments), _AUDIENCE_SHOWN, render=_segment)
    count = details.get("external_ids")
    if isinstance(count, int) and not isinstance(count, bool):
        return f"audience {plural(count, 'user')} by external id"
    return "audience none"


def _move(value: Any, details: Mapping[str, Any]) -> str:
    """`scheduled → sending` (a detail `from` or `to` alone says only its state)."""
    before, after = details.get("from"), details.get("to")
    return f"{_state(before)} → {_state(after)}" if before and after else _state(value)


def _state(value: Any) -> str:
    return escape(str(value).replace("_", " "))


def _flag(words: str) -> Words:
    """Words shown when the detail is true, nothing when false."""
    return lambda value, details: words if value is True else None


def _named(label: str, show: Callable[[Any], str] = _value) -> Words:
    """`label value`, nothing when the value is empty (None, "" or [])."""
    return lambda value, details: f"{label} {show(value)}" if value not in (None, "", []) else None


def _code(value: Any) -> str:
    return code(str(value), limit=40)


def _key_change(value: Any, details: Mapping[str, Any]) -> str:
    """`key `k1` → `k2`` (from `from_key_id` and `to_key_id`)."""
    before, after = details.get("from_key_id"), details.get("to_key_id")
    return f"key {_code(before)} → {_code(after)}"


def _log_channel(value: Any, details: Mapping[str, Any]) -> str:
    return f"log channel <#{escape(str(value))}>" if value else "log channel: none"


def _said_with(other: str, words: Words) -> Words:
    """`words`, unless the detail `other` says this one too."""
    return lambda value, details: None if other in details else words(value, details)


_WORDS: Final[Mapping[str, Words]] = {
    "app": _named("app", _code),
    "state": lambda value, details: _state(value),
    "from": _move,
    "to": _said_with("from", _move),
    "due_at": _due,
    "test": _flag("test send"),
    "segments": _audience,
    "external_ids": _said_with("segments", _audience),
    "attempt": _named("attempt"),
    "reason": _named("reason", _quoted),
    "error": _named("why", _quoted),
    "notification_id": _named("OneSignal", _code),
    "retry_at": _named("next try", _slack_date),
    "resent": _flag("sent again"),
    "cancelled_at_onesignal": _named("cancelled at OneSignal", _value),
    "answers": _named("OneSignal answered", _value),
    "answer": _named("OneSignal answered", _value),
    "onesignal_app_id": _named("OneSignal app id", _code),
    "default": _flag("the default app"),
    "key_id": _named("key", _code),
    "from_key_id": _key_change,
    "to_key_id": _said_with("from_key_id", _key_change),
    "role": _named("role"),
    "external_id": _named("external id", _code),
    "previous": _named("was", _code),
    "log_channel_id": _log_channel,
    "settings": _named("changed"),
}
"""Words for the details PushOps writes; others show as `name: value`."""

_ORDER: Final = {key: rank for rank, key in enumerate(("changed", *_WORDS))}
"""The order details show in: what changed, then as `_WORDS` lists them."""


def _rank(key: str) -> tuple[int, str]:
    return _ORDER.get(key, len(_ORDER)), key


_HIDDEN: Final = frozenset({"send_id"})
"""Details that repeat the target: the send's UUID beside `send 7K3M9Q`."""


def event_line(event: AuditEvent) -> str:
    """One event: number, time, who, what, on what, how it ended, details."""
    parts = [f"`#{event.seq}`", when(event), who(event.actor), f"*{escape(event.action)}*"]
    if event.target:
        target = event.target
        parts.append(
            who(target) if _SLACK_USER.match(target) else fit(escape(target), _TARGET_SHOWN)
        )
    if event.outcome != "ok":
        parts.append(f"outcome *{escape(event.outcome)}*")
    details = details_text(event.details or {})
    if details:
        parts.append(details)
    return " · ".join(parts)


def _sections(lines: Iterable[str]) -> list[Block]:
    """Lines packed into as few sections as Slack's text limit allows (events are short
    enough that MAX_COUNT of them fit in the sections a message has room for)."""
    return [section(text) for text in pack(lines)[:_SECTIONS]]


def audit_headline(count: int, asked: int) -> str:
    """What the reply shows, in words."""
    if count == 0:
        return "No audit events in this workspace yet."
    if count == 1:
        only = "The only" if count < asked else "The last"
        return f"{only} audit event of this workspace:"
    if count < asked:
        return f"All {count} audit events of this workspace, newest first:"
    return f"The last {count} audit events of this workspace, newest first:"


def audit_blocks(events: Sequence[AuditEvent], *, asked: int) -> list[Block]:
    """Headline, the events (newest first, as given), a hint, Dismiss."""
    blocks = [section(audit_headline(len(events), asked))]
    blocks += _sections(event_line(event) for event in events)
    blocks.append(
        context(
            "Times show in your time zone. `pushops audit export` keeps every detail exact; "
            "`pushops audit verify` checks the chain."
        )
    )
    blocks.append(dismiss_actions())
    return blocks


def checkpoint_text(checkpoint: Checkpoint) -> str:
    """A checkpoint posted to the log channel, in words (the notification's text)."""
    return f"Audit checkpoint: event #{checkpoint.seq} is the latest of this workspace's audit log."


def checkpoint_blocks(checkpoint: Checkpoint) -> list[Block]:
    """The checkpoint's line, to copy, and what it is for."""
    return [
        section(
            f"*Audit checkpoint:* event `#{checkpoint.seq}` is the latest of this workspace's "
            "audit log."
        ),
        section(f"```{escape(checkpoint.line())}```"),
        context(
            "Kept here, outside PushOps' database: `pushops audit verify --checkpoints FILE`, "
            "with this line in FILE, shows whether the log was later cut short, rolled back or "
            "rewritten."
        ),
    ]
