"""The `/push user` reply builder: tokens shortened, values escaped, long lists capped."""

import json

from bot.onesignal.models import Subscription, User, UserProperties
from commands.views.user import (
    MAX_SUBSCRIPTIONS,
    MAX_TAGS,
    short_token,
    slack_time,
    subscriptions_text,
    tags_text,
    user_blocks,
)


def test_a_token_shows_only_its_last_six_characters():
    assert short_token("0123456789abcdef") == "…abcdef"
    assert short_token("abc") == "…abc"
    assert short_token(None) == "no token"
    assert short_token("x<y>zzzz") == "…y&gt;zzzz"  # escaped after shortening


def test_times_are_shown_in_the_readers_zone_with_a_utc_fallback():
    assert slack_time(1_800_000_000) == (
        "<!date^1800000000^{date_short_pretty} {time}|2027-01-15 08:00 UTC>"
    )
    assert slack_time(None) == "never"


def test_long_lists_are_capped_and_say_how_many_more():
    tags = {f"tag{i:03d}": "v" for i in range(MAX_TAGS + 5)}
    subscriptions = [Subscription(type="AndroidPush", token=f"t{i:08d}") for i in range(50)]

    assert tags_text(tags).endswith("…and 5 more tags")
    assert f"*Tags* ({MAX_TAGS + 5})" in tags_text(tags)
    assert subscriptions_text(subscriptions).endswith(
        f"…and {50 - MAX_SUBSCRIPTIONS} more subscriptions"
    )


def test_one_more_is_counted_in_the_singular():
    tags = {f"tag{i:03d}": "v" for i in range(MAX_TAGS + 1)}
    subscriptions = [Subscription(type="AndroidPush", token=f"t{i:08d}") for i in range(21)]

    assert tags_text(tags).endswith("…and 1 more tag")
    assert subscriptions_text(subscriptions).endswith("…and 1 more subscription")


def test_every_section_stays_within_slacks_limit():
    huge = {f"k{i}": "x" * 500 for i in range(MAX_TAGS)}
    user = User(
        properties=UserProperties(tags=huge),
        identity={f"alias{i}": "y" * 500 for i in range(40)},
        subscriptions=[Subscription(type="Email", token="z" * 300, device_model="m" * 300)] * 30,
    )

    blocks = user_blocks("cust-1", "main", user)

    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")


def test_a_user_without_subscriptions_cannot_receive():
    text = json.dumps(user_blocks("cust-1", "main", User()), ensure_ascii=False)

    assert "none: this user cannot receive notifications." in text
    assert "Language: ?" in text


def test_unsubscribed_devices_are_told_apart():
    line = subscriptions_text(
        [Subscription(type="iOSPush", token="abcdefgh", notification_types=-2)]
    )

    assert "unsubscribed (notification_types -2)" in line
