"""A Slack message's mrkdwn as the plain text a phone shows: what "Send as push" starts from.

Slack writes a message's `text` with angle-bracket tokens (`<@U123>`, `<#C123|general>`,
`<https://x.io|the docs>`, `<!here>`, `<!date^…|fallback>`), escapes `&`, `<` and `>`, and
marks formatting with `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ``` ```blocks``` ``` and
`>` quotes. A push notification shows none of that literally, so each token becomes the words
a reader saw in Slack (a person's name, `#channel`, the link's text) and the marks go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

_TOKEN: Final = re.compile(r"<([^<>\n]*)>")
_USER: Final = re.compile(r"^@([UW][A-Z0-9]+)(?:\|(.*))?$")
# Marks count only at word edges (`snake_case_name` and `2*3*4` stay as they are), as Slack
# reads them; `(?!\s)`/`(?<!\s)` keep `a * b * c` literal too.
_MARKS: Final = tuple(
    re.compile(rf"(?<![\w{m}]){m}(?![\s{m}])(.+?)(?<![\s{m}]){m}(?![\w{m}])", re.DOTALL)
    for m in (r"\*", "_", "~")
)
_FENCE: Final = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_CODE: Final = re.compile(r"`([^`\n]+)`")
_QUOTE: Final = re.compile(r"^(?:&gt;|>)[ \t]?", re.MULTILINE)
_SPECIAL: Final = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}

Names = Mapping[str, str]
"""Slack user id -> the name to show (their display name, else their real name)."""


def mentioned_users(text: str) -> tuple[str, ...]:
    """The user ids `text` mentions without a name beside them, in order, each once."""
    found: dict[str, None] = {}
    for token in _TOKEN.finditer(text):
        user = _USER.match(token.group(1))
        if user is not None and not user.group(2):
            found.setdefault(user.group(1), None)
    return tuple(found)


def plain_text(text: str, *, names: Names, channels: Names | None = None) -> str:
    """`text` (a message's mrkdwn) as plain text: mentions as `@name` and `#channel`, links
    as their text, special mentions as `@here`, formatting marks removed, escapes undone.

    `names`: user id -> name, for mentions without one (an unknown id shows as `@U123`);
    `channels`: channel id -> name, for channel mentions Slack wrote without one.
    """
    tokens: list[str] = []

    def hold(match: re.Match[str]) -> str:
        # Tokens are set aside while the marks go, so a link's `_` or `*` stays as written.
        tokens.append(_token_text(match.group(1), names, channels or {}))
        return f"\x00{len(tokens) - 1}\x00"

    held = _TOKEN.sub(hold, text)
    held = _FENCE.sub(lambda m: m.group(1), held)
    held = _CODE.sub(lambda m: m.group(1), held)
    held = _QUOTE.sub("", held)
    for mark in _MARKS:
        held = _repeat(mark.sub, r"\1", held)
    held = _unescape(held)
    return re.sub("\x00(\\d+)\x00", lambda m: tokens[int(m.group(1))], held).strip()


def _repeat(sub: Callable[[str, str], str], replacement: str, text: str) -> str:
    """Apply `sub` until nothing changes (`*_both_*` has two marks around one word)."""
    while True:
        changed = sub(replacement, text)
        if changed == text:
            return text
        text = changed


def _token_text(inner: str, names: Names, channels: Names) -> str:
    """The words shown for one `<…>` token."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return f"@{label or names.get(user) or user}"
    if target.startswith("#"):
        channel = target[1:]
        return f"#{label or channels.get(channel) or channel}"
    if target.startswith("!subteam^"):
        return label or "@group"
    if target.startswith("!date^"):
        return _unescape(label)
    if target.startswith("!"):
        return _SPECIAL.get(target[1:], _unescape(label))
    return _unescape(label or target.removeprefix("mailto:"))


def _unescape(text: str) -> str:
    # `&amp;` last, so that an escaped `&lt;` (`&amp;lt;`) reads `&lt;` as written.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
