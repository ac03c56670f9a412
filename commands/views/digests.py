"""Digests: many sends that ended within a short time, told in one message instead of one each.

The log channel gets one ("12 sends went out at 09:00 UTC: `7K3M9Q` Release 2.0 to segment
Active Users, …") while each send's own log message catches up; a requester gets one direct
message listing their sends. Pure builders: the sends' facts in, text and blocks out, within
Block Kit's limits (a long list shows what fits and says how many more there are).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.delivery import SendState
from commands._format import Block, code, context, escape, section
from commands.views.limits import SECTION_TEXT, fit, more, pack, summarize

DIGEST_SECTIONS: Final = 3
"""Sections listing the sends of one digest (9,000 characters, well within the 12,000 Slack
takes in all blocks of a message); the rest are counted."""
TEXT_BUDGET: Final = 3000
"""Characters of the digest's `text` (the notification's line): the list is summarized."""
LABEL_SHOWN: Final = 60
"""Characters of a send's title (or message) shown in a digest line."""

_OUTCOMES: Final[dict[SendState, str]] = {
    SendState.SENT: "went out",
    SendState.FAILED: "failed",
    SendState.CANCELLED: "were cancelled",
    SendState.MISSED: "were missed",
    SendState.REJECTED: "were rejected",
    SendState.EXPIRED: "expired",
}
_ONE: Final[dict[SendState, str]] = {
    SendState.CANCELLED: "was cancelled",
    SendState.MISSED: "was missed",
    SendState.REJECTED: "was rejected",
}


@dataclass(frozen=True)
class DigestItem:
    """What a digest says of one send: its id, how it ended, what and to whom."""

    short_id: str
    state: SendState
    label: str
    """Its title, or the opening of its message (plain text: escaped here)."""
    audience: str
    """As the send's card describes it (mrkdwn): `segment Active Users`, `2 users: a, b`."""
    ended_at: datetime | None = None
    reason: str | None = None
    timezone: str | None = None
    """The requester's zone, as the send was made."""

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> DigestItem:
        """The item of a send described by its outbox facts (`commands.notify`); what is
        missing or unreadable is left out rather than refused."""
        try:
            state = SendState(str(facts.get("state")))
        except ValueError:
            state = SendState.SENT
        label = facts.get("label") or facts.get("title") or facts.get("message") or ""
        return cls(
            short_id=str(facts.get("short_id") or "?"),
            state=state,
            label=str(label),
            audience=str(facts.get("audience") or "its audience"),
            ended_at=_moment(facts.get("ended_at")),
            reason=str(facts["reason"]) if facts.get("reason") else None,
            timezone=str(facts["timezone"]) if facts.get("timezone") else None,
        )


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def digest_text(items: Sequence[DigestItem], *, timezone: str = "UTC", mine: bool = False) -> str:
    """`12 sends went out at 09:00 UTC: `7K3M9Q` Release 2.0 to …, … and 9 more` (one line).

    `mine`: written to the requester of every item ("3 of your sends …").
    """
    listed, _ = summarize([_summary(item) for item in items], TEXT_BUDGET, render=_same)
    return f"{digest_headline(items, timezone=timezone, mine=mine)}: {listed}"


def digest_blocks(
    items: Sequence[DigestItem], *, timezone: str = "UTC", mine: bool = False
) -> list[Block]:
    """The digest as a message: its headline, one line per send (what fits in
    DIGEST_SECTIONS sections), how many more, and where each send's own story is."""
    headline = digest_headline(items, timezone=timezone, mine=mine)
    lines = [_line(item, mixed=_mixed(items)) for item in items]
    texts = pack(lines)
    shown = texts[:DIGEST_SECTIONS]
    hidden = len(items) - sum(text.count("\n") + 1 for text in shown)
    blocks = [section(f"*{headline}*"), *(section(text) for text in shown)]
    where = "each send's own message in the log channel" if not mine else "`/push status ID`"
    note = f"Details: {where}."
    if hidden:
        note = f"{more(hidden).removeprefix(', ')} not listed. {note}"
    blocks.append(context(note))
    return blocks


def digest_headline(items: Sequence[DigestItem], *, timezone: str, mine: bool) -> str:
    """`12 sends went out at 09:00 UTC`; mixed: `12 sends ended at 09:00 UTC: 10 went out,
    2 failed`; over some minutes: `between 09:00 and 09:02 UTC`."""
    count = len(items)
    noun = "send" if count == 1 else "sends"
    whose = f"{count} of your {noun}" if mine else f"{count} {noun}"
    when = _when(items, timezone)
    states = Counter(item.state for item in items)
    if len(states) == 1:
        verb = _verb(next(iter(states)), count)
        return f"{whose} {verb}{when}"
    parts = [f"{n} {_verb(state, n)}" for state, n in states.most_common()]
    return f"{whose} ended{when}: {', '.join(parts)}"


def _verb(state: SendState, count: int) -> str:
    if count == 1 and state in _ONE:
        return _ONE[state]
    return _OUTCOMES.get(state, f"are {state.value.replace('_', ' ')}")


def _when(items: Sequence[DigestItem], timezone: str) -> str:
    """` at 09:00 CET`, ` between 09:00 and 09:02 CET`, or nothing when no time is known."""
    moments = sorted(item.ended_at for item in items if item.ended_at is not None)
    if not moments:
        return ""
    zone = _zone(timezone)
    first, last = (moment.astimezone(zone) for moment in (moments[0], moments[-1]))
    name = first.tzname() or "UTC"
    if first.strftime("%Y%m%d%H%M") == last.strftime("%Y%m%d%H%M"):
        return f" at {first:%H:%M} {name}"
    return f" between {first:%H:%M} and {last:%H:%M} {last.tzname() or name}"


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _mixed(items: Sequence[DigestItem]) -> bool:
    return len({item.state for item in items}) > 1


def _line(item: DigestItem, *, mixed: bool) -> str:
    """`• `7K3M9Q` Release 2.0 to segment Active Users` (and how it ended, in a mixed
    digest; why, when it failed)."""
    text = f"• {_summary(item)}"
    if mixed:
        text += f": {_verb(item.state, 1)}"
    if item.reason:
        text += f" ({fit(escape(item.reason), 200)})"
    return fit(text, SECTION_TEXT)


def _summary(item: DigestItem) -> str:
    label = fit(escape(" ".join(item.label.split())), LABEL_SHOWN)
    return f"{code(item.short_id)} {label} to {fit(item.audience, 120)}".replace("  ", " ")


def _same(text: str) -> str:
    return text
