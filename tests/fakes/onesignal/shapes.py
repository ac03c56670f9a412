"""Every field of a `create_notification` body in the shape OneSignal documents, or a 400.

The structure is the committed OneSignal 1.2.2 fixture (tests/fixtures), validated with
jsonschema; on top of it, what the API describes in words and a schema cannot say:
- no field the API does not document (1.2.2's, plus 5.12's `idempotency_key` and
  `include_subscription_ids`);
- `contents`, `headings` and `subtitle` are keyed by the language codes the schema lists;
- `delayed_option` is `timezone` or `last-active`; `delivery_time_of_day` ("9:00AM", "21:45",
  "9:45:30") goes with `timezone` only;
- `throttle_rate_per_minute` is a string of digits; `ttl` at most 2,419,200 seconds;
- `buttons` (iOS, Android) have only `id`, `text` and `icon`; `web_buttons` may add `url`;
- `data` takes at most 2,048 bytes.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]

from tests.fakes.onesignal.errors import errors

FIXTURE: Final = Path(__file__).parents[2] / "fixtures" / "onesignal_v1_schema.json"
FROM_5_12: Final = frozenset({"idempotency_key", "include_subscription_ids"})
DELAYED_OPTIONS: Final = frozenset({"timezone", "last-active"})
MAX_TTL: Final = 2_419_200
MAX_DATA_BYTES: Final = 2048
_TIME_OF_DAY: Final = re.compile(
    r"^(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?$"  # 21:45, 9:45:30
    r"|^(?:0?[1-9]|1[0-2]):[0-5]\d(?:AM|PM)$"  # 9:00AM
)
_BUTTON_KEYS: Final = frozenset({"id", "text", "icon"})
_WEB_BUTTON_KEYS: Final = _BUTTON_KEYS | {"url"}


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(FIXTURE.read_text())["operations"]["create_notification"][
        "request_body"
    ]["schema"]
    return schema


@cache
def _validator() -> Any:
    schema = _schema()
    return jsonschema.validators.validator_for(schema)(schema)


def _properties(part: dict[str, Any]) -> dict[str, Any]:
    found = dict(part.get("properties", {}))
    for key in ("allOf", "anyOf", "oneOf"):
        for child in part.get(key, []):
            found.update(_properties(child))
    return found


@cache
def documented() -> frozenset[str]:
    """Every field a create_notification body may have."""
    return frozenset(_properties(_schema())) | FROM_5_12


@cache
def language_codes() -> frozenset[str]:
    """The language codes of `contents` in the schema."""
    return frozenset(_properties(_properties(_schema())["contents"]))


def check_notification(body: dict[str, Any]) -> None:
    """Refuse (400, OneSignal's error shape) a body not in the documented shape."""
    unknown = sorted(set(body) - documented())
    if unknown:
        raise errors(400, f"Unknown field(s): {', '.join(unknown)}")
    problem = next(_validator().iter_errors(body), None)
    if problem is not None:
        where = ".".join(str(part) for part in problem.absolute_path) or "body"
        raise errors(400, f"{where}: {problem.message}")
    for field in ("contents", "headings", "subtitle"):
        _check_languages(field, body.get(field))
    _check_delivery(body)
    _check_buttons(body.get("buttons"), _BUTTON_KEYS, "buttons")
    _check_buttons(body.get("web_buttons"), _WEB_BUTTON_KEYS, "web_buttons")
    data = body.get("data")
    if data is not None and len(json.dumps(data, separators=(",", ":")).encode()) > MAX_DATA_BYTES:
        raise errors(400, f"data must be at most {MAX_DATA_BYTES} bytes")


def _check_languages(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        return
    unknown = sorted(set(value) - language_codes())
    if unknown:
        raise errors(400, f"{field} has unsupported language code(s): {', '.join(unknown)}")


def _check_delivery(body: dict[str, Any]) -> None:
    option = body.get("delayed_option")
    if option is not None and option not in DELAYED_OPTIONS:
        raise errors(400, "delayed_option must be timezone or last-active")
    time_of_day = body.get("delivery_time_of_day")
    if time_of_day is not None:
        if option != "timezone":
            raise errors(400, "delivery_time_of_day needs delayed_option timezone")
        if not _TIME_OF_DAY.match(time_of_day):
            raise errors(400, f"delivery_time_of_day is not a time of day: {time_of_day}")
    elif option == "timezone":
        raise errors(400, "delayed_option timezone needs delivery_time_of_day")
    throttle = body.get("throttle_rate_per_minute")
    if throttle is not None and not throttle.isdigit():
        raise errors(400, "throttle_rate_per_minute must be a whole number")
    ttl = body.get("ttl")
    if ttl is not None and not 0 <= ttl <= MAX_TTL:
        raise errors(400, f"ttl must be between 0 and {MAX_TTL}")


def _check_buttons(buttons: Any, keys: frozenset[str], field: str) -> None:
    for button in buttons or []:
        extra = sorted(set(button) - keys)
        if extra:
            raise errors(400, f"{field} items take {', '.join(sorted(keys))}, not {extra[0]}")
