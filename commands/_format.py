"""Small helpers for Slack text: escaping user input, code spans, Block Kit pieces."""

from __future__ import annotations

from typing import Any

from bot.const import ACTION_DISMISS

Block = dict[str, Any]


def escape(text: str) -> str:
    """`text` safe inside mrkdwn: no accidental <!channel>, links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str, *, limit: int = 60) -> str:
    """`text` as an inline code span, shortened to `limit` characters, backticks removed."""
    cleaned = escape(text.replace("`", "'").replace("\n", " "))
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return f"`{cleaned}`"


def section(mrkdwn: str) -> Block:
    """A section block of mrkdwn text."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def context(mrkdwn: str) -> Block:
    """A context block: small grey text under a message."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


def dismiss_actions() -> Block:
    """An actions block with one "Dismiss" button that deletes the ephemeral reply."""
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": ACTION_DISMISS,
                "text": {"type": "plain_text", "text": "Dismiss"},
                "value": "dismiss",
            }
        ],
    }
