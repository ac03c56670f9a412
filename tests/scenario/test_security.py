"""Requests Slack did not sign, or signed too long ago, are refused before any work."""

import time

from tests.fakes.slack import RESPONSE_URL, Call, FakeSlack
from tests.plugins.slack import SentCommand


async def _only_calls_of(fake_slack: FakeSlack, sent_good: SentCommand) -> list[Call]:
    """After a good command got its reply, the fake saw nothing but that command's calls."""
    await sent_good.reply()
    replies = fake_slack.calls_to(RESPONSE_URL)
    good_target = sent_good.response_url.rsplit("/", 1)[-1]
    return [c for c in replies if c.target != good_target]


async def test_bad_signature_gets_401_and_no_slack_call(pushops, fake_slack):
    sent = await pushops.post_command("help", secret="not-the-signing-secret")

    assert sent.response.status_code == 401
    # A good command afterwards is answered; the bad one never was.
    good = await pushops.post_command("help")
    assert await _only_calls_of(fake_slack, good) == []
    assert sent.replies() == []


async def test_timestamp_older_than_five_minutes_gets_401(pushops, fake_slack):
    sent = await pushops.post_command("help", timestamp=int(time.time()) - 6 * 60)

    assert sent.response.status_code == 401
    good = await pushops.post_command("help")
    assert await _only_calls_of(fake_slack, good) == []


async def test_unsigned_request_gets_401(pushops):
    response = await pushops.http.post(
        "/slack/events",
        content="command=%2Fpush&text=help",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 401
