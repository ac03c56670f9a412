"""What a send says and to whom: validated against OneSignal's limits before anything is stored.

Constructing `SendContent` or `Audience` with bad values raises `SendRejected`, whose text
names the problem and the fix, ready to show the person who typed it.

The limits, and where they come from:
- `contents.en` is required: OneSignal refuses a push without English text (openapi 5.12,
  `contents`: "English must be included in the hash"), unless a template gives the text.
- Other languages are keyed by the codes OneSignal accepts (`bot.onesignal.languages`).
- One kind of audience per notification: segments (optionally minus excluded segments) or
  external ids; OneSignal refuses `include_aliases` combined with anything else, and
  PushOps never sends to everyone by default.
- A segment name is at most 128 characters (5.12 `UpdateSegmentRequest.name`).
- One request targets at most 2,000 external ids (5.12, every `include_*` list); larger
  audiences go out in batches (`bot.onesignal.batching`). PushOps caps one send at
  `MAX_EXTERNAL_IDS` so a send's row stays small; more is a segment's job.
- An external id is at most 128 characters (the column that keeps linked ids,
  `storage.links.MAX_EXTERNAL_ID_LENGTH`).
- Apple and Google refuse a push payload over 4 KB, and OneSignal adds its own fields to it;
  the visible text and links (title, message, url, image) must fit in `MAX_TEXT_BYTES`.
- Links are http(s) URLs of at most `MAX_URL_LENGTH` characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, Self, TypeAlias
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bot.onesignal.languages import ENGLISH, LANGUAGES, accepted_codes, canonical
from storage.links import MAX_EXTERNAL_ID_LENGTH

RejectedField: TypeAlias = Literal[
    "message", "title", "url", "image", "audience", "app", "when", "language", "template", "options"
]

MAX_TEXT_BYTES: Final = 3500
MAX_URL_LENGTH: Final = 2048
MAX_SEGMENT_NAME: Final = 128
MAX_EXTERNAL_IDS: Final = 20_000
_SHOWN_IDS: Final = 3


class SendRejected(ValueError):
    """A send PushOps refuses; `field` says which input, `str(e)` the problem and the fix."""

    def __init__(self, field: RejectedField, message: str) -> None:
        super().__init__(message)
        self.field: RejectedField = field


def rejected(error: ValidationError, fields: Mapping[str, RejectedField]) -> Exception:
    """The first problem of a pydantic error as a `SendRejected` (a TypeError for misuse)."""
    first = error.errors(include_url=False, include_input=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "extra_forbidden" or (name and name not in fields):
        return TypeError(f"unexpected field {name!r}")
    field = fields.get(name, next(iter(fields.values())))
    if first["type"] == "value_error":
        return SendRejected(field, str(first["ctx"]["error"]))
    if first["type"] == "missing":
        return SendRejected(field, f"The {field} is missing.")
    return SendRejected(field, f"The {field} must be text.")


def link(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise ValueError(
            f"The {what} {text[:80]!r} is not a web address: use a full http:// or https:// "
            "link without spaces."
        )
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(
            f"The {what} is {len(text):,} characters long; the limit is {MAX_URL_LENGTH:,}. "
            "Use a shorter link."
        )
    return text


class Translation(BaseModel):
    """A send's text and title in one more language (either may be left out)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: str | None = None
    title: str | None = None

    @field_validator("message", "title", mode="after")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None


class TemplateRef(BaseModel):
    """The OneSignal template a send uses, and its English text when it was chosen (shown
    in the preview and the cards; OneSignal itself fills the notification from the template)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    message: str | None = None
    title: str | None = None


class SendContent(BaseModel):
    """The notification's text and links (frozen; validated when constructed).

    Attributes:
        message: the English text people read (`contents.en`); required unless a template
            gives it.
        title: the English heading (`headings.en`).
        url: opened when the notification is tapped; http(s) only.
        image: shown large (`big_picture`, `chrome_web_image`, `ios_attachments`); http(s).
        languages: more languages by OneSignal's code (`de`, `zh-Hans`): text and title.
        template: the OneSignal template it uses (`template_id`); the text and title given
            here replace the template's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: str | None = None
    title: str | None = None
    url: str | None = None
    image: str | None = None
    languages: dict[str, Translation] = {}
    template: TemplateRef | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise rejected(error, _CONTENT_FIELDS) from None

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Self:
        """The content of a stored send; OneSignal's own names (`contents`, `headings`) too."""
        if "message" not in data and isinstance(data.get("contents"), Mapping):
            headings = data.get("headings")
            data = {
                "message": data["contents"].get("en"),
                "title": headings.get("en") if isinstance(headings, Mapping) else None,
                "url": data.get("url"),
                "image": data.get("big_picture"),
            }
        return cls(**{key: data.get(key) for key in _CONTENT_FIELDS if key in data})

    @field_validator("message", mode="after")
    @classmethod
    def _message(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text:
            raise ValueError("The message is empty: write the text people will read.")
        return text

    @field_validator("title", mode="after")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("url", mode="after")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return link(value, "link")

    @field_validator("image", mode="after")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return link(value, "image link")

    @field_validator("languages", mode="after")
    @classmethod
    def _languages(cls, value: dict[str, Translation]) -> dict[str, Translation]:
        checked: dict[str, Translation] = {}
        for code, translation in value.items():
            known = canonical(code)
            if known is None:
                raise ValueError(
                    f"OneSignal does not accept the language code {code[:20]!r}. "
                    f"The codes it accepts: {accepted_codes()}."
                )
            if known == ENGLISH:
                raise ValueError(
                    "English is the message itself (and its title): give it without a "
                    "language code."
                )
            if translation.message is None and translation.title is None:
                raise ValueError(f"The {LANGUAGES[known]} text is empty.")
            checked[known] = translation
        return checked

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.message is None and self.template is None:
            raise ValueError("The message is empty: write the text people will read.")
        if self.other_messages() and self.english_message() is None:
            raise ValueError(
                "English is required beside other languages (OneSignal's fallback): give the "
                "English text too."
            )
        if self.other_titles() and self.english_title() is None:
            raise ValueError(
                "A title in another language needs the English title too (--title TEXT)."
            )
        size = sum(len(part.encode()) for part in self._parts())
        if size > MAX_TEXT_BYTES:
            raise ValueError(
                f"The notification is too long: its text and links take {size:,} bytes and a "
                f"push holds {MAX_TEXT_BYTES:,}. Shorten it by {size - MAX_TEXT_BYTES:,} bytes."
            )
        return self

    def _parts(self) -> Iterable[str]:
        # Every language is in the one payload OneSignal builds; each device shows one.
        parts = [self.message, self.title, self.url, self.image]
        for translation in self.languages.values():
            parts.extend((translation.message, translation.title))
        return (part for part in parts if part)

    def english_message(self) -> str | None:
        """The English text: given, or the template's."""
        return self.message or (self.template.message if self.template else None)

    def english_title(self) -> str | None:
        """The English title: given, or the template's."""
        return self.title or (self.template.title if self.template else None)

    def other_messages(self) -> dict[str, str]:
        """Code -> text of every language but English."""
        return {code: t.message for code, t in self.languages.items() if t.message}

    def other_titles(self) -> dict[str, str]:
        """Code -> title of every language but English."""
        return {code: t.title for code, t in self.languages.items() if t.title}

    def stored(self) -> dict[str, Any]:
        """The JSON kept with the send."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def notification_fields(self) -> dict[str, Any]:
        """The OneSignal `create_notification` fields this content sets.

        With a template, OneSignal fills the notification from it: `contents` and `headings`
        go along only when given here (they replace the template's), with its English text
        when other languages need the fallback.
        """
        fields: dict[str, Any] = {}
        if self.template is not None:
            fields["template_id"] = self.template.id
        contents, headings = self.other_messages(), self.other_titles()
        english = self.english_message() if contents else self.message
        if english:
            fields["contents"] = {ENGLISH: english, **contents}
        title = self.english_title() if headings else self.title
        if title:
            fields["headings"] = {ENGLISH: title, **headings}
        if self.url:
            fields["url"] = self.url
        if self.image:
            fields["big_picture"] = self.image
            fields["chrome_web_image"] = self.image
            fields["ios_attachments"] = {"image": self.image}
        return fields


_CONTENT_FIELDS: Final[dict[str, RejectedField]] = {
    "message": "message",
    "title": "title",
    "url": "url",
    "image": "image",
    "languages": "language",
    "template": "template",
}
_AUDIENCE_FIELDS: Final[dict[str, RejectedField]] = {
    "segments": "audience",
    "excluded_segments": "audience",
    "external_ids": "audience",
}


def _names(values: Iterable[str], what: str, limit: int) -> tuple[str, ...]:
    """`values` stripped, without repeats; refuses empty or too long ones."""
    cleaned: dict[str, None] = {}
    for value in values:
        text = value.strip()
        if not text:
            raise ValueError(f"A {what} is empty: give each {what} as text.")
        if len(text) > limit:
            raise ValueError(
                f"The {what} {text[:40]!r}… is {len(text)} characters long; the limit is {limit}."
            )
        cleaned[text] = None
    return tuple(cleaned)


class Audience(BaseModel):
    """Who gets the send: segments (minus excluded ones) or external ids, never both.

    Frozen and validated when constructed; an empty audience is refused (nothing is ever
    sent to everyone by default).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    segments: tuple[str, ...] = ()
    excluded_segments: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise rejected(error, _AUDIENCE_FIELDS) from None

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Self:
        """The audience of a stored send."""
        return cls(**{key: tuple(data.get(key) or ()) for key in _AUDIENCE_FIELDS})

    @field_validator("segments", "excluded_segments", mode="after")
    @classmethod
    def _segment_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _names(value, "segment name", MAX_SEGMENT_NAME)

    @field_validator("external_ids", mode="after")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        ids = _names(value, "user id", MAX_EXTERNAL_ID_LENGTH)
        if len(ids) > MAX_EXTERNAL_IDS:
            raise ValueError(
                f"That is {len(ids):,} users; one send reaches at most {MAX_EXTERNAL_IDS:,} by "
                "id. For more, send to a segment."
            )
        return ids

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if not self.segments and not self.external_ids:
            if self.excluded_segments:
                raise ValueError(
                    "Excluded segments need an included one: add --segment NAME "
                    '(for example --segment "Subscribed Users").'
                )
            raise ValueError(
                "No audience: add --segment NAME or --user ID. PushOps never sends to "
                "everyone by default."
            )
        if self.segments and self.external_ids:
            raise ValueError(
                "Choose segments or users, not both: OneSignal takes one kind of audience per "
                "notification. Send twice if both need it."
            )
        if self.excluded_segments and self.external_ids:
            raise ValueError("Excluded segments only work with --segment, not with --user.")
        both = set(self.segments) & set(self.excluded_segments)
        if both:
            raise ValueError(
                f"{', '.join(sorted(both))} is both included and excluded; keep it in one list."
            )
        return self

    @property
    def by_id(self) -> bool:
        """True for an audience of external ids (sent in batches of up to 2,000)."""
        return bool(self.external_ids)

    def describe(self) -> str:
        """`segment Active Users (excluding Churned)` or `3 users: a, b, c`."""
        if self.by_id:
            count = len(self.external_ids)
            shown = ", ".join(self.external_ids[:_SHOWN_IDS])
            more = f" and {count - _SHOWN_IDS:,} more" if count > _SHOWN_IDS else ""
            return f"{count:,} user{'s' if count != 1 else ''}: {shown}{more}"
        noun = "segment" if len(self.segments) == 1 else "segments"
        text = f"{noun} {', '.join(self.segments)}"
        if self.excluded_segments:
            text += f" (excluding {', '.join(self.excluded_segments)})"
        return text

    def segment_fields(self) -> dict[str, Any]:
        """The OneSignal targeting fields of a segment audience."""
        fields: dict[str, Any] = {"included_segments": list(self.segments)}
        if self.excluded_segments:
            fields["excluded_segments"] = list(self.excluded_segments)
        return fields
