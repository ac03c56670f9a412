"""An unexpected failure is logged once, with a reference, and the user gets a short apology."""

import logging

from tests.fakes.slack import RESPONSE_URL


async def test_a_failed_reply_is_logged_and_the_user_gets_an_apology(pushops, fake_slack, caplog):
    fake_slack.fail(RESPONSE_URL, "expired_url", status=404)  # the help reply is refused

    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        sent = await pushops.post_command("help")
        apology = await sent.reply(count=2)

    assert sent.response.status_code == 200
    assert apology["response_type"] == "ephemeral"
    assert apology["text"].startswith("Sorry, something went wrong on my side")
    assert "Traceback" not in apology["text"]
    [record] = [r for r in caplog.records if r.name == "bot.errors"]
    reference = apology["text"].split("Reference `")[1].split("`")[0]
    assert reference in record.getMessage()
    assert "ReplyFailedError" in record.getMessage()


async def test_unexpected_errors_are_counted_in_metrics(pushops, fake_slack):
    fake_slack.fail(RESPONSE_URL, "expired_url", status=404)
    sent = await pushops.post_command("help")
    await sent.reply(count=2)

    metrics = (await pushops.http.get("/metrics")).text

    assert "pushops_unexpected_errors_total 1.0" in metrics
