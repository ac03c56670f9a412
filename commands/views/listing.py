"""`/push list`: the workspace's scheduled sends (soonest first) and recent ones (latest first)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from bot import const
from bot.words import plural
from commands._format import Block, code, context, escape, section
from commands.views.sends import SendCard, button, ids_text, times_text

MAX_SHOWN: Final = 20
"""Sends per list; with headers this stays under Slack's 50 blocks per message. Give the
view one more of a kind to have it say that there are more than it shows."""

_FIND_ANY: Final = f"`{const.SLASH_COMMAND} status ID` shows any send."

_SNIPPET: Final = 60

_STATE_WORDS: Final = {
    "draft": "draft",
    "pending_approval": "waiting for approval",
    "scheduled": "scheduled",
    "sending": "sending",
    "sent": "sent",
    "failed": "failed",
    "cancelled": "cancelled",
    "rejected": "rejected",
    "expired": "expired",
    "missed": "missed",
}


def list_blocks(
    scheduled: Sequence[SendCard],
    recent: Sequence[SendCard],
    *,
    app: str | None = None,
    now: datetime | None = None,
) -> list[Block]:
    """Scheduled sends (each with Cancel), soonest first, then recent ones, latest first;
    each header says its order, and a kind with more than MAX_SHOWN says so under them.
    The caller gives them in that order."""
    where = f" of app {code(app)}" if app else ""
    blocks: list[Block] = [section(f"*Scheduled sends{where}*, soonest first")]
    if scheduled:
        blocks.extend(_scheduled(card, now) for card in scheduled[:MAX_SHOWN])
    else:
        blocks.append(context("Nothing is scheduled."))
    if len(scheduled) > MAX_SHOWN:
        blocks.append(
            context(f"These are the {MAX_SHOWN} soonest; more are due later. {_FIND_ANY}")
        )
    blocks.append({"type": "divider"})
    blocks.append(section(f"*Recent sends{where}*, latest first"))
    if recent:
        blocks.extend(section(_line(card, now)) for card in recent[:MAX_SHOWN])
    else:
        blocks.append(context("No sends yet."))
    if len(recent) > MAX_SHOWN:
        blocks.append(
            context(f"These are the {MAX_SHOWN} latest; older ones are not shown. {_FIND_ANY}")
        )
    return blocks


def list_text(scheduled: Sequence[SendCard], recent: Sequence[SendCard]) -> str:
    """The notification text of the list: `1 scheduled send, 2 recent sends.`"""
    return f"{_count(scheduled, 'scheduled send')}, {_count(recent, 'recent send')}."


def _count(cards: Sequence[SendCard], noun: str) -> str:
    if len(cards) > MAX_SHOWN:
        return f"more than {plural(MAX_SHOWN, noun)}"
    return plural(len(cards), noun)


def _scheduled(card: SendCard, now: datetime | None) -> Block:
    block = section(_line(card, now))
    block["accessory"] = button("Cancel", const.ACTION_LIST_CANCEL, card.send_id, style="danger")
    return block


def send_line(card: SendCard, now: datetime | None = None) -> str:
    """One send in two lines of mrkdwn: ids, state, audience, time, requester; its text."""
    return _line(card, now)


def _line(card: SendCard, now: datetime | None) -> str:
    words = _STATE_WORDS.get(card.state.value, card.state.value)
    test = " (test)" if card.is_test else ""
    return (
        f"{ids_text(card)} · {words}{test} · {card.audience} · "
        f"{times_text(card, now=now)} · <@{card.requester_id}>\n"
        f"{escape(_snippet(card))}"
    )


def _snippet(card: SendCard) -> str:
    text = " ".join(((card.title + ": ") if card.title else "").split() + card.message.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"
