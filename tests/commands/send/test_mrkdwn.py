"""Slack mrkdwn read as the plain text of a notification."""

import pytest

from commands.send.mrkdwn import mentioned_users, plain_text


@pytest.mark.parametrize(
    ("mrkdwn", "shown"),
    [
        ("*bold* _italic_ ~struck~ `code`", "bold italic struck code"),
        ("*_both_*", "both"),
        ("snake_case_name and 2*3*4 and a * b * c", "snake_case_name and 2*3*4 and a * b * c"),
        ("```\nblock\n```", "block"),
        ("&gt; quoted\nplain", "quoted\nplain"),
        ("1 &lt; 2 &amp;&amp; &amp;lt;", "1 < 2 && &lt;"),
        ("<@U1> <@U2|old name> <@U3>", "@Ann @old name @U3"),
        ("<#C1|general> <#C2> <#C3|>", "#general #here-channel #C3"),
        ("<!subteam^S1|@oncall> <!subteam^S2>", "@oncall @group"),
        (
            "<!channel> <!everyone> <!date^1392734382^{date}|Feb 18, 2014>",
            "@channel @everyone Feb 18, 2014",
        ),
        ("<https://x.io/a_b_c> <https://x.io|*x*>", "https://x.io/a_b_c *x*"),
    ],
)
def test_mrkdwn_reads_as_a_phone_shows_it(mrkdwn, shown):
    names = {"U1": "Ann"}
    channels = {"C2": "here-channel"}

    assert plain_text(mrkdwn, names=names, channels=channels) == shown


def test_only_mentions_without_a_name_are_looked_up_each_once():
    assert mentioned_users("<@U1> <@U2|bob> <@U1> <@W3> <#C1>") == ("U1", "W3")
