"""Counts as people read them: `1 send`, `2 sends`, `1,000 users`."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` with `noun`, in the plural (`many`, else `noun` + "s") unless `count` is 1.

    Each caller names its irregular plural (`many`): a library of English plurals (inflect)
    would be one more dependency for the handful of nouns PushOps counts.
    """
    word = noun if count == 1 else (many or f"{noun}s")
    return f"{count:,} {word}"
