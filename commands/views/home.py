"""The Home tab: one person's view of PushOps.

Their own sends yet to go out (each with the buttons `send_buttons` gives it: Edit and Cancel), the
sends waiting for their approval (Approve / Reject), the workspace's recent sends with their
state and delivery counters, a Compose button, and for admins the setup shortcut and the
warnings `/push setup` shows. Whatever the numbers, the view keeps within Slack's 100 blocks:
each list shows its first few and says how many more there are ("and 37 more: /push list").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bot import const
from commands._format import Block, context, section
from commands.views.limits import VIEW_BLOCKS
from commands.views.listing import send_line
from commands.views.sends import (
    SendCard,
    actions,
    button,
    cancel_button,
    content_text,
    edit_button,
    editable,
    facts,
    ids_text,
    stoppable,
)

View = dict[str, Any]
Element = dict[str, Any]
SendButtons = Callable[[SendCard], Sequence[Element]]
"""The buttons a send of the person's own gets on their Home (none: no actions block)."""

COUNTERS_SHOWN: Final = ("recipients", "successful", "failed", "errored", "clicked", "converted")
"""Delivery counters of a recent send, in this order, when known."""


@dataclass(frozen=True, kw_only=True)
class RecentSend:
    """A finished send on the Home: its card and the delivery counters known of it."""

    card: SendCard
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HomeState:
    """What one person's Home shows.

    Attributes:
        mine / mine_total: their sends yet to go out (the first few), and how many in all.
        approvals / approvals_total: sends waiting for their decision (approvers only).
        recent / recent_total: the workspace's finished sends, the latest first.
        warnings: for admins, what `/push setup` warns of (mrkdwn).
        notice: what their last click on the Home did (mrkdwn), shown on top.
    """

    user_id: str
    mine: Sequence[SendCard] = ()
    mine_total: int = 0
    approvals: Sequence[SendCard] = ()
    approvals_total: int = 0
    recent: Sequence[RecentSend] = ()
    recent_total: int = 0
    is_admin: bool = False
    warnings: Sequence[str] = ()
    notice: str | None = None
    now: datetime | None = None


def send_buttons(card: SendCard) -> list[Element]:
    """Edit, while the send has not started going out; Cancel, while it can be stopped."""
    elements = [edit_button(card)] if editable(card) else []
    if stoppable(card):
        elements.append(cancel_button(card, const.ACTION_HOME_CANCEL))
    return elements


_FIXED_BLOCKS: Final = 16
"""Blocks of a Home besides the sends: title, notice, buttons, three warnings, three
headers and dividers, three "and N more", and the footer."""
MAX_MINE: Final = 12
MAX_APPROVALS: Final = 8
MAX_RECENT: Final = 15
"""Sends shown of each list: at most two blocks for each of one's own and each approval,
one for each recent send, so that with `_FIXED_BLOCKS` a Home never passes VIEW_BLOCKS."""
assert _FIXED_BLOCKS + 2 * MAX_MINE + 2 * MAX_APPROVALS + MAX_RECENT <= VIEW_BLOCKS


def home_view(state: HomeState, *, buttons: SendButtons = send_buttons) -> View:
    """The Home tab of `state.user_id` (`buttons`: what each of their own sends gets)."""
    blocks = _top(state)
    blocks += _mine(state, buttons)
    blocks += _approvals(state)
    blocks += _recent(state)
    blocks.append(context(f"`{const.SLASH_COMMAND} help` lists every command."))
    return {"type": "home", "blocks": blocks[:VIEW_BLOCKS]}


def _top(state: HomeState) -> list[Block]:
    blocks: list[Block] = [section("*PushOps*: your push notifications, from Slack.")]
    if state.notice:
        blocks.append(section(state.notice))
    elements = [button("Compose", const.ACTION_HOME_COMPOSE, "compose", style="primary")]
    if state.is_admin:
        elements.append(button("Set up PushOps", const.ACTION_HOME_SETUP, "setup"))
    blocks.append(actions(*elements))
    if state.is_admin:
        blocks += [section(f":warning: {w}") for w in state.warnings[:3]]
    return blocks


def _header(title: str) -> list[Block]:
    return [{"type": "divider"}, section(f"*{title}*")]


def _more(shown: int, total: int, command: str) -> list[Block]:
    """`and 37 more: /push list` under a list cut short."""
    if total <= shown:
        return []
    return [context(f"and {total - shown:,} more: `{const.SLASH_COMMAND} {command}`")]


def _mine(state: HomeState, buttons: SendButtons) -> list[Block]:
    blocks = _header("Your sends yet to go out")
    shown = list(state.mine[:MAX_MINE])
    if not shown:
        blocks.append(context("Nothing scheduled or waiting. Compose one, or `/push send`."))
    for card in shown:
        blocks.append(section(send_line(card, state.now)))
        elements = list(buttons(card))[:25]
        if elements:
            blocks.append(actions(*elements))
    return blocks + _more(len(shown), max(state.mine_total, len(state.mine)), "list")


def _approvals(state: HomeState) -> list[Block]:
    if not state.approvals and not state.approvals_total:
        return []
    blocks = _header("Waiting for your approval")
    shown = list(state.approvals[:MAX_APPROVALS])
    for card in shown:
        asks = f"*<@{card.requester_id}> asks to send {ids_text(card)}*"
        blocks.append(section(f"{asks} · {facts(card, now=state.now)}\n{content_text(card)}"))
        blocks.append(
            actions(
                button("Approve", const.ACTION_HOME_APPROVE, card.send_id, style="primary"),
                button("Reject", const.ACTION_HOME_REJECT, card.send_id, style="danger"),
            )
        )
    total = max(state.approvals_total, len(state.approvals))
    return blocks + _more(len(shown), total, "list")


def _recent(state: HomeState) -> list[Block]:
    blocks = _header("Recent sends in this workspace")
    shown = list(state.recent[:MAX_RECENT])
    if not shown:
        blocks.append(context("No sends yet."))
    for recent in shown:
        line = send_line(recent.card, state.now)
        counted = counters_text(recent.counters)
        blocks.append(section(f"{line}\n{counted}" if counted else line))
    return blocks + _more(len(shown), max(state.recent_total, len(state.recent)), "list")


def counters_text(counters: Mapping[str, int]) -> str:
    """`recipients 600 · successful 590 · failed 10` (the known ones, in order)."""
    return " · ".join(f"{name} {counters[name]:,}" for name in COUNTERS_SHOWN if name in counters)
