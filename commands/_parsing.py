"""Shared parsing of `/push` text: shell-like words, then `--option value` pairs."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from commands.context import CommandError
from commands.help import USAGE

# Slack escapes exactly these three in command text.
_SLACK_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))

# Phones and some desktops turn straight quotes into typographic ones as people type.
_TYPOGRAPHIC_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})

MAX_TEXT_LENGTH = 4000
"""Longer command text is refused; Slack itself sends at most a few thousand characters."""


def unescape_slack(text: str) -> str:
    """Undo Slack's escaping of `&`, `<` and `>` in command text."""
    for entity, char in _SLACK_ENTITIES:
        text = text.replace(entity, char)
    return text


def split_words(text: str) -> list[str]:
    """Split `text` like a shell: quotes group words, a backslash escapes.

    Raises CommandError naming the problem when a quote is left open.
    """
    normalized = text.translate(_TYPOGRAPHIC_QUOTES)
    try:
        return shlex.split(normalized, comments=False, posix=True)
    except ValueError as e:
        if "escaped" in str(e):  # shlex: "No escaped character"
            raise CommandError(
                "Your command ends with a backslash. Remove it, or write \\\\ for a backslash."
            ) from e
        raise CommandError(_open_quote_message(_open_quote(normalized))) from e


def _open_quote(text: str) -> str:
    """Which quote character is left open in `text`, following POSIX shell rules."""
    quote = ""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote and char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
    return quote or '"'


def _open_quote_message(quote: str) -> str:
    if quote == "'":
        return (
            "Your command has a ' that is never closed. An apostrophe inside a message "
            'needs the whole message in double quotes: /push send --segment Beta "Don\'t miss it"'
        )
    return 'Your command has a " that is never closed. Close the quote or remove it.'


def split_command(text: str) -> tuple[str, tuple[str, ...]]:
    """The subcommand (lower-cased, "" when none) and the words after it."""
    if len(text) > MAX_TEXT_LENGTH:
        raise CommandError(
            f"That command is {len(text)} characters long; the limit is {MAX_TEXT_LENGTH}."
        )
    words = split_words(text)
    if not words:
        return "", ()
    return words[0].lower(), tuple(words[1:])


@dataclass(frozen=True)
class Options:
    """Parsed `--option` values and the remaining positional words."""

    positional: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    def one(self, name: str) -> str | None:
        """The value of a single-valued option, or None when absent."""
        found = self.values.get(name, ())
        return found[0] if found else None

    def many(self, name: str) -> tuple[str, ...]:
        """Every value of a repeatable option, in the order given."""
        return self.values.get(name, ())

    def has(self, flag: str) -> bool:
        """Whether a flag (an option without value) was given."""
        return flag in self.flags


def parse_options(
    words: Sequence[str],
    *,
    flags: Iterable[str] = (),
    single: Iterable[str] = (),
    repeatable: Iterable[str] = (),
    usage: str = "",
) -> Options:
    """Split `words` into options and positional words.

    Option names are given with their dashes (`"--title"`). Values follow as the next word or
    after `=` (`--title=Hi`). A lone `--` ends the options: what follows is positional even
    if it starts with `--`. Unknown options, missing or empty values (`--app ""`, `--title=`)
    and a single-valued option given twice raise CommandError; `usage` is appended to those
    messages.
    """
    flag_set, single_set, multi_set = set(flags), set(single), set(repeatable)
    positional: list[str] = []
    values: dict[str, list[str]] = {}
    seen_flags: set[str] = set()
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            positional.extend(words[index:])
            break
        if not word.startswith("--") or word == "--":
            positional.append(word)
            continue
        name, has_value, inline = word.partition("=")
        if name in flag_set and not has_value:
            seen_flags.add(name)
            continue
        if name not in single_set and name not in multi_set:
            raise CommandError(_with_usage(_unknown_option(name, flag_set), usage))
        if has_value:
            value = inline
        elif index < len(words):
            value = words[index]
            index += 1
        else:
            raise CommandError(_with_usage(f"{name} needs a value after it.", usage))
        if not value.strip():
            raise CommandError(_with_usage(_empty_value(name, usage), usage))
        if name in single_set and name in values:
            raise CommandError(_with_usage(f"{name} is given twice; give it once.", usage))
        values.setdefault(name, []).append(value)
    return Options(
        positional=tuple(positional),
        values={k: tuple(v) for k, v in values.items()},
        flags=frozenset(seen_flags),
    )


def _unknown_option(name: str, flags: set[str]) -> str:
    if name in flags:
        return f"{name} takes no value."
    shown = name if len(name) <= 40 else name[:40] + "…"
    return f"Unknown option {shown}. (To use -- in a message, put -- alone before the message.)"


def _empty_value(name: str, usage: str) -> str:
    # The grammar already names what the option takes (`--app NAME`, `--title TEXT`): the
    # usage given first, then every subcommand's (a short usage may leave the option out).
    grammar = "\n".join((usage, *USAGE.values()))
    found = re.search(rf"(?<![\w-]){re.escape(name)}[ =]([A-Z][A-Z_]*)", grammar)
    what = found.group(1) if found else "VALUE"
    return (
        f"{name} is empty. Give it a value ({name} {what}, in quotes if it has spaces), "
        f"or leave {name} out."
    )


def _with_usage(message: str, usage: str) -> str:
    return f"{message}\nUsage: {usage}" if usage else message
