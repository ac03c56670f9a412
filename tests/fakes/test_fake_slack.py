"""The fake Slack refuses the messages, views and form answers that Slack refuses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes import blockkit
from tests.fakes.slack import DEFAULT_BOT_TOKEN, FakeSlack


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(text: str, value: str = "v") -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "a",
                "text": {"type": "plain_text", "text": text},
                "value": value,
            }
        ],
    }


def _select(option_text: str, *, initial: str | None = None) -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": option_text}, "value": "one"}]
    element: dict[str, Any] = {"type": "static_select", "action_id": "f", "options": options}
    if initial is not None:
        element["initial_option"] = {
            "text": {"type": "plain_text", "text": "x"},
            "value": initial,
        }
    return {
        "type": "input",
        "block_id": "pick",
        "label": {"type": "plain_text", "text": "Pick"},
        "element": element,
    }


def _modal(blocks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "c",
        "title": {"type": "plain_text", "text": "Title"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": blocks,
        **extra,
    }


async def _post(fake: FakeSlack, method: str, **args: Any) -> dict[str, Any]:
    body = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in args.items()}
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        response = await http.post(
            method, data=body, headers={"authorization": f"Bearer {DEFAULT_BOT_TOKEN}"}
        )
    assert response.status_code == 200  # Slack answers its refusals with 200 and ok: false
    answer: dict[str, Any] = response.json()
    return answer


VALID_BLOCKS = [
    _section("*Hello* &amp; welcome"),
    _context("small print"),
    _button("Send"),
    {"type": "divider"},
]


async def test_a_valid_message_is_posted_and_nothing_is_refused(fake_slack):
    answer = await _post(
        fake_slack, "chat.postMessage", channel="C1", text="hi", blocks=VALID_BLOCKS
    )

    assert answer["ok"] is True
    assert fake_slack.refusals == []


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([_section("x" * 3001)], "/blocks/0"),
        ([_section("&amp;" * 601)], "/blocks/0"),  # 3,005 characters as sent
        ([_section("")], "/blocks/0/text/text"),
        ([_context("x" * 3001)], "/blocks/0/elements/0/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "/blocks/0"),
        ([_button("x" * 76)], "/blocks/0"),
        ([_button("Send", value="v" * 2001)], "/blocks/0"),
        ([{"type": "actions", "elements": []}], "/blocks/0/elements"),
        ([{"type": "no_such_block"}], "/blocks/0"),
        ([{"type": "section"}], "/blocks/0"),
        ([_section("a")] * 51, "/blocks"),
        ([{**_section("a"), "block_id": "b"}, {**_section("b"), "block_id": "b"}], "/blocks/1"),
    ],
)
async def test_a_message_breaking_a_block_kit_rule_is_refused_as_invalid_blocks(
    fake_slack, blocks, pointer
):
    answer = await _post(fake_slack, "chat.postMessage", channel="C1", text="hi", blocks=blocks)

    assert answer == {"ok": False, "error": "invalid_blocks", "errors": answer["errors"]}
    assert any(problem.startswith(pointer) for problem in answer["errors"]), answer["errors"]
    [refusal] = fake_slack.take_refusals()
    assert (refusal.method, refusal.error) == ("chat.postMessage", "invalid_blocks")


async def test_message_text_over_40000_characters_is_refused(fake_slack):
    answer = await _post(fake_slack, "chat.update", channel="C1", ts="1.2", text="x" * 40_001)

    assert answer["error"] == "msg_too_long"
    assert [r.error for r in fake_slack.take_refusals()] == ["msg_too_long"]


async def test_blocks_holding_over_12000_characters_of_text_are_refused_by_the_web_api_only(
    fake_slack,
):
    blocks = [_section("x" * 3000)] * 4 + [_context("x")]  # 12,001 characters
    answer = await _post(fake_slack, "chat.postEphemeral", channel="C1", user="U1", blocks=blocks)
    reply_url = fake_slack.new_response_url()
    async with httpx.AsyncClient() as http:
        reply = await http.post(reply_url, json={"text": "t", "blocks": blocks})

    assert answer["error"] == "msg_blocks_too_long"
    assert reply.status_code == 200
    assert [r.method for r in fake_slack.take_refusals()] == ["chat.postEphemeral"]


async def test_a_response_url_post_with_invalid_blocks_answers_400_like_a_webhook(fake_slack):
    reply_url = fake_slack.new_response_url()
    async with httpx.AsyncClient() as http:
        reply = await http.post(reply_url, json={"text": "t", "blocks": [_section("x" * 3001)]})

    assert (reply.status_code, reply.text) == (400, "invalid_blocks")
    assert fake_slack.replies(reply_url) == [{"text": "t", "blocks": [_section("x" * 3001)]}]
    assert [r.method for r in fake_slack.take_refusals()] == ["response_url"]


@pytest.mark.parametrize(
    ("view", "pointer"),
    [
        (_modal([_section("a")] * 101), "/view"),
        (_modal([_section("a")], title={"type": "plain_text", "text": "x" * 25}), "/view"),
        (_modal([_select("o" * 76)], submit={"type": "plain_text", "text": "Go"}), "/view"),
        (
            _modal([_select("o", initial="two")], submit={"type": "plain_text", "text": "Go"}),
            "/view/blocks/0/element/initial_option",
        ),
        (_modal([_select("o")]), "/view/submit"),
        (_modal([_section("a")], private_metadata="m" * 3001), "/view"),
    ],
)
async def test_a_view_breaking_a_block_kit_rule_is_refused_as_invalid_arguments(
    fake_slack, view, pointer
):
    answer = await _post(fake_slack, "views.open", trigger_id="t.1", view=view)

    assert (answer["ok"], answer["error"]) == (False, "invalid_arguments")
    messages = answer["response_metadata"]["messages"]
    assert any(m.startswith(f"[ERROR] {pointer}") for m in messages), messages
    assert [r.method for r in fake_slack.take_refusals()] == ["views.open"]


async def test_a_home_tab_holds_at_most_100_blocks(fake_slack):
    home = {"type": "home", "blocks": [_section("a")] * 101}

    answer = await _post(fake_slack, "views.publish", user_id="U1", view=home)

    assert answer["error"] == "invalid_arguments"
    fake_slack.take_refusals()


def test_form_errors_must_name_input_blocks_of_the_submitted_view():
    view = _modal([_select("o"), _section("a")], submit={"type": "plain_text", "text": "Go"})

    good = {"response_action": "errors", "errors": {"pick": "Choose one."}}
    stray = {"response_action": "errors", "errors": {"elsewhere": "Choose one."}}
    empty = {"response_action": "errors", "errors": {"pick": ""}}

    assert blockkit.response_action_problems(good, view) == []
    assert blockkit.response_action_problems(None, view) == []
    assert "no input block" in blockkit.response_action_problems(stray, view)[0]
    assert "non-empty" in blockkit.response_action_problems(empty, view)[0]
    update = {"response_action": "update", "view": _modal([_section("x" * 3001)])}
    assert blockkit.response_action_problems(update, view) != []
