"""Short send ids: 6 random Crockford base32 characters, and a normaliser for what users type."""

from __future__ import annotations

import secrets
from typing import Final

# Crockford base32: digits and capitals without I, L, O and U (https://www.crockford.com/base32.html).
ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SHORT_ID_LENGTH: Final = 6

# What Crockford decoding forgives: case, and the letters people mistake for digits.
_CONFUSABLE: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS: Final = str.maketrans("", "", "-` ")


def new_short_id() -> str:
    """A fresh random short id; uniqueness in the workspace is the database's job."""
    return "".join(secrets.choice(ALPHABET) for _ in range(SHORT_ID_LENGTH))


def normalize_short_id(text: str) -> str | None:
    """The canonical short id `text` stands for, or None when it cannot be one.

    Case does not matter, O reads as 0, I and L as 1, and hyphens, spaces and the
    backticks of Slack's code format are ignored. U is never valid.
    """
    candidate = text.strip().translate(_SEPARATORS).upper().translate(_CONFUSABLE)
    if len(candidate) != SHORT_ID_LENGTH or any(ch not in ALPHABET for ch in candidate):
        return None
    return candidate
