"""Replies to response URLs and Web API calls share one aiohttp session."""

from __future__ import annotations

import pytest

from bot.slack_http import PooledRespond, SlackHttp


async def test_replies_go_to_the_response_url_through_the_shared_session(fake_slack):
    http = SlackHttp()
    url = fake_slack.new_response_url()
    try:
        session = http.session()
        respond = PooledRespond(response_url=url, session=session)

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
        respond = PooledRespond(response_url=None, session=http.session())
        with pytest.raises(ValueError, match="no response_url"):
            await respond("Hello")
    finally:
        await http.aclose()
