"""How OneSignal delivers a send: in each user's time zone, when each is usually active,
throttled, with a time to live and a priority, action buttons and additional data.

`DeliveryOptions` reads what a person typed (`"09:00"`, `"1h"`, `"Open|https://…"`,
`"plan=pro"`) or what was stored, refuses what OneSignal would refuse with `SendRejected`
naming the fix, and builds the `create_notification` fields as OneSignal documents them
(README, "Using it in Slack"):
- `delayed_option: "timezone"` with `delivery_time_of_day` ("21:45"), or
  `delayed_option: "last-active"` (intelligent delivery); never both: OneSignal takes one.
- `throttle_rate_per_minute`: a string of digits (the API describes the field as a string).
- `ttl`: seconds, at most 2,419,200 (28 days).
- `priority`: 10 for high, 5 for normal (OneSignal: "Pass 10 for high priority or any other
  integer for normal priority").
- Buttons: `web_buttons` carry `{id, text, url}`; `buttons` (iOS, Android) have no URL
  field, so each button's URL travels in `data.button_urls` under the button's id, where
  the app's click handler finds it by the clicked action's id.
- `data`: the additional data, at most 2,048 bytes as JSON (OneSignal's documented limit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bot.delivery.content import SendRejected, link, rejected
from bot.timeparse import TimeParseError, duration_seconds

MAX_BUTTONS: Final = 3
"""Action buttons per notification: Android shows at most three."""
MAX_WEB_BUTTONS: Final = 2
"""Chrome shows at most two action buttons; the first two go to web push."""
MAX_BUTTON_LABEL: Final = 40
MAX_TTL: Final = 2_419_200
"""OneSignal's longest time to live, in seconds (28 days)."""
MAX_DATA_BYTES: Final = 2048
MAX_DATA_KEY: Final = 64
MAX_THROTTLE: Final = 1_000_000
BUTTON_URLS: Final = "button_urls"
"""The `data` key carrying each button's URL by its id (for iOS and Android)."""
PRIORITY: Final = {"high": 10, "normal": 5}

_CLOCK: Final = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_KEY: Final = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ActionButton(BaseModel):
    """One action button: what it says and the web page it opens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    url: str

    @field_validator("url", mode="after")
    @classmethod
    def _url(cls, value: str) -> str:
        checked = link(value, "button's link")
        if checked is None:
            raise ValueError('A button needs a link: "Label|https://…".')
        return checked


class DeliveryOptions(BaseModel):
    """OneSignal's delivery options of one send (frozen; validated when constructed).

    Attributes:
        local_time: "HH:MM": delivered at that time in each user's own time zone.
        when_active: delivered when each user is usually active (intelligent delivery).
        throttle: at most this many notifications per minute.
        ttl: seconds a notification waits for an offline device before it expires.
        priority: "high" or "normal".
        buttons: action buttons, at most `MAX_BUTTONS`.
        data: the notification's additional data (text values).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    local_time: str | None = None
    when_active: bool = False
    throttle: int | None = None
    ttl: int | None = None
    priority: Literal["high", "normal"] | None = None
    buttons: tuple[ActionButton, ...] = ()
    data: dict[str, str] = {}

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise rejected(error, dict.fromkeys(_FIELDS, "options")) from None

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | None) -> Self:
        """The options of a stored send (an older send has none)."""
        return cls(**dict(data or {}))

    def stored(self) -> dict[str, Any]:
        """The JSON kept with the send: only what was set."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @property
    def any(self) -> bool:
        """Whether any option is set."""
        return bool(self.stored())

    @field_validator("local_time", mode="before")
    @classmethod
    def _local_time(cls, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        found = _CLOCK.match(value.strip())
        if found is None:
            raise ValueError(
                f"The local time {value.strip()[:20]!r} is not a time of day: write it as "
                "HH:MM on a 24-hour clock, like 09:00 or 18:30."
            )
        return f"{int(found[1]):02d}:{found[2]}"

    @field_validator("throttle", mode="before")
    @classmethod
    def _throttle(cls, value: Any) -> Any:
        number = _whole(value, "The throttle")
        if number is not None and not 1 <= number <= MAX_THROTTLE:
            raise ValueError(
                f"The throttle is notifications per minute: a whole number from 1 to "
                f"{MAX_THROTTLE:,}, like 500."
            )
        return number

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = _seconds(value)
        if isinstance(value, int) and not 1 <= value <= MAX_TTL:
            raise ValueError(
                "The time to live is at most 28 days (OneSignal's limit) and more than zero, "
                "like 1h or 2d."
            )
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in PRIORITY:
                raise ValueError("The priority is high or normal.")
        return value

    @field_validator("buttons", mode="before")
    @classmethod
    def _buttons(cls, value: Any) -> Any:
        if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
            return value
        buttons = [_button(item) for item in value]
        if len(buttons) > MAX_BUTTONS:
            raise ValueError(
                f"That is {len(buttons)} buttons; a notification has at most {MAX_BUTTONS}."
            )
        return tuple(buttons)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        if isinstance(value, str) or not isinstance(value, Iterable):
            return value
        pairs = value.items() if isinstance(value, Mapping) else (_pair(v) for v in value)
        data: dict[str, str] = {}
        for key, text in pairs:
            if not _KEY.match(str(key)) or len(str(key)) > MAX_DATA_KEY:
                raise ValueError(
                    f"The data key {str(key)[:40]!r} may hold only letters, digits, '_', '-' "
                    f"and '.', at most {MAX_DATA_KEY} of them."
                )
            if key == BUTTON_URLS:
                raise ValueError(f"The data key {BUTTON_URLS} is PushOps's own (button links).")
            if key in data:
                raise ValueError(f"The data key {key} is given twice; give it once.")
            data[str(key)] = str(text)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.local_time is not None and self.when_active:
            raise ValueError(
                "Choose one way to time the delivery: at a local time in each user's zone, "
                "or when each user is usually active; OneSignal takes one of them."
            )
        size = len(json.dumps(self.data_field() or {}, separators=(",", ":")).encode())
        if size > MAX_DATA_BYTES:
            raise ValueError(
                f"The data (with the buttons' links) takes {size:,} bytes as JSON; OneSignal "
                f"carries at most {MAX_DATA_BYTES:,}. Shorten it by {size - MAX_DATA_BYTES:,}."
            )
        return self

    def data_field(self) -> dict[str, Any] | None:
        """The `data` OneSignal gets: the additional data and the buttons' links."""
        data: dict[str, Any] = dict(self.data)
        if self.buttons:
            data[BUTTON_URLS] = {button_id(i): b.url for i, b in enumerate(self.buttons)}
        return data or None

    def notification_fields(self) -> dict[str, Any]:
        """The OneSignal `create_notification` fields these options set."""
        fields: dict[str, Any] = {}
        if self.local_time is not None:
            fields["delayed_option"] = "timezone"
            fields["delivery_time_of_day"] = self.local_time
        if self.when_active:
            fields["delayed_option"] = "last-active"
        if self.throttle is not None:
            fields["throttle_rate_per_minute"] = str(self.throttle)
        if self.ttl is not None:
            fields["ttl"] = self.ttl
        if self.priority is not None:
            fields["priority"] = PRIORITY[self.priority]
        if self.buttons:
            fields["buttons"] = [
                {"id": button_id(i), "text": b.label} for i, b in enumerate(self.buttons)
            ]
            fields["web_buttons"] = [
                {"id": button_id(i), "text": b.label, "url": b.url}
                for i, b in enumerate(self.buttons[:MAX_WEB_BUTTONS])
            ]
        data = self.data_field()
        if data:
            fields["data"] = data
        return fields

    def describe(self) -> list[str]:
        """One phrase per option set, for the preview and the cards."""
        said: list[str] = []
        if self.local_time is not None:
            said.append(f"at {self.local_time} in each user's time zone")
        if self.when_active:
            said.append("when each user is usually active")
        if self.throttle is not None:
            said.append(f"at most {self.throttle:,} per minute")
        if self.ttl is not None:
            said.append(f"expires after {_span(self.ttl)} offline")
        if self.priority is not None:
            said.append(f"{self.priority} priority")
        return said


def button_id(index: int) -> str:
    """The id of the button at `index` (OneSignal reports the clicked one by it)."""
    return f"button-{index + 1}"


_FIELDS: Final = tuple(DeliveryOptions.model_fields)


def _whole(value: Any, what: str) -> Any:
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if not text.isdigit():
            raise ValueError(f"{what} {value.strip()[:20]!r} is not a whole number, like 500.")
        return int(text)
    return value


def _seconds(text: str) -> int:
    try:
        return duration_seconds(text)
    except TimeParseError as error:
        raise ValueError(f"The time to live: {error}") from None


def _button(item: Any) -> Any:
    if isinstance(item, ActionButton | Mapping):
        return item
    text = str(item)
    label, bar, url = text.partition("|")
    if not bar or not url.strip():
        raise ValueError(
            f'The button {text.strip()[:40]!r} has no link: write it as "Label|https://…", '
            'like "Read more|https://example.com/news".'
        )
    label = label.strip()
    if not label or len(label) > MAX_BUTTON_LABEL:
        raise ValueError(
            f'A button\'s label is 1 to {MAX_BUTTON_LABEL} characters: "Label|https://…".'
        )
    return {"label": label, "url": url}


def _pair(item: Any) -> tuple[str, str]:
    key, equals, value = str(item).partition("=")
    if not equals or not key.strip():
        raise ValueError(f"The data {str(item)[:40]!r} is not KEY=VALUE, like plan=pro.")
    return key.strip(), value.strip()


def _span(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


__all__ = ["ActionButton", "DeliveryOptions", "SendRejected", "button_id"]
