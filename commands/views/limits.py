"""Slack's Block Kit limits in one place, and the helpers every view builder keeps within them.

Slack refuses a whole message or view when one piece breaks a limit, so long input is
summarized or shortened here instead. Lengths count characters as Slack receives them: user
text is escaped first (an `&` becomes `&amp;`, 5 characters) and measured after. Text is
shortened with "…" and never cut inside an escape, a mention or a link; a list shows what
fits and says how many more there are ("Active Users, Beta, … and 27 more").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final

SECTION_TEXT: Final = 3000
"""Characters of a section block's text."""
CONTEXT_TEXT: Final = 3000
"""Characters of one text element of a context block."""
BUTTON_TEXT: Final = 75
BUTTON_VALUE: Final = 2000
OPTION_TEXT: Final = 75
OPTION_VALUE: Final = 150
SELECT_OPTIONS: Final = 100
"""Options of one select menu."""
HINT_TEXT: Final = 2000
"""Characters of an input block's label or hint."""
INITIAL_VALUE: Final = 3000
"""Characters a text field of a form may start with (`initial_value`)."""
MESSAGE_TEXT: Final = 40_000
"""Characters of a message's `text`; Slack truncates (or refuses) longer ones."""
MESSAGE_BLOCKS: Final = 50
VIEW_BLOCKS: Final = 100
"""Blocks of a modal or a Home tab."""
MESSAGE_BLOCK_TEXT: Final = 12_000
"""Characters of text in all blocks of one message posted through the Web API together: not
documented, but past about this much Slack answers `msg_blocks_too_long`."""

ELLIPSIS: Final = "…"

_UNBREAKABLE: Final = re.compile(r"&(?:amp|lt|gt);|<[^<>\n]*>")
"""An escape, or a mention, channel, date or link: never cut inside one."""


def fit(mrkdwn: str, limit: int) -> str:
    """`mrkdwn` (already escaped) in at most `limit` characters, cut with "…" when longer.

    The cut never falls inside an escape (`&amp;`), a mention or a link (`<…>`): one of
    those that would be cut is left out whole.
    """
    if len(mrkdwn) <= limit:
        return mrkdwn
    cut = max(limit - len(ELLIPSIS), 0)
    for token in _UNBREAKABLE.finditer(mrkdwn):
        if token.start() >= cut:
            break
        if token.end() > cut:
            cut = token.start()
            break
    return mrkdwn[:cut] + ELLIPSIS


def shorten(text: str, limit: int) -> str:
    """Plain `text` (no mrkdwn: a button's, an option's, a hint's) in at most `limit`
    characters, cut with "…" when longer."""
    return text if len(text) <= limit else text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def more(hidden: int) -> str:
    """`, … and 27 more`: the end of a list that does not show `hidden` of its items."""
    return f", {ELLIPSIS} and {hidden:,} more"


def listing(
    items: Sequence[str], budget: int, *, render: Callable[[str], str], most: int | None = None
) -> str:
    """`items` drawn by `render` (escaped, or as mentions), joined with commas, in at most
    `budget` characters: as many as fit (at most `most`), then how many more there are.

    The first item always shows, shortened when it alone is too long.
    """
    return summarize(items, budget, render=render, most=most)[0]


def summarize(
    items: Sequence[str], budget: int, *, render: Callable[[str], str], most: int | None = None
) -> tuple[str, int]:
    """`listing`, and how many of `items` it leaves out."""
    shown: list[str] = []
    used = 0
    for index, item in enumerate(items[:most]):
        piece = render(item)
        left = len(items) - index - 1
        tail = len(more(left)) if left else 0
        if used + (2 if shown else 0) + len(piece) + tail > budget:
            break
        used += (2 if shown else 0) + len(piece)
        shown.append(piece)
    hidden = len(items) - len(shown)
    if not shown and items:
        hidden -= 1
        tail = len(more(hidden)) if hidden else 0
        shown = [fit(render(items[0]), max(budget - tail, 1))]
    return ", ".join(shown) + (more(hidden) if hidden else ""), hidden


def pack(lines: Iterable[str], *, limit: int = SECTION_TEXT, joiner: str = "\n") -> list[str]:
    """`lines` (mrkdwn) packed into as few texts of at most `limit` characters as will hold
    them, in order, joined by `joiner`; a line longer than `limit` alone is cut to fit."""
    texts: list[str] = []
    current = ""
    for line in lines:
        line = fit(line, limit)
        if current and len(current) + len(joiner) + len(line) > limit:
            texts.append(current)
            current = ""
        current = f"{current}{joiner}{line}" if current else line
    if current:
        texts.append(current)
    return texts
