"""The compose form's preview step: the notification as a phone shows it, and what comes of
it (audience, reach, time in the sender's zone, approval), with Send and Back.

It is pushed on top of the compose form (`response_action: push`), so Slack's own close
button ("Back") returns to the form exactly as the person left it. The view is drawn from
the stored draft's card (`commands.cards.card_of`), so whatever a send carries shows here
the way every other message about it shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bot import const
from commands._format import Block, code, context, escape, section
from commands.views.limits import fit
from commands.views.sends import SendCard, content_text, extras_blocks, when_text

ESTIMATING: Final = "Counting the subscriptions it reaches…"
NO_APPROVAL: Final = "Not needed: it goes out as soon as you press Send."
_FIELD: Final = 2000  # characters of a section field


@dataclass(frozen=True, kw_only=True)
class PreviewFacts:
    """What the preview says besides the notification.

    Attributes:
        estimate: how many subscriptions the audience reaches (plain text), or that it is
            being counted.
        approval: mrkdwn saying which approvals it needs (`approvals_note`), None if none.
        metadata: the view's `private_metadata` (which draft, where to answer).
        external_id: names this view, so the estimate can be filled in after the ack.
    """

    estimate: str = ESTIMATING
    approval: str | None = None
    metadata: str = ""
    external_id: str = ""


def preview_view(card: SendCard, facts: PreviewFacts) -> dict[str, Any]:
    """The preview modal of a draft (pushed over the compose form)."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": const.CALLBACK_COMPOSE_PREVIEW,
        "title": _plain("Preview"),
        "submit": _plain("Send"),
        "close": _plain("Back"),
        "private_metadata": facts.metadata,
        "blocks": preview_blocks(card, facts),
    }
    if facts.external_id:
        view["external_id"] = facts.external_id
    return view


def preview_blocks(card: SendCard, facts: PreviewFacts) -> list[Block]:
    """The phone's notification, then its audience, reach, time and approval."""
    test = " · test send: only to you" if card.is_test else ""
    return [
        section("*On a phone it shows as:*"),
        context(f"App {code(card.app_name)}{test}"),
        section(content_text(card)),
        *extras_blocks(card),  # its other languages, template and delivery options
        {"type": "divider"},
        {
            "type": "section",
            "block_id": const.BLOCK_PREVIEW_FACTS,
            "fields": [
                _field("Audience", card.audience),
                _field("Reach", escape(facts.estimate)),
                _field("When (your time zone)", when_text(card)),
                _field("Approval", facts.approval or NO_APPROVAL),
            ],
        },
        context("*Send* sends it as shown. *Back* returns to the form with everything you typed."),
    ]


def _field(label: str, mrkdwn: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": fit(f"*{label}*\n{mrkdwn}", _FIELD)}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}
