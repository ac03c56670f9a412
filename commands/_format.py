"""Small helpers for Slack text: escaping user input, code spans, Block Kit pieces.

The pieces keep within Slack's limits (`commands.views.limits`) whatever they are given: a
section's or a context's text too long is cut there rather than refused by Slack. Builders
summarize long content before it gets here; the cut is the last guard, not the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from bot.const import ACTION_DISMISS, SLASH_COMMAND
from commands.views.limits import CONTEXT_TEXT, SECTION_TEXT, fit

Block = dict[str, Any]

MAX_APPS_NAMED: Final = 20
"""Configured apps named in one answer; the rest are counted."""


def escape(text: str) -> str:
    """`text` safe inside mrkdwn: no accidental <!channel>, links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str, *, limit: int = 60) -> str:
    """`text` as an inline code span, shortened to `limit` characters, backticks removed."""
    cleaned = escape(text.replace("`", "'").replace("\n", " "))
    return f"`{fit(cleaned, limit)}`"


def section(mrkdwn: str) -> Block:
    """A section block of mrkdwn text (cut to Slack's limit)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(mrkdwn, SECTION_TEXT)}}


def context(mrkdwn: str) -> Block:
    """A context block: small grey text under a message (cut to Slack's limit)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(mrkdwn, CONTEXT_TEXT)}]}


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


PICK_APP: Final = "Pick one with `--app NAME`"
"""How a command picks another app (the compose form says it in its own words)."""


def unknown_app_text(name: str | None, configured: Sequence[str], *, pick: str = PICK_APP) -> str:
    """The one answer when the app asked for (`name`; None: the default) is not there.

    Names the configured apps and how to pick one (`pick`), or how to add the first.
    Plain text, not yet escaped: it becomes a CommandError, which the reply escapes once
    (or a form field's error, which Slack shows as plain text).
    """
    missing = f"There is no OneSignal app named {span(name)} here" if name is not None else ""
    if not configured:
        setup = f"an admin adds one with `{SLASH_COMMAND} setup`."
        if not missing:
            return f"No OneSignal app is set up in this workspace yet: {setup}"
        return f"{missing}, and none is set up yet: {setup}"
    problem = f"{missing}." if missing else "This workspace has no default OneSignal app."
    return f"{problem} {pick}: {_app_names(configured)}."


def span(text: str, *, limit: int = 60) -> str:
    """`text` in backticks, like `code` but not escaped: for the text of a CommandError,
    which the reply escapes once (see `unknown_app_text`)."""
    cleaned = text.replace("`", "'").replace("\n", " ")
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return f"`{cleaned}`"


def _app_names(names: Sequence[str]) -> str:
    shown = ", ".join(span(n) for n in names[:MAX_APPS_NAMED])
    hidden = len(names) - MAX_APPS_NAMED
    return f"{shown} and {hidden} more" if hidden > 0 else shown
