"""Shared wording of the Slack surface: one answer for an app that is not there."""

import pytest

from commands._format import unknown_app_text


@pytest.mark.parametrize(
    ("name", "configured", "expected"),
    [
        (
            "nope",
            ["default", "shop"],
            "There is no OneSignal app named `nope` here. "
            "Pick one with `--app NAME`: `default`, `shop`.",
        ),
        (
            None,
            ["shop", "news"],
            "This workspace has no default OneSignal app. "
            "Pick one with `--app NAME`: `shop`, `news`.",
        ),
        (
            "nope",
            [],
            "There is no OneSignal app named `nope` here, and none is set up yet: "
            "an admin adds one with `/push setup`.",
        ),
        (
            None,
            [],
            "No OneSignal app is set up in this workspace yet: "
            "an admin adds one with `/push setup`.",
        ),
    ],
)
def test_an_unknown_app_names_the_configured_ones_and_how_to_pick(name, configured, expected):
    assert unknown_app_text(name, configured) == expected


def test_names_are_left_for_the_reply_to_escape_and_a_long_list_is_cut_short():
    many = [f"app{i}" for i in range(40)]

    text = unknown_app_text("<!channel>`x", many)

    assert "`<!channel>'x`" in text  # escaped once, by the reply (commands.dispatch)
    assert "`app19`" in text and "`app20`" not in text
    assert text.endswith("`app19` and 20 more.")
