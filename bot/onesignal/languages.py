"""The language codes OneSignal accepts as keys of `contents` and `headings`.

Taken from OneSignal's OpenAPI description (`LanguageStringMap` in 5.12, `StringMap` in
1.2.2; both list the same codes): a code outside this list is refused before anything is
stored. English (`en`) is the fallback and must always be present (OneSignal: "English
must be included in the hash").
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final[dict[str, str]] = {
    "en": "English",
    "ar": "Arabic",
    "bs": "Bosnian",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "zh-Hans": "Chinese (Simplified)",
    "zh-Hant": "Chinese (Traditional)",
    "zh": "Chinese (Simplified), alias for zh-Hans",
    "hr": "Croatian",
    "cs": "Czech",
    "da": "Danish",
    "nl": "Dutch",
    "et": "Estonian",
    "fi": "Finnish",
    "fr": "French",
    "ka": "Georgian",
    "de": "German",
    "el": "Greek",
    "hi": "Hindi",
    "he": "Hebrew",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lv": "Latvian",
    "lt": "Lithuanian",
    "ms": "Malay",
    "nb": "Norwegian",
    "pl": "Polish",
    "fa": "Persian",
    "pt": "Portugese",
    "pa": "Punjabi",
    "ro": "Romanian",
    "ru": "Russian",
    "sr": "Serbian",
    "sk": "Slovak",
    "es": "Spanish",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
}
"""Code -> language name, in OneSignal's order."""

ENGLISH: Final = "en"


def canonical(code: str) -> str | None:
    """The accepted spelling of `code` (`DE` -> `de`, `zh-hans` -> `zh-Hans`), or None."""
    wanted = code.strip().lower()
    return next((known for known in LANGUAGES if known.lower() == wanted), None)


def accepted_codes() -> str:
    """`ar, bs, bg, …`: every accepted code but English, for a refusal to name."""
    return ", ".join(code for code in LANGUAGES if code != ENGLISH)
