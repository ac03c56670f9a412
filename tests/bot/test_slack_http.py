"""Replies to response URLs and Web API calls share one aiohttp session."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import DividerBlock, SectionBlock

from bot.slack_http import PooledRespond, SlackHttp, is_slack_response_url
from tests.fakes.slack import RESPONSE_URL

SAMPLES: dict[str, Any] = {
    "text": "Sent.",
    "blocks": [SectionBlock(text="*Sent*"), {"type": "divider"}],
    "attachments": [Attachment(text="one"), {"text": "two"}],
    "response_type": "ephemeral",
    "replace_original": False,
    "delete_original": False,
    "unfurl_links": True,
    "unfurl_media": False,
    "thread_ts": "1700000000.000100",
    "metadata": {"event_type": "send_stored", "event_payload": {"id": 7}},
}
"""A value for each parameter of Bolt's `respond()`."""


async def test_replies_go_to_the_response_url_through_the_shared_session(fake_slack):
    http = SlackHttp()
    url = fake_slack.new_response_url()
    try:
        session = http.session()
        respond = PooledRespond(response_url=url, session=session, api_url=fake_slack.api_url)

        first = await respond("Sent.", blocks=[{"type": "divider"}], response_type="ephemeral")
        second = await respond({"text": "Replaced.", "replace_original": True})

        assert (first.status_code, second.status_code) == (200, 200)
        assert http.session() is session  # one session for every call
    finally:
        await http.aclose()

    replies = fake_slack.replies(url)
    assert [reply["text"] for reply in replies] == ["Sent.", "Replaced."]
    assert replies[0]["blocks"] == [{"type": "divider"}]
    assert replies[0]["response_type"] == "ephemeral"
    assert replies[1]["replace_original"] is True
    assert session.closed


async def test_without_a_response_url_respond_refuses(fake_slack):
    http = SlackHttp()
    try:
        respond = PooledRespond(
            response_url=None, session=http.session(), api_url=fake_slack.api_url
        )
        with pytest.raises(ValueError, match="no response_url"):
            await respond("Hello")
    finally:
        await http.aclose()


@pytest.mark.parametrize(
    ("url", "slack"),
    [
        ("https://hooks.slack.com/commands/T1/2/abc", True),
        ("https://hooks.slack-gov.com/actions/T1/2/abc", True),
        ("https://hooks.slack.com:443/commands/T1/2/abc", True),
        ("http://hooks.slack.com/commands/T1/2/abc", False),  # not over HTTPS
        ("https://hooks.slack.com:8443/commands/T1/2/abc", False),
        ("https://hooks.slack.com.evil.example/commands", False),
        ("https://evil.example/?hooks.slack.com", False),
        ("https://user@hooks.slack.com@evil.example/", False),
        ("https://[::1/", False),
        ("https://hooks.slack.com:99999/", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("https://slack.com/api/response/abc", True),  # the Web API's own origin
        ("", False),
    ],
)
def test_only_slacks_own_hosts_count_as_response_urls(url, slack):
    assert is_slack_response_url(url, "https://slack.com/api/") is slack


async def test_respond_refuses_a_response_url_off_slacks_hosts(fake_slack, caplog):
    http = SlackHttp()
    try:
        respond = PooledRespond(
            response_url="http://127.0.0.1:9/hook",
            session=http.session(),
            api_url=fake_slack.api_url,
        )
        answer = await respond("Hello")
    finally:
        await http.aclose()

    assert answer.status_code == 403
    assert "refused to post to a response_url off Slack's hosts (127.0.0.1)" in caplog.text


async def test_replies_to_response_urls_share_pooled_connections(pushops, fake_slack):
    for _ in range(8):  # one after the other
        sent = await pushops.post_command("help")
        await sent.reply()

    replies = fake_slack.calls_to(RESPONSE_URL)
    peers = {call.peer for call in replies}

    # Kept-alive connections of one pool serve them (the same pool makes the Web API calls,
    # so not always the same one), not a new session and connection for each reply.
    assert len(replies) == 8
    assert len(peers) < len(replies)


def test_respond_takes_the_parameters_bolts_respond_takes():
    # PooledRespond binds Bolt's own signature; a parameter Bolt adds (or drops) needs a look
    # at whether Bolt posts it under its own name, as the test below checks for these.
    parameters = list(inspect.signature(AsyncRespond.__call__).parameters)[1:]
    assert parameters == list(SAMPLES)


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), SAMPLES),
    (("Only text",), {}),
    ((), {"blocks": [], "attachments": [], "response_type": None}),  # empty lists left out
    (({"text": "Whole", "blocks": [DividerBlock()], "replace_original": True},), {}),
    ((), {"text": {"delete_original": True}}),
    (("Positional", [{"type": "divider"}], None, "in_channel"), {}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
async def test_respond_posts_what_bolts_respond_posts(fake_slack, args, kwargs):
    http = SlackHttp()
    ours, bolts = fake_slack.new_response_url(), fake_slack.new_response_url()
    try:
        pooled = PooledRespond(
            response_url=ours, session=http.session(), api_url=fake_slack.api_url
        )
        await pooled(*args, **kwargs)
        await AsyncRespond(response_url=bolts)(*args, **kwargs)
    finally:
        await http.aclose()

    assert fake_slack.replies(ours) == fake_slack.replies(bolts)
    assert len(fake_slack.replies(ours)) == 1


async def test_respond_refuses_what_bolts_respond_refuses(fake_slack):
    http = SlackHttp()
    url = fake_slack.new_response_url()
    try:
        pooled = PooledRespond(response_url=url, session=http.session(), api_url=fake_slack.api_url)
        with pytest.raises(TypeError):
            await pooled("Hello", colour="red")
        with pytest.raises(TypeError):
            await pooled({"text": "Hello", "colour": "red"})
    finally:
        await http.aclose()

    assert fake_slack.replies(url) == []
