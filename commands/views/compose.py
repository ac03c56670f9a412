"""The compose form of `/push send`: the modal, and reading its submitted values back.

Slack keeps what a person typed across `views.update` as long as each input block keeps its
`block_id` and `action_id`, so the form is always rebuilt whole from `ComposeForm` (after an
app change, or with a fresh audience estimate) without losing the text already entered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from bot import const
from bot.timeparse import MAX_AHEAD
from commands._format import Block
from commands.views.compose_options import OptionsForm, options_blocks, shown_options
from commands.views.limits import (
    CONTEXT_TEXT,
    HINT_TEXT,
    INITIAL_VALUE,
    OPTION_TEXT,
    OPTION_VALUE,
    SELECT_OPTIONS,
    VIEW_BLOCKS,
    fit,
    shorten,
)

WHEN_NOW: Final = "now"
WHEN_AT: Final = "at"
WHEN_IN: Final = "in"

MAX_OPTIONS: Final = SELECT_OPTIONS
"""Segments listed in a select; more than a select holds are typed instead."""

ESTIMATE_PROMPT: Final = "Pick an audience to see how many subscriptions it reaches."

_WHEN_LABELS: Final = {
    WHEN_NOW: "Now",
    WHEN_AT: "At a date and time",
    WHEN_IN: "After a delay",
}


@dataclass(frozen=True, kw_only=True)
class ComposeForm:
    """What the compose modal shows besides the person's own input.

    Attributes:
        apps: the workspace's app names; the app select shows only when there are several.
        app: the chosen app (the default one at first).
        segments: segment names to pick from, or None when they are typed (listing failed,
            the plan does not allow it, or there are more than a select holds).
        segments_note: why segments are typed, shown under the field.
        estimate: the line (mrkdwn, escaped) saying how many subscriptions the audience
            reaches, or why it cannot be told.
        metadata: the view's `private_metadata` (where to answer, which app).
        filled: what the fields start with (a message turned into a push, a send to edit or
            send again, the form again after its preview's Back); None: empty. Slack shows it
            only in fields the person has not typed in.
        editing: the form edits a stored send (`/push edit`): its own callback id, Save
            instead of Send, and no Repeat (an upcoming send stays one send).
    """

    apps: tuple[str, ...] = ()
    app: str | None = None
    segments: tuple[str, ...] | None = None
    segments_note: str | None = None
    estimate: str = ESTIMATE_PROMPT
    metadata: str = ""
    filled: ComposeInput | None = None
    options: OptionsForm = OptionsForm()
    editing: bool = False


def compose_view(form: ComposeForm) -> dict[str, Any]:
    """The modal view of the compose form."""
    blocks: list[Block] = []
    filled = form.filled or ComposeInput()
    if len(form.apps) > 1:
        blocks.append(_app_block(form))
    blocks += [
        _text_input(
            const.BLOCK_COMPOSE_TITLE,
            "Title",
            optional=True,
            placeholder="Heading",
            initial=filled.title,
        ),
        _text_input(
            const.BLOCK_COMPOSE_MESSAGE,
            "Message",
            multiline=True,
            initial=filled.message,
            optional=bool(form.options.templates),  # a template may give it
        ),
        _segments_block(
            const.BLOCK_COMPOSE_SEGMENTS,
            "Segments",
            form,
            hint=form.segments_note,
            chosen=filled.segments,
        ),
        _segments_block(
            const.BLOCK_COMPOSE_EXCLUDE,
            "Excluded segments",
            form,
            hint=None,
            chosen=filled.excluded,
        ),
        _users_block(filled.external_ids),
        _url_input(
            const.BLOCK_COMPOSE_URL, "Link", "Opens when the notification is tapped", filled.url
        ),
        _url_input(const.BLOCK_COMPOSE_IMAGE, "Image", "URL of a picture to show", filled.image),
        _when_block(filled.when),
        _at_block(filled.at),
        _text_input(
            const.BLOCK_COMPOSE_IN,
            "Delay",
            optional=True,
            placeholder="10m, 2h, 1d or 1h30m",
            initial=filled.in_,
        ),
        *([] if form.editing else _repeat_blocks(filled)),
        *options_blocks(form.options),
        {
            "type": "context",
            "block_id": const.BLOCK_COMPOSE_ESTIMATE,
            "elements": [{"type": "mrkdwn", "text": fit(form.estimate, CONTEXT_TEXT)}],
        },
    ]
    return {
        "type": "modal",
        "callback_id": const.CALLBACK_COMPOSE_EDIT if form.editing else const.CALLBACK_COMPOSE,
        "title": _plain("Edit a push" if form.editing else "Send a push"),
        "submit": _plain("Save" if form.editing else "Send"),
        "close": _plain("Cancel"),
        "private_metadata": form.metadata,
        "blocks": blocks,
    }


def _repeat_blocks(filled: ComposeInput) -> list[Block]:
    """Repeat and Repeat until: the form makes a series when Repeat is given."""
    return [
        _text_input(
            const.BLOCK_COMPOSE_EVERY,
            "Repeat",
            optional=True,
            placeholder="monday, weekday, day, week, month or 6h; the first time is When",
            initial=filled.every,
        ),
        _text_input(
            const.BLOCK_COMPOSE_ENDS,
            "Repeat until",
            optional=True,
            placeholder="a last day like 2027-03-31, or a count like 4 times",
            initial=filled.ends,
        ),
    ]


def too_big(form: ComposeForm) -> str | None:
    """What of `form.filled` (and its options' filling) Slack's form cannot show whole: a
    text over what a field may start with, or more languages than a view has blocks for.
    None when it all fits (checked with every optional block shown)."""
    filled = form.filled or ComposeInput()
    texts = {
        "text": filled.message,
        "title": filled.title,
        "segments": ", ".join(filled.segments),
        "excluded segments": ", ".join(filled.excluded),
        "list of users": "\n".join(filled.external_ids),
    }
    for name, text in texts.items():
        if text and len(text) > INITIAL_VALUE:
            return f"its {name} (over {INITIAL_VALUE:,} characters)"
    options = form.options
    for code, (text, title) in (options.filled.languages if options.filled else {}).items():
        if len(text or "") > INITIAL_VALUE or len(title or "") > INITIAL_VALUE:
            return f"its text in {code} (over {INITIAL_VALUE:,} characters)"
    fullest = ComposeForm(
        apps=("a", "b"),
        filled=filled,
        editing=form.editing,
        options=replace(options, templates=(("t", "t"),), template_text="t"),
    )
    if len(compose_view(fullest)["blocks"]) > VIEW_BLOCKS:
        return f"its {len(options.languages)} languages"
    return None


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": _plain(shorten(text or value, OPTION_TEXT)), "value": value}


def _input(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
    dispatch: bool = False,
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(shorten(hint, HINT_TEXT))
    if dispatch:
        block["dispatch_action"] = True
    return block


def _text_input(
    block_id: str,
    label: str,
    *,
    optional: bool = False,
    multiline: bool = False,
    placeholder: str | None = None,
    initial: str | None = None,
) -> Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": const.ACTION_COMPOSE_FIELD,
        "multiline": multiline,
    }
    if placeholder:
        element["placeholder"] = _plain(placeholder)
    _initial_text(element, initial)
    return _input(block_id, label, element, optional=optional)


def _initial_text(element: dict[str, Any], text: str | None) -> None:
    """Start a text field with `text` (at most what a field may start with)."""
    if text:
        element["initial_value"] = shorten(text, INITIAL_VALUE)


def _url_input(block_id: str, label: str, hint: str, initial: str | None = None) -> Block:
    element: dict[str, Any] = {"type": "url_text_input", "action_id": const.ACTION_COMPOSE_FIELD}
    _initial_text(element, initial)
    return _input(block_id, label, element, optional=True, hint=hint)


def _app_block(form: ComposeForm) -> Block:
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": const.ACTION_COMPOSE_APP,
        "options": [_option(name) for name in form.apps[:MAX_OPTIONS]],
    }
    if form.app in form.apps:
        element["initial_option"] = _option(form.app)
    return _input(const.BLOCK_COMPOSE_APP, "OneSignal app", element, dispatch=True)


def selectable(segments: tuple[str, ...] | None) -> bool:
    """Whether these segments fit in a select (else they are typed)."""
    return (
        segments is not None
        and 0 < len(segments) <= MAX_OPTIONS
        and all(len(name) <= OPTION_VALUE for name in segments)
    )


def _segments_block(
    block_id: str,
    label: str,
    form: ComposeForm,
    *,
    hint: str | None,
    chosen: tuple[str, ...] = (),
) -> Block:
    element: dict[str, Any]
    listed = form.segments if form.segments is not None and selectable(form.segments) else None
    if listed is not None and set(chosen) <= set(listed):
        element = {
            "type": "multi_static_select",
            "action_id": const.ACTION_COMPOSE_AUDIENCE,
            "placeholder": _plain("Choose segments"),
            "options": [_option(name) for name in listed],
        }
        if chosen:
            element["initial_options"] = [_option(name) for name in chosen]
    else:  # typed: no list, or a chosen segment the list lacks (renamed since, say)
        element = {
            "type": "plain_text_input",
            "action_id": const.ACTION_COMPOSE_AUDIENCE,
            "placeholder": _plain("Segment names, separated by commas"),
            "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
        }
        _initial_text(element, ", ".join(chosen))
    return _input(block_id, label, element, optional=True, hint=hint, dispatch=True)


def _users_block(external_ids: tuple[str, ...] = ()) -> Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": const.ACTION_COMPOSE_AUDIENCE,
        "multiline": True,
        "placeholder": _plain("external ids, separated by commas or new lines"),
        "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
    }
    _initial_text(element, "\n".join(external_ids))
    return _input(
        const.BLOCK_COMPOSE_USERS,
        "Or users (external ids)",
        element,
        optional=True,
        hint="Instead of segments: the users' external ids.",
        dispatch=True,
    )


def _when_block(when: str = WHEN_NOW) -> Block:
    options = [_option(value, text) for value, text in _WHEN_LABELS.items()]
    element = {
        "type": "radio_buttons",
        "action_id": const.ACTION_COMPOSE_FIELD,
        "options": options,
        "initial_option": next((o for o in options if o["value"] == when), options[0]),
    }
    return _input(const.BLOCK_COMPOSE_WHEN, "When", element)


def _at_block(at: datetime | None = None) -> Block:
    element: dict[str, Any] = {"type": "datetimepicker", "action_id": const.ACTION_COMPOSE_FIELD}
    if at is not None:
        element["initial_date_time"] = int(at.timestamp())
    return _input(
        const.BLOCK_COMPOSE_AT,
        "Date and time",
        element,
        optional=True,
        hint=(
            f"For “At a date and time”, at most {MAX_AHEAD.days} days ahead; shown in your "
            "Slack time zone."
        ),
    )


# --- reading the submitted form ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ComposeInput:
    """The compose form's values, as typed (validation is the send service's job)."""

    app: str | None = None
    title: str | None = None
    message: str = ""
    segments: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    url: str | None = None
    image: str | None = None
    when: str = WHEN_NOW
    at: datetime | None = None
    in_: str | None = None
    every: str | None = None
    ends: str | None = None


def read_compose(values: dict[str, dict[str, Any]]) -> ComposeInput:
    """The form's `view.state.values` as a `ComposeInput`."""
    return ComposeInput(
        app=_selected(values, const.BLOCK_COMPOSE_APP),
        title=_text(values, const.BLOCK_COMPOSE_TITLE),
        message=_text(values, const.BLOCK_COMPOSE_MESSAGE) or "",
        segments=_names(values, const.BLOCK_COMPOSE_SEGMENTS),
        excluded=_names(values, const.BLOCK_COMPOSE_EXCLUDE),
        external_ids=split_ids(_text(values, const.BLOCK_COMPOSE_USERS) or ""),
        url=_text(values, const.BLOCK_COMPOSE_URL),
        image=_text(values, const.BLOCK_COMPOSE_IMAGE),
        when=_selected(values, const.BLOCK_COMPOSE_WHEN) or WHEN_NOW,
        at=_date_time(values, const.BLOCK_COMPOSE_AT),
        in_=_text(values, const.BLOCK_COMPOSE_IN),
        every=_text(values, const.BLOCK_COMPOSE_EVERY),
        ends=_text(values, const.BLOCK_COMPOSE_ENDS),
    )


def _state(values: dict[str, dict[str, Any]], block_id: str) -> dict[str, Any]:
    """The state of the one element in `block_id` ({} when absent)."""
    block = values.get(block_id) or {}
    for state in block.values():
        if isinstance(state, dict):
            return state
    return {}


def _text(values: dict[str, dict[str, Any]], block_id: str) -> str | None:
    value = _state(values, block_id).get("value")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _selected(values: dict[str, dict[str, Any]], block_id: str) -> str | None:
    option = _state(values, block_id).get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return value if isinstance(value, str) else None


def _names(values: dict[str, dict[str, Any]], block_id: str) -> tuple[str, ...]:
    state = _state(values, block_id)
    options = state.get("selected_options")
    if isinstance(options, list):
        return tuple(str(o["value"]) for o in options if isinstance(o, dict) and o.get("value"))
    return split_names(_text(values, block_id) or "")


def _date_time(values: dict[str, dict[str, Any]], block_id: str) -> datetime | None:
    stamp = _state(values, block_id).get("selected_date_time")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return None
    return datetime.fromtimestamp(stamp, UTC)


def split_names(text: str) -> tuple[str, ...]:
    """Segment names typed with commas between them (names themselves may hold spaces)."""
    return _unique(part.strip() for part in text.split(","))


_ID_SEPARATORS: Final = re.compile(r"[,\s]+")


def split_ids(text: str) -> tuple[str, ...]:
    """External ids separated by commas, spaces or new lines, without repeats."""
    return _unique(_ID_SEPARATORS.split(text))


def _unique(parts: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for part in parts:
        if part:
            seen.setdefault(part, None)
    return tuple(seen)


def form_of(view: dict[str, Any]) -> ComposeForm:
    """The `ComposeForm` a shown compose view was built from (for rebuilding it)."""
    by_id = {block.get("block_id"): block for block in view.get("blocks") or ()}
    apps = _option_values(by_id.get(const.BLOCK_COMPOSE_APP))
    segments_block = by_id.get(const.BLOCK_COMPOSE_SEGMENTS) or {}
    listed = segments_block.get("element", {}).get("type") == "multi_static_select"
    estimate_block = by_id.get(const.BLOCK_COMPOSE_ESTIMATE) or {}
    elements = estimate_block.get("elements") or [{}]
    return ComposeForm(
        apps=apps,
        app=None,
        segments=_option_values(segments_block) if listed else None,
        segments_note=(segments_block.get("hint") or {}).get("text"),
        estimate=str(elements[0].get("text") or ESTIMATE_PROMPT),
        metadata=str(view.get("private_metadata") or ""),
        options=shown_options(view),
        editing=view.get("callback_id") == const.CALLBACK_COMPOSE_EDIT,
    )


def _option_values(block: dict[str, Any] | None) -> tuple[str, ...]:
    options = ((block or {}).get("element") or {}).get("options") or ()
    return tuple(str(option["value"]) for option in options if isinstance(option, dict))
