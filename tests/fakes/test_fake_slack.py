"""The fake Slack refuses the messages, views and form answers that Slack refuses, and, once
a test turns its rate limits on, the calls Slack would answer 429."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes import blockkit
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_USER_ID, FakeSlack
from tests.fakes.slack_limits import SLACK_LIMITS, TIER_3, Limiter, RateLimits, Window


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
    response = await _call(fake, method, **args)
    assert response.status_code == 200  # Slack answers its refusals with 200 and ok: false
    answer: dict[str, Any] = response.json()
    return answer


async def _call(
    fake: FakeSlack, method: str, *, token: str = DEFAULT_BOT_TOKEN, **args: Any
) -> httpx.Response:
    body = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in args.items()}
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        return await http.post(method, data=body, headers={"authorization": f"Bearer {token}"})


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

    answer = await _post(fake_slack, "views.publish", user_id=DEFAULT_USER_ID, view=home)

    assert answer["error"] == "invalid_arguments"
    assert "/view/blocks" in " ".join(answer["response_metadata"]["messages"])
    assert [r.method for r in fake_slack.take_refusals()] == ["views.publish"]
    assert fake_slack.home(DEFAULT_USER_ID) is None


@pytest.mark.parametrize(
    ("user", "view", "error"),
    [
        ("U0NOBODY", {"type": "home", "blocks": [_section("a")]}, "invalid_arguments"),
        (DEFAULT_USER_ID, _modal([_section("a")]), "invalid_arguments"),
        (DEFAULT_USER_ID, {**_modal([_section("a")]), "type": "home"}, "invalid_arguments"),
        (
            DEFAULT_USER_ID,
            {"type": "home", "blocks": [_section("a" * 2900)] * 90},
            "view_too_large",
        ),
    ],
    ids=["unknown user", "a modal", "a home with a title", "over 250 kB"],
)
async def test_views_publish_takes_only_a_home_for_a_person_of_the_workspace(
    fake_slack, user, view, error
):
    answer = await _post(fake_slack, "views.publish", user_id=user, view=view)

    assert (answer["ok"], answer["error"]) == (False, error)
    assert fake_slack.home(DEFAULT_USER_ID) is None
    fake_slack.take_refusals()  # the title also breaks a Block Kit rule of home views


async def test_a_published_home_is_kept_per_person_and_replaced_in_place(fake_slack):
    first = await _post(
        fake_slack, "views.publish", user_id=DEFAULT_USER_ID,
        view={"type": "home", "blocks": [_section("one")]},
    )  # fmt: skip
    second = await _post(
        fake_slack, "views.publish", user_id=DEFAULT_USER_ID,
        view={"type": "home", "blocks": [_section("two")]},
    )  # fmt: skip

    assert first["ok"] and second["ok"]
    assert first["view"]["id"] == second["view"]["id"]
    home = fake_slack.home(DEFAULT_USER_ID)
    assert home is not None and home["blocks"][0]["text"]["text"] == "two"


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


# --- rate limits ------------------------------------------------------------------------------


async def _statuses(fake: FakeSlack, method: str, times: int, **args: Any) -> list[int]:
    """The HTTP status of each of `times` calls of `method` in a row, on one connection."""
    headers = {"authorization": f"Bearer {DEFAULT_BOT_TOKEN}"}
    async with httpx.AsyncClient(base_url=fake.api_url, headers=headers) as http:
        return [(await http.post(method, data=args)).status_code for _ in range(times)]


async def test_without_limits_turned_on_nothing_is_rate_limited(fake_slack):
    statuses = await _statuses(fake_slack, "chat.update", 51, channel="C1", ts="1.2", text="x")

    assert set(statuses) == {200}
    assert fake_slack.rate_limited == []


async def test_a_tier_3_method_over_its_window_is_answered_429_with_a_whole_retry_after(
    fake_slack,
):
    fake_slack.limit(SLACK_LIMITS.scaled(window=0.1))  # Tier 3: 5 calls in 6 s
    ok = await _statuses(fake_slack, "conversations.open", 5, users=DEFAULT_USER_ID)

    over = await _call(fake_slack, "conversations.open", users=DEFAULT_USER_ID)

    assert ok == [200] * 5
    assert over.status_code == 429
    assert over.json() == {"ok": False, "error": "ratelimited"}
    assert over.headers["Retry-After"] in {"5", "6"}  # what is left of the 6 s, rounded up
    assert [c.method for c in fake_slack.rate_limited] == ["conversations.open"]


async def test_each_method_and_each_workspace_has_its_own_quota(fake_slack):
    fake_slack.add_workspace("T0OTHER", bot_token="xoxb-other")
    fake_slack.limit(SLACK_LIMITS.scaled(window=0.1))
    await _statuses(fake_slack, "conversations.open", 6, users=DEFAULT_USER_ID)

    other_method = await _call(fake_slack, "users.info", user=DEFAULT_USER_ID)
    other_workspace = await _call(
        fake_slack, "conversations.open", token="xoxb-other", users=DEFAULT_USER_ID
    )

    assert (other_method.status_code, other_workspace.status_code) == (200, 200)


async def test_tier_4_allows_twice_what_tier_3_does(fake_slack):
    fake_slack.limit(SLACK_LIMITS.scaled(window=0.1))

    statuses = await _statuses(fake_slack, "users.info", 11, user=DEFAULT_USER_ID)

    assert statuses == [200] * 10 + [429]


async def test_posts_are_limited_per_channel(fake_slack):
    fake_slack.limit(RateLimits(methods={}, posts_per_channel=Window(3, 60.0)))

    burst = [await _call(fake_slack, "chat.postMessage", channel="C1", text="hi") for _ in "abcd"]
    elsewhere = await _call(fake_slack, "chat.postMessage", channel="C2", text="hi")

    assert [r.status_code for r in burst] == [200, 200, 200, 429]
    assert 50 <= int(burst[-1].headers["Retry-After"]) <= 60
    assert elsewhere.status_code == 200
    assert len(fake_slack.messages_in("C1")) == 3  # the refused post left no message


async def test_a_call_repeated_before_its_retry_after_is_an_early_retry(fake_slack):
    fake_slack.limit(SLACK_LIMITS.scaled(window=0.1))
    await _statuses(fake_slack, "chat.update", 5, channel="C1", ts="1.2", text="x")
    refused = await _call(fake_slack, "chat.update", channel="C1", ts="1.2", text="late")

    await _call(fake_slack, "chat.update", channel="C1", ts="1.2", text="late")

    assert refused.status_code == 429
    [early] = fake_slack.early_retries
    assert early.method == "chat.update" and early.args["text"] == "late"
    assert "before its Retry-After ran out" in str(early)
    fake_slack.limit(None)  # taken: the fixture would fail the test for it


async def test_response_urls_and_unknown_tokens_are_not_rate_limited(fake_slack):
    fake_slack.limit(SLACK_LIMITS.scaled(window=0.02))  # Tier 3: one call in 1.2 s
    reply_url = fake_slack.new_response_url()
    async with httpx.AsyncClient() as http:
        replies = [(await http.post(reply_url, json={"text": "t"})).status_code for _ in "abc"]
    unknown = [
        (await _call(fake_slack, "chat.update", token="xoxb-nobody", ts="1", channel="C")).json()
        for _ in "ab"
    ]

    assert replies == [200, 200, 200]
    assert [answer["error"] for answer in unknown] == ["invalid_auth", "invalid_auth"]


def test_scaling_keeps_the_rates_or_multiplies_them():
    assert TIER_3.scaled(window=0.1, speed=1) == Window(5, 6.0)
    assert TIER_3.scaled(window=1, speed=20) == Window(50, 3.0)
    assert Window(3, 3.0).scaled(window=0.1, speed=1) == Window(1, 1.0)  # at least one call
    scaled = SLACK_LIMITS.scaled(window=0.5, speed=2)
    assert scaled.methods["views.publish"] == Window(50, 15.0)
    assert scaled.posts_per_workspace == Window(150, 15.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _limiter(**limits: Any) -> tuple[Limiter, _Clock]:
    clock = _Clock()
    defaults: dict[str, Any] = {"methods": {"chat.update": Window(2, 10.0)}}
    return Limiter(RateLimits(**{**defaults, **limits}), clock=clock), clock


def test_a_window_slides_and_retry_after_is_the_wait_until_it_frees_rounded_up():
    limiter, clock = _limiter()
    update = ("T1", "xoxb", "chat.update")
    assert limiter.admit(*update, {"n": 1}) is None
    clock.now += 4
    assert limiter.admit(*update, {"n": 2}) is None
    clock.now += 1.5

    assert limiter.admit(*update, {"n": 3}) == 5  # 4.5 s until the first call leaves
    clock.now += 5
    assert limiter.admit(*update, {"n": 3}) is None  # refused calls did not count
    assert limiter.admit(*update, {"n": 4}) == 4  # 3.5 s until the second leaves
    assert limiter.early_retries == []


def test_a_post_is_held_to_both_its_channel_and_its_workspace():
    limiter, clock = _limiter(posts_per_workspace=Window(4, 60.0))
    post = ("T1", "xoxb", "chat.postMessage")

    first = [limiter.admit(*post, {"channel": "C1", "n": n}) for n in range(4)]
    clock.now += 3
    second = [limiter.admit(*post, {"channel": c}) for c in ("C1", "C2")]

    assert first == [None, None, None, 3]
    assert second == [None, 57]  # C1 took its fourth; the workspace's minute is used up


def test_a_retry_after_the_retry_after_is_not_early():
    limiter, clock = _limiter()
    update = ("T1", "xoxb", "chat.update", {"ts": "1"})
    limiter.admit(*update)
    limiter.admit(*update)
    retry_after = limiter.admit(*update)
    assert retry_after is not None
    clock.now += retry_after - 0.01
    limiter.admit(*update)
    clock.now += 0.01 + retry_after

    limiter.admit(*update)

    assert [round(e.early, 2) for e in limiter.early_retries] == [0.01]


# --- the file upload flow ---------------------------------------------------------------------


async def _upload_url(fake: FakeSlack, **args: Any) -> dict[str, Any]:
    answer: dict[str, Any] = (await _call(fake, "files.getUploadURLExternal", **args)).json()
    return answer


async def test_a_file_is_shared_only_after_its_announced_bytes_were_posted(fake_slack):
    issued = await _upload_url(fake_slack, filename="d.json", length=5)
    early = await _call(
        fake_slack, "files.completeUploadExternal", files=[{"id": issued["file_id"]}]
    )
    async with httpx.AsyncClient() as http:
        posted = await http.post(issued["upload_url"], content=b"{}\n..")
        again = await http.post(issued["upload_url"], content=b"{}\n..")
    done = await _call(
        fake_slack,
        "files.completeUploadExternal",
        files=[{"id": issued["file_id"], "title": "T"}],
        channel_id="D0ALICE",
    )

    assert early.json() == {"ok": False, "error": "file_upload_size_mismatch"}
    assert (posted.status_code, again.status_code) == (200, 404)
    assert done.json()["ok"] is True
    (shared,) = fake_slack.shared_files("D0ALICE")
    assert (shared.title, shared.content) == ("T", b"{}\n..")


@pytest.mark.parametrize(
    "args",
    [{"length": 5}, {"filename": "d.json"}, {"filename": "d.json", "length": 0}],
    ids=["no-filename", "no-length", "empty"],
)
async def test_an_upload_without_a_name_or_a_length_is_refused(fake_slack, args):
    assert await _upload_url(fake_slack, **args) == {"ok": False, "error": "invalid_arguments"}


async def test_completing_a_file_nobody_asked_for_is_refused(fake_slack):
    unknown = await _call(fake_slack, "files.completeUploadExternal", files=[{"id": "F0NOPE"}])
    shapeless = await _call(fake_slack, "files.completeUploadExternal", files="F0NOPE")

    assert unknown.json() == {"ok": False, "error": "file_not_found"}
    assert shapeless.json() == {"ok": False, "error": "invalid_arguments"}
    assert fake_slack.shared_files() == []


def _stacked(callback_id: str, external_id: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": "T"},
        "blocks": [_section("x")],
    }
    if external_id:
        view["external_id"] = external_id
    return view


def test_answers_to_a_submission_stack_views_as_slack_does(fake_slack: FakeSlack) -> None:
    fake_slack.check_view_answer(
        {"response_action": "push", "view": _stacked("b", "e1")}, {"id": "V1"}
    )
    pushed_id, _ = fake_slack.view_by_external_id("e1") or ("", {})
    fake_slack.check_view_answer(
        {"response_action": "push", "view": _stacked("c", "e1")}, {"id": pushed_id}
    )  # external id taken
    fake_slack.check_view_answer(
        {"response_action": "push", "view": _stacked("c")}, {"id": pushed_id}
    )
    third = [vid for vid, v in fake_slack._state.views.items() if v.get("callback_id") == "c"][0]
    fake_slack.check_view_answer({"response_action": "push", "view": _stacked("d")}, {"id": third})

    refused = fake_slack.take_refusals()
    assert ["external_id" in str(r) for r in refused] == [True, False]
    assert "at most 3 views" in str(refused[1])
    assert fake_slack.close_view(third)["id"] == pushed_id  # type: ignore[index]
    fake_slack.check_view_answer({"response_action": "clear"}, {"id": pushed_id})
    assert fake_slack.view(pushed_id) is None and fake_slack.view("V1") is None
