"""The compose form's OneSignal options: a template picker, "Add a language" with a text and a
title per language, and the delivery options (local time or when active, throttle, time to
live, priority, buttons, data); drawn into the modal, and read back from its state.

The languages shown are read back from the view's own block ids (`compose_text_de`), so the
form needs no memory of its own: "Add a language" rebuilds the view with one more pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bot.delivery.options import MAX_BUTTONS
from bot.onesignal.languages import ENGLISH, LANGUAGES
from commands._format import Block
from commands.views.limits import (
    CONTEXT_TEXT,
    INITIAL_VALUE,
    OPTION_TEXT,
    SELECT_OPTIONS,
    fit,
    shorten,
)

ACTION_TEMPLATE: Final = "pushops_compose_template"
ACTION_ADD_LANGUAGE: Final = "pushops_compose_add_language"
ACTION_FIELD: Final = "pushops_compose_option"
BLOCK_TEMPLATE: Final = "compose_template"
BLOCK_TEMPLATE_TEXT: Final = "compose_template_text"
BLOCK_ADD_LANGUAGE: Final = "compose_add_language"
TEXT_PREFIX: Final = "compose_text_"
TITLE_PREFIX: Final = "compose_title_"
BLOCK_DELIVERY: Final = "compose_delivery"
BLOCK_LOCAL_TIME: Final = "compose_local_time"
BLOCK_THROTTLE: Final = "compose_throttle"
BLOCK_TTL: Final = "compose_ttl"
BLOCK_PRIORITY: Final = "compose_priority"
BLOCK_BUTTONS: Final = "compose_buttons"
BLOCK_DATA: Final = "compose_data"

NO_TEMPLATE: Final = "none"
DELIVERY_AT_ONCE: Final = "at_once"
DELIVERY_LOCAL: Final = "local_time"
DELIVERY_ACTIVE: Final = "when_active"
_DELIVERY_LABELS: Final = {
    DELIVERY_AT_ONCE: "To everyone at once",
    DELIVERY_LOCAL: "At a time of day in each user's time zone",
    DELIVERY_ACTIVE: "When each user is usually active",
}
_PRIORITIES: Final = {"high": "High", "normal": "Normal"}


@dataclass(frozen=True, kw_only=True)
class FilledOptions:
    """What the options start with (a send to edit or send again), as a send keeps them.

    Attributes:
        template_id: the template chosen (picked when the app still lists it).
        languages: code -> (text, title) of each other language.
        delivery: the send's delivery options as stored (`DeliveryOptions.stored()`).
    """

    template_id: str | None = None
    languages: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    delivery: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OptionsForm:
    """What the options part of the form shows.

    Attributes:
        templates: (id, name) of the app's push templates; None or empty: no picker.
        template_text: the chosen template's text, shown under the picker.
        languages: the codes whose text and title fields are shown.
        filled: what the fields start with (Slack shows it in untouched fields only).
    """

    templates: tuple[tuple[str, str], ...] | None = None
    template_text: str | None = None
    languages: tuple[str, ...] = ()
    filled: FilledOptions | None = None


def options_blocks(form: OptionsForm) -> list[Block]:
    """The template picker, the languages, and the delivery options."""
    blocks: list[Block] = []
    filled = form.filled or FilledOptions()
    if form.templates:
        blocks.append(_template_block(form.templates, filled.template_id))
        if form.template_text:
            blocks.append(_context(BLOCK_TEMPLATE_TEXT, form.template_text))
    for code in form.languages:
        name = f"{LANGUAGES[code]} ({code})"
        text, title = filled.languages.get(code, (None, None))
        blocks.append(
            _text(f"{TEXT_PREFIX}{code}", f"Message in {name}", multiline=True, initial=text)
        )
        blocks.append(_text(f"{TITLE_PREFIX}{code}", f"Title in {name}", initial=title))
    left = [c for c in LANGUAGES if c != ENGLISH and c not in form.languages]
    if left:
        blocks.append(_add_language_block(left))
    return blocks + _delivery_blocks(filled.delivery)


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": _plain(shorten(text, OPTION_TEXT)), "value": value}


def _input(block_id: str, label: str, element: dict[str, Any], hint: str | None = None) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "element": element,
        "optional": True,
    }
    if hint:
        block["hint"] = _plain(hint)
    return block


def _text(
    block_id: str, label: str, *, multiline: bool = False, initial: str | None = None, **extra: Any
) -> Block:
    hint = extra.pop("hint", None)
    element = {
        "type": "plain_text_input",
        "action_id": ACTION_FIELD,
        "multiline": multiline,
        **extra,
    }
    if initial:
        element["initial_value"] = shorten(initial, INITIAL_VALUE)
    return _input(block_id, label, element, hint)


def _context(block_id: str, mrkdwn: str) -> Block:
    return {
        "type": "context",
        "block_id": block_id,
        "elements": [{"type": "mrkdwn", "text": fit(mrkdwn, CONTEXT_TEXT)}],
    }


def _template_block(templates: tuple[tuple[str, str], ...], chosen: str | None) -> Block:
    options = [_option(NO_TEMPLATE, "No template")]
    options += [_option(tid, name) for tid, name in templates[: SELECT_OPTIONS - 1]]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": ACTION_TEMPLATE,
        "placeholder": _plain("Choose a OneSignal template"),
        "options": options,
    }
    picked = next((o for o in options[1:] if chosen and o["value"] == chosen), None)
    if picked is not None:
        element["initial_option"] = picked
    block = _input(
        BLOCK_TEMPLATE,
        "Template",
        element,
        "Its text and title go out unless you write your own above.",
    )
    block["dispatch_action"] = True
    return block


def _add_language_block(codes: list[str]) -> Block:
    return {
        "type": "actions",
        "block_id": BLOCK_ADD_LANGUAGE,
        "elements": [
            {
                "type": "static_select",
                "action_id": ACTION_ADD_LANGUAGE,
                "placeholder": _plain("Add a language"),
                "options": [
                    _option(code, f"{LANGUAGES[code]} ({code})") for code in codes[:SELECT_OPTIONS]
                ],
            }
        ],
    }


def _delivery_blocks(filled: Mapping[str, Any]) -> list[Block]:
    choices = [_option(value, text) for value, text in _DELIVERY_LABELS.items()]
    how = (
        DELIVERY_LOCAL
        if filled.get("local_time")
        else DELIVERY_ACTIVE
        if filled.get("when_active")
        else DELIVERY_AT_ONCE
    )
    delivery = {
        "type": "radio_buttons",
        "action_id": ACTION_FIELD,
        "options": choices,
        "initial_option": next(c for c in choices if c["value"] == how),
    }
    priorities = [_option(value, text) for value, text in _PRIORITIES.items()]
    priority: dict[str, Any] = {
        "type": "static_select",
        "action_id": ACTION_FIELD,
        "placeholder": _plain("OneSignal's default"),
        "options": priorities,
    }
    picked = next((p for p in priorities if p["value"] == filled.get("priority")), None)
    if picked is not None:
        priority["initial_option"] = picked
    return [
        _input(BLOCK_DELIVERY, "Delivery", delivery),
        _input(
            BLOCK_LOCAL_TIME,
            "Local time",
            _initial(
                {"type": "timepicker", "action_id": ACTION_FIELD},
                "initial_time",
                filled.get("local_time"),
            ),
            "For “each user's time zone”: the time of day each user gets it.",
        ),  # fmt: skip
        _input(
            BLOCK_THROTTLE,
            "At most per minute",
            _initial(
                {
                    "type": "number_input",
                    "action_id": ACTION_FIELD,
                    "is_decimal_allowed": False,
                    "min_value": "1",
                },
                "initial_value",
                filled.get("throttle"),
            ),
        ),
        _text(
            BLOCK_TTL,
            "Expires after",
            placeholder=_plain("2h, 3d (at most 28 days)"),
            initial=f"{filled['ttl']}s" if filled.get("ttl") else None,
        ),
        _input(BLOCK_PRIORITY, "Priority", priority),
        _text(
            BLOCK_BUTTONS,
            "Buttons",
            multiline=True,
            placeholder=_plain(f"Label|https://… one per line, up to {MAX_BUTTONS}"),
            initial="\n".join(f"{b['label']}|{b['url']}" for b in filled.get("buttons") or ()),
        ),
        _text(
            BLOCK_DATA,
            "Additional data",
            multiline=True,
            placeholder=_plain("KEY=VALUE, one per line"),
            initial="\n".join(f"{k}={v}" for k, v in (filled.get("data") or {}).items()),
        ),
    ]


def _initial(element: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    """`element` starting with `value` (as text) under `key`, when there is one."""
    if value is not None and value != "":
        element[key] = str(value)
    return element


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OptionsInput:
    """The options as typed (`SendContent` and `DeliveryOptions` judge them)."""

    template_id: str | None = None
    languages: dict[str, dict[str, str]]
    delivery: dict[str, object]


def read_options(values: dict[str, dict[str, Any]]) -> OptionsInput:
    """The options part of a compose form's `view.state.values`."""
    template = _selected(values, BLOCK_TEMPLATE)
    languages: dict[str, dict[str, str]] = {}
    for block_id in values:
        for prefix, key in ((TEXT_PREFIX, "message"), (TITLE_PREFIX, "title")):
            code = block_id[len(prefix) :] if block_id.startswith(prefix) else None
            text = _value(values, block_id)
            if code in LANGUAGES and text:
                languages.setdefault(code, {})[key] = text
    how = _selected(values, BLOCK_DELIVERY)
    typed: dict[str, object | None] = {
        "local_time": _state(values, BLOCK_LOCAL_TIME).get("selected_time")
        if how == DELIVERY_LOCAL
        else None,
        "when_active": True if how == DELIVERY_ACTIVE else None,
        "throttle": _value(values, BLOCK_THROTTLE),
        "ttl": _value(values, BLOCK_TTL),
        "priority": _selected(values, BLOCK_PRIORITY),
        "buttons": _lines(values, BLOCK_BUTTONS),
        "data": _lines(values, BLOCK_DATA),
    }
    if how == DELIVERY_LOCAL and typed["local_time"] is None:
        typed["local_time"] = ""  # chosen without a time: refused by name
    return OptionsInput(
        template_id=template if template not in (None, NO_TEMPLATE) else None,
        languages=languages,
        delivery={key: value for key, value in typed.items() if value is not None},
    )


def _state(values: dict[str, dict[str, Any]], block_id: str) -> dict[str, Any]:
    block = values.get(block_id) or {}
    for state in block.values():
        if isinstance(state, dict):
            return state
    return {}


def _value(values: dict[str, dict[str, Any]], block_id: str) -> str | None:
    value = _state(values, block_id).get("value")
    return value.strip() or None if isinstance(value, str) else None


def _selected(values: dict[str, dict[str, Any]], block_id: str) -> str | None:
    option = _state(values, block_id).get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return value if isinstance(value, str) else None


def _lines(values: dict[str, dict[str, Any]], block_id: str) -> tuple[str, ...] | None:
    text = _value(values, block_id)
    if text is None:
        return None
    return tuple(line.strip() for line in text.splitlines() if line.strip()) or None


def shown_options(view: dict[str, Any]) -> OptionsForm:
    """The `OptionsForm` a shown compose view was built from (for rebuilding it)."""
    by_id = {block.get("block_id"): block for block in view.get("blocks") or ()}
    picker = ((by_id.get(BLOCK_TEMPLATE) or {}).get("element") or {}).get("options") or ()
    templates = tuple(
        (str(o["value"]), str(o["text"]["text"])) for o in picker if o.get("value") != NO_TEMPLATE
    )
    text_block = by_id.get(BLOCK_TEMPLATE_TEXT) or {}
    text = ((text_block.get("elements") or [{}])[0]).get("text")
    languages = tuple(
        str(block_id)[len(TEXT_PREFIX) :]
        for block_id in by_id
        if str(block_id).startswith(TEXT_PREFIX) and str(block_id)[len(TEXT_PREFIX) :] in LANGUAGES
    )
    return OptionsForm(templates=templates or None, template_text=text, languages=languages)


def error_block(field: str, message: str, view: dict[str, Any]) -> str | None:
    """The block of these options to show a refusal of `field` under (None: not ours)."""
    shown = {block.get("block_id") for block in view.get("blocks") or ()}
    if field == "template":
        return BLOCK_TEMPLATE if BLOCK_TEMPLATE in shown else None
    if field == "language":
        first = next((b for b in shown if str(b).startswith(TEXT_PREFIX)), None)
        return str(first) if first else None
    if field != "options":
        return None
    lowered = message.lower()
    for words, block in (
        ("button", BLOCK_BUTTONS),
        ("data", BLOCK_DATA),
        ("local time", BLOCK_LOCAL_TIME),
        ("time to live", BLOCK_TTL),
        ("throttle", BLOCK_THROTTLE),
        ("priority", BLOCK_PRIORITY),
    ):
        if words in lowered:
            return block
    return BLOCK_DELIVERY
