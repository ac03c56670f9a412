"""The reply to `/push audit [N]`: the latest audit events, newest first, a line each."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from typing import Any, Final

from commands._format import Block, code, context, dismiss_actions, escape, section
from storage.models import AuditEvent

_SECTION_LIMIT: Final = 3000  # Slack's limit on a section's text
_DETAIL_SHOWN: Final = 60  # characters of one detail value
_DETAILS_SHOWN: Final = 240  # characters of all details of one event
_SLACK_USER: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")


def who(actor: str) -> str:
    """A Slack user as a mention; anything else (the scheduler, the settings) as code."""
    return f"<@{actor}>" if _SLACK_USER.match(actor) else code(actor or "?", limit=40)


def when(event: AuditEvent) -> str:
    """The event's time in the reader's zone (Slack formats it), UTC in the fallback."""
    moment = event.created_at.astimezone(UTC)
    fallback = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def details_text(details: Mapping[str, Any]) -> str:
    """`key=value` pairs, each value and the whole shortened (details are already redacted)."""
    parts = [f"{key}={_short(value, _DETAIL_SHOWN)}" for key, value in details.items()]
    return escape(_short(", ".join(parts), _DETAILS_SHOWN)) if parts else ""


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_line(event: AuditEvent) -> str:
    """One event: number, time, who, what, on what, how it ended, details."""
    parts = [f"`#{event.seq}`", when(event), who(event.actor), f"*{escape(event.action)}*"]
    if event.target:
        target = event.target
        parts.append(who(target) if _SLACK_USER.match(target) else escape(_short(target, 80)))
    if event.outcome != "ok":
        parts.append(f"outcome *{escape(event.outcome)}*")
    details = details_text(event.details or {})
    if details:
        parts.append(details)
    return " · ".join(parts)


def _sections(lines: Iterable[str]) -> list[Block]:
    """Lines packed into as few sections as Slack's text limit allows."""
    blocks: list[Block] = []
    current = ""
    for line in lines:
        if current and len(current) + len(line) + 1 > _SECTION_LIMIT:
            blocks.append(section(current))
            current = ""
        current = f"{current}\n{line}" if current else line[:_SECTION_LIMIT]
    if current:
        blocks.append(section(current))
    return blocks


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
    blocks.append(context("Times show in your time zone. `pushops audit verify` checks the chain."))
    blocks.append(dismiss_actions())
    return blocks
