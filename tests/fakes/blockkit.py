"""Block Kit as Slack checks it: what the fake Slack refuses in a message, a view or a form answer.

slack_sdk's models parse a payload and run their validators (`Block.parse`, `View`, then
`to_dict()`, which validates every object it serializes); they know most of Slack's limits.
What they miss is checked here, by walking the JSON as sent:

- every text object holds 1 to N characters, N by where it sits (a section's text 3,000, a
  field 2,000, a context element 3,000, a header 150, a button 75, an option's text and
  description 75, a placeholder 150, an input's label and hint 2,000, a view's title, submit
  and close 24, a confirm dialog's title 100, text 300, buttons 30), counted as sent: the
  `&amp;` of an escaped `&` is 5 characters;
- unknown block types; a section without text or fields; empty actions or context blocks and
  their element counts (25, 10); option counts (select 100, radio buttons and checkboxes 10,
  overflow 5); option values (150); an `initial_option` that is not one of the options;
  button values (2,000) and urls (3,000); block and action ids (255, a block id once per
  message or view, an action id once per block);
- a message: at most 50 blocks, `text` at most 40,000 characters (`msg_too_long`) and, for
  the Web API's chat methods, at most 12,000 characters of text in all its blocks together
  (`msg_blocks_too_long`; Slack does not document this one, it answers so past about 12,000:
  slackapi/bolt-js#2509; posts to a `response_url` do not have it, by the same report);
- a view: at most 100 blocks (modal and Home alike), a modal with an input block has a submit
  button, `private_metadata` at most 3,000 characters;
- a view submission answered with `response_action: errors`: each key names an input block of
  the submitted view, each message is non-empty text.

Each problem reads `/json/pointer: what is wrong`, as Slack's own `[json-pointer:...]` errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS: Final = 50
VIEW_BLOCKS: Final = 100
MESSAGE_TEXT: Final = 40_000
MESSAGE_BLOCK_TEXT: Final = 12_000
_TEXT_LIMITS: Final[Mapping[tuple[str, str], int]] = {
    ("section", "text"): 3000,
    ("section", "fields"): 2000,
    ("context", "elements"): 3000,
    ("header", "text"): 150,
    ("input", "label"): 2000,
    ("input", "hint"): 2000,
    ("button", "text"): 75,
    ("option", "text"): 75,
    ("option", "description"): 75,
    ("confirm", "title"): 100,
    ("confirm", "text"): 300,
    ("confirm", "confirm"): 30,
    ("confirm", "deny"): 30,
    ("view", "title"): 24,
    ("view", "submit"): 24,
    ("view", "close"): 24,
}
_PLACEHOLDER: Final = 150
_OPTIONS: Final[Mapping[str, int]] = {
    "static_select": 100,
    "multi_static_select": 100,
    "radio_buttons": 10,
    "checkboxes": 10,
    "overflow": 5,
}
_ELEMENTS: Final[Mapping[str, int]] = {"actions": 25, "context": 10}
_OPTION_VALUE: Final = 150
_BUTTON_VALUE: Final = 2000
_URL: Final = 3000
_ID: Final = 255
_METADATA: Final = 3000
_INPUT_VALUE: Final = 3000


def message_problems(
    text: Any, blocks: Any, *, web_api: bool = True
) -> tuple[str | None, list[str]]:
    """Slack's error code and the problems of a message (`text`, `blocks`); (None, []) if valid.

    `web_api` is False for a post to a `response_url`, which has no limit on the text of all
    blocks together.
    """
    if text is not None and not isinstance(text, str):
        return "invalid_arguments", ["/text: must be a string"]
    if isinstance(text, str) and len(text) > MESSAGE_TEXT:
        return "msg_too_long", [f"/text: {len(text):,} characters, more than {MESSAGE_TEXT:,}"]
    if blocks is None:
        return None, []
    if not isinstance(blocks, list):
        return "invalid_blocks_format", ["/blocks: must be an array of blocks"]
    problems = _surface_problems(blocks, "/blocks", most=MESSAGE_BLOCKS)
    if problems:
        return "invalid_blocks", problems
    total = blocks_text_length(blocks)
    if web_api and total > MESSAGE_BLOCK_TEXT:
        return "msg_blocks_too_long", [
            f"/blocks: {total:,} characters of text in all blocks, more than {MESSAGE_BLOCK_TEXT:,}"
        ]
    return None, []


def view_problems(view: Any) -> list[str]:
    """The problems of a view (modal or Home tab); [] when Slack would take it."""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return ["/view/type: must be modal or home"]
    problems = _sdk_problems(lambda: View(**_without_server_fields(view)).to_dict(), "/view")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        return [*problems, "/view/blocks: must be an array of blocks"]
    problems += _surface_problems(blocks, "/view/blocks", most=VIEW_BLOCKS)
    for key in ("title", "submit", "close"):
        if key in view:
            problems += _text_problems(view[key], f"/view/{key}", _TEXT_LIMITS[("view", key)])
    if view["type"] == "modal" and "title" not in view:
        problems.append("/view/title: a modal needs a title")
    if view["type"] == "modal" and "submit" not in view and input_block_ids(view):
        problems.append("/view/submit: a modal with input blocks needs a submit button")
    for key, most in (("private_metadata", _METADATA), ("callback_id", _ID), ("external_id", _ID)):
        problems += _length_problems(view.get(key), f"/view/{key}", most)
    return problems


def errors_problems(errors: Any, view: Mapping[str, Any]) -> list[str]:
    """The problems of `response_action: errors` answering the submission of `view`."""
    if not isinstance(errors, dict) or not errors:
        return ["/errors: must be an object of input block id to message"]
    inputs = input_block_ids(view)
    problems = []
    for key, message in errors.items():
        if key not in inputs:
            problems.append(
                f"/errors/{key}: no input block of the view has this block_id "
                f"(its input blocks: {', '.join(sorted(inputs)) or 'none'})"
            )
        if not isinstance(message, str) or not message.strip():
            problems.append(f"/errors/{key}: must be a non-empty message")
    return problems


def response_action_problems(answer: Any, view: Mapping[str, Any]) -> list[str]:
    """The problems of the app's answer (the HTTP body, or a Socket Mode ack's payload) to the
    submission of `view`; [] for an empty answer, which closes the modal."""
    if answer in (None, "", {}):
        return []
    if not isinstance(answer, dict):
        return ["/: the answer to a view submission must be empty or a JSON object"]
    action = answer.get("response_action")
    if action == "errors":
        return errors_problems(answer.get("errors"), view)
    if action in ("update", "push"):
        return view_problems(answer.get("view"))
    if action == "clear":
        return []
    return [f"/response_action: {action!r} is not errors, update, push or clear"]


def input_block_ids(view: Mapping[str, Any]) -> set[str]:
    """The block ids of the input blocks of `view`."""
    blocks = view.get("blocks") or []
    return {
        str(b["block_id"])
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "input" and b.get("block_id")
    }


def blocks_text_length(blocks: Sequence[Any]) -> int:
    """Characters of text in all text objects of `blocks`, as sent (escapes count in full)."""
    return sum(len(text) for _, text, _ in _text_objects(blocks, ""))


# --- surfaces and blocks ------------------------------------------------------------------------


def _surface_problems(blocks: list[Any], where: str, *, most: int) -> list[str]:
    problems = []
    if len(blocks) > most:
        problems.append(f"{where}: {len(blocks)} blocks, more than {most}")
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        path = f"{where}/{index}"
        if not isinstance(block, dict):
            problems.append(f"{path}: must be a block object")
            continue
        problems += _block_problems(block, path)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in seen:
                problems.append(f"{path}/block_id: {block_id!r} is used by an earlier block")
            seen.add(block_id)
    return problems


def _block_problems(block: dict[str, Any], path: str) -> list[str]:
    problems = _sdk_problems(lambda: _parsed(block).to_dict(), path)
    kind = str(block.get("type") or "")
    problems += _length_problems(block.get("block_id"), f"{path}/block_id", _ID)
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"{path}: a section needs text or fields")
        if "text" in block:
            problems += _text_problems(
                block["text"], f"{path}/text", _TEXT_LIMITS[("section", "text")]
            )
        for i, field in enumerate(block.get("fields") or []):
            problems += _text_problems(
                field, f"{path}/fields/{i}", _TEXT_LIMITS[("section", "fields")]
            )
        if "accessory" in block:
            problems += _element_problems(block["accessory"], f"{path}/accessory")
    elif kind in _ELEMENTS:
        problems += _elements_problems(block, path, kind)
    elif kind == "header":
        problems += _text_problems(
            block.get("text"), f"{path}/text", _TEXT_LIMITS[("header", "text")]
        )
    elif kind == "input":
        problems += _text_problems(
            block.get("label"), f"{path}/label", _TEXT_LIMITS[("input", "label")]
        )
        if "hint" in block:
            problems += _text_problems(
                block["hint"], f"{path}/hint", _TEXT_LIMITS[("input", "hint")]
            )
        problems += _element_problems(block.get("element"), f"{path}/element")
    return problems


def _elements_problems(block: dict[str, Any], path: str, kind: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"{path}/elements: must hold at least one element"]
    problems = []
    if len(elements) > _ELEMENTS[kind]:
        problems.append(f"{path}/elements: {len(elements)} elements, more than {_ELEMENTS[kind]}")
    action_ids: set[str] = set()
    for i, element in enumerate(elements):
        where = f"{path}/elements/{i}"
        if kind == "context" and isinstance(element, dict) and element.get("type") != "image":
            problems += _text_problems(element, where, _TEXT_LIMITS[("context", "elements")])
            continue
        problems += _element_problems(element, where)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in action_ids:
                problems.append(f"{where}/action_id: {action_id!r} is used twice in the block")
            action_ids.add(action_id)
    return problems


# --- elements -------------------------------------------------------------------------------


def _element_problems(element: Any, path: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"{path}: must be an element object"]
    kind = str(element.get("type") or "")
    problems = _length_problems(element.get("action_id"), f"{path}/action_id", _ID)
    if "placeholder" in element:
        problems += _text_problems(element["placeholder"], f"{path}/placeholder", _PLACEHOLDER)
    if "confirm" in element:
        problems += _confirm_problems(element["confirm"], f"{path}/confirm")
    if kind == "button":
        problems += _text_problems(
            element.get("text"), f"{path}/text", _TEXT_LIMITS[("button", "text")]
        )
        problems += _length_problems(element.get("value"), f"{path}/value", _BUTTON_VALUE)
        problems += _length_problems(element.get("url"), f"{path}/url", _URL)
    elif kind in _OPTIONS:
        problems += _options_problems(element, path, _OPTIONS[kind])
    elif kind in ("plain_text_input", "url_text_input"):
        problems += _length_problems(
            element.get("initial_value"), f"{path}/initial_value", _INPUT_VALUE
        )
    return problems


def _options_problems(element: dict[str, Any], path: str, most: int) -> list[str]:
    options = element.get("options")
    if not isinstance(options, list) or not options:
        return [f"{path}/options: must hold at least one option"]
    problems = []
    if len(options) > most:
        problems.append(f"{path}/options: {len(options)} options, more than {most}")
    for i, option in enumerate(options):
        problems += _option_problems(option, f"{path}/options/{i}")
    initial = [element["initial_option"]] if "initial_option" in element else []
    initial += element.get("initial_options") or []
    values = [o.get("value") for o in options if isinstance(o, dict)]
    for option in initial:
        if not isinstance(option, dict) or option.get("value") not in values:
            problems.append(f"{path}/initial_option: is not one of the options")
    return problems


def _option_problems(option: Any, path: str) -> list[str]:
    if not isinstance(option, dict):
        return [f"{path}: must be an option object"]
    problems = _text_problems(option.get("text"), f"{path}/text", _TEXT_LIMITS[("option", "text")])
    if "description" in option:
        problems += _text_problems(
            option["description"], f"{path}/description", _TEXT_LIMITS[("option", "description")]
        )
    value = option.get("value")
    if not isinstance(value, str) or not value:
        problems.append(f"{path}/value: must be non-empty text")
    problems += _length_problems(value, f"{path}/value", _OPTION_VALUE)
    return problems


def _confirm_problems(confirm: Any, path: str) -> list[str]:
    if not isinstance(confirm, dict):
        return [f"{path}: must be a confirmation dialog object"]
    problems = []
    for key in ("title", "text", "confirm", "deny"):
        problems += _text_problems(
            confirm.get(key), f"{path}/{key}", _TEXT_LIMITS[("confirm", key)]
        )
    return problems


# --- text ------------------------------------------------------------------------------------


def _text_problems(obj: Any, path: str, most: int) -> list[str]:
    """A text object (plain_text or mrkdwn) with 1 to `most` characters."""
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{path}: must be a plain_text or mrkdwn text object"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{path}/text: must be at least 1 character"]
    if len(text) > most:
        return [f"{path}/text: {len(text):,} characters, more than {most:,}"]
    return []


def _length_problems(value: Any, path: str, most: int) -> list[str]:
    if isinstance(value, str) and len(value) > most:
        return [f"{path}: {len(value):,} characters, more than {most:,}"]
    return []


def _text_objects(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, text, object) of every text object under `node`."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield path, node["text"], node
            return
        for key, value in node.items():
            yield from _text_objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _text_objects(value, f"{path}/{i}")


# --- slack_sdk ----------------------------------------------------------------------------------


def _parsed(block: dict[str, Any]) -> Block:
    parsed = Block.parse(dict(block))
    if parsed is None:
        raise SlackObjectFormationError(f"unknown block type {block.get('type')!r}")
    return parsed


def _sdk_problems(check: Any, path: str) -> list[str]:
    """What slack_sdk's models refuse in the object `check()` serializes."""
    try:
        check()
    except SlackObjectFormationError as error:
        return [f"{path}: {error}"]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return [f"{path}: not a valid Block Kit object ({type(error).__name__}: {error})"]
    return []


def _without_server_fields(view: Mapping[str, Any]) -> dict[str, Any]:
    """The view as the app sends it (without what Slack adds once it holds the view)."""
    return {k: v for k, v in view.items() if k not in ("state", "hash", "id", "team_id")}


def dumps_problems(problems: Sequence[str]) -> str:
    """The problems as one line for a test failure."""
    return json.dumps(list(problems), ensure_ascii=False)
