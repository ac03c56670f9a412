"""Messages about series (recurring sends): the confirmation, `/push series`, the approval
request, and the note `/push cancel` adds for an occurrence. Pure: data in, blocks out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from bot import const
from bot.words import plural
from commands._format import Block, code, context, escape, section
from commands.views.sends import actions, button, describe_time

MAX_SHOWN: Final = 15
"""Series in one `/push series` reply: two blocks each keeps it under Slack's 50 blocks."""
NEXT_SHOWN: Final = 3
"""Upcoming occurrences a confirmation names."""
_SNIPPET: Final = 80

_STATE_WORDS: Final = {
    "active": "active",
    "paused": "paused",
    "stopped": "stopped",
    "finished": "finished",
}
_APPROVAL_WORDS: Final = {"pending": "waiting for approval", "rejected": "rejected"}


@dataclass(frozen=True, kw_only=True)
class SeriesCard:
    """What a message about a series shows.

    Attributes:
        series_id: the series' UUID as text: the value of its buttons.
        rule: the rule and its end in words (`every Monday at 09:00 (Europe/Berlin)`).
        audience: already described, in mrkdwn.
        upcoming: its next occurrences not made yet (none when paused, stopped, finished).
    """

    series_id: str
    short_id: str
    state: str
    approval: str
    rule: str
    app_name: str
    requester_id: str
    message: str
    audience: str
    timezone: str
    title: str | None = None
    upcoming: tuple[datetime, ...] = ()
    occurrences: int = 0
    approvals_required: int = 0
    approvals_received: int = 0


def _status(card: SeriesCard) -> str:
    return _APPROVAL_WORDS.get(card.approval) or _STATE_WORDS.get(card.state, card.state)


def _next(card: SeriesCard) -> str:
    if not card.upcoming:
        return "no next occurrence"
    return f"next {describe_time(card.upcoming[0], card.timezone)}"


def _snippet(card: SeriesCard) -> str:
    text = " ".join(((card.title + ": ") if card.title else "").split() + card.message.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def line(card: SeriesCard) -> str:
    """One series in mrkdwn: id, state, rule, next occurrence, audience, creator, text."""
    return (
        f"{code(card.short_id)} · {_status(card)} · {escape(card.rule)} · {_next(card)} · "
        f"{card.audience} · <@{card.requester_id}>\n{escape(_snippet(card))}"
    )


def created_text(card: SeriesCard) -> str:
    """The notification text confirming a new series."""
    return f"Series {code(card.short_id)} stored: {card.rule}."


def created_blocks(card: SeriesCard, *, notes: Sequence[str] = ()) -> list[Block]:
    """The confirmation of a new series: what, when next, and how to stop it."""
    upcoming = ", ".join(describe_time(moment, card.timezone) for moment in card.upcoming)
    blocks = [
        section(
            f"*Series {code(card.short_id)}* · {escape(card.rule)}\n"
            f"{card.audience} · app {code(card.app_name)}\n{escape(_snippet(card))}"
        ),
        context(f"Next: {upcoming}." if upcoming else "It has no occurrence left."),
    ]
    blocks.extend(context(note) for note in notes)
    blocks.append(
        context(
            "Each occurrence goes out as a send of its own (its own id; `/push cancel ID` "
            f"skips just that one). `{const.SLASH_COMMAND} series` pauses, resumes or stops "
            "the series."
        )
    )
    return blocks


def list_text(cards: Sequence[SeriesCard]) -> str:
    """`2 series.`, the notification text of `/push series`."""
    count = "more than " + str(MAX_SHOWN) if len(cards) > MAX_SHOWN else str(len(cards))
    return f"{count} series."


def list_blocks(cards: Sequence[SeriesCard]) -> list[Block]:
    """The workspace's series, next due first, each with Pause or Resume, and Stop."""
    blocks: list[Block] = [section("*Recurring sends*, the next due first")]
    if not cards:
        blocks.append(
            context(
                "No series yet. `/push send --every monday --at 09:00 --segment NAME "
                '"TEXT"` makes one.'
            )
        )
    for card in cards[:MAX_SHOWN]:
        blocks.append(section(line(card)))
        blocks.append(actions(*_buttons(card), block_id=f"series_{card.series_id}"))
    if len(cards) > MAX_SHOWN:
        blocks.append(context(f"These are the {MAX_SHOWN} next due; more are not shown."))
    return blocks


def _buttons(card: SeriesCard) -> list[dict[str, object]]:
    if card.state == "paused":
        toggle = button("Resume", const.ACTION_SERIES_RESUME, card.series_id, style="primary")
    else:
        toggle = button("Pause", const.ACTION_SERIES_PAUSE, card.series_id)
    return [toggle, button("Stop", const.ACTION_SERIES_STOP, card.series_id, style="danger")]


def changed_text(card: SeriesCard, what: str, cancelled: Sequence[str]) -> str:
    """`Series `ABC123` paused; occurrence `7K3M9Q` (made already) was cancelled.`"""
    text = f"Series {code(card.short_id)} {what}"
    if cancelled:
        ids = ", ".join(code(short_id) for short_id in cancelled)
        text += f"; {plural(len(cancelled), 'occurrence')} made already cancelled: {ids}"
    return text + "."


def occurrence_note(series_short_id: str) -> str:
    """What `/push cancel` adds when it cancelled one occurrence of a series."""
    return (
        f"Only this occurrence was cancelled: series {code(series_short_id)} goes on. "
        f"`{const.SLASH_COMMAND} series` pauses or stops the series."
    )


def approval_request_blocks(card: SeriesCard) -> list[Block]:
    """The approval request for a series: its rule, content and audience, Approve / Reject."""
    need = plural(card.approvals_required, "approval")
    return [
        section(
            f"*<@{card.requester_id}> asks to approve series {code(card.short_id)}* "
            f"({need}; approved once, every occurrence then goes out without asking)\n"
            f"{escape(card.rule)} · {_next(card)}\n{card.audience} · app {code(card.app_name)}"
            f"\n{escape(_snippet(card))}"
        ),
        actions(
            button("Approve", const.ACTION_SERIES_APPROVE, card.series_id, style="primary"),
            button("Reject", const.ACTION_SERIES_REJECT, card.series_id, style="danger"),
        ),
    ]


def approval_closed_blocks(card: SeriesCard, outcome: str) -> list[Block]:
    """The approval request once decided: no buttons, the outcome under it."""
    return [
        section(
            f"*Series {code(card.short_id)}* by <@{card.requester_id}> · {escape(card.rule)}\n"
            f"{card.audience}\n{escape(_snippet(card))}"
        ),
        context(escape(outcome)),
    ]
