"""Slack's limits in one place: text cut without breaking an escape or a mention, lists that
count what they do not show, and the builders that use them on the longest input."""

import pytest

from bot.onesignal.errors import normalize_errors
from bot.policy import Role
from commands._format import code, context, escape, section
from commands.views import sends, setup
from commands.views.limits import SECTION_TEXT, fit, listing, pack, shorten


def test_text_that_fits_is_left_alone():
    assert fit("short", 10) == "short"
    assert shorten("short", 5) == "short"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdefgh", 5, "abcd…"),
        ("ab&amp;cd", 5, "ab…"),  # the escape is not cut in half
        ("ab <@U0ALICE> cd", 8, "ab …"),  # nor the mention
        ("&lt;&lt;&lt;", 11, "&lt;&lt;…"),
    ],
)
def test_text_too_long_is_cut_with_an_ellipsis_never_inside_an_escape_or_a_mention(
    text, limit, expected
):
    assert fit(text, limit) == expected
    assert len(fit(text, limit)) <= limit


def test_a_list_shows_what_fits_and_counts_the_rest():
    names = ["Active Users", "Beta", "Gamma testers", "Delta"]

    assert listing(names, 100, render=escape) == "Active Users, Beta, Gamma testers, Delta"
    assert listing(names, 40, render=escape) == "Active Users, Beta, … and 2 more"
    assert listing(names, 100, render=escape, most=2) == "Active Users, Beta, … and 2 more"
    assert len(listing(names, 40, render=escape)) <= 40


def test_a_list_counts_escaped_characters_and_always_shows_the_first_item():
    names = ["R&D" * 10, "Q&A"]

    shown = listing(names, 30, render=escape)

    assert shown.startswith("R&amp;D") and shown.endswith(", … and 1 more")
    assert len(shown) <= 30


def test_lines_are_packed_into_sections_in_order():
    lines = [f"line {i} " + "x" * 990 for i in range(7)]

    texts = pack(lines)

    assert [len(t) <= SECTION_TEXT for t in texts] == [True] * 3
    assert "\n".join(texts).split("\n") == lines
    assert pack(["a" * 4000]) == ["a" * (SECTION_TEXT - 1) + "…"]


def test_every_section_and_context_stays_within_slacks_limit():
    assert len(section("&amp;" * 1000)["text"]["text"]) <= SECTION_TEXT
    assert len(context("x" * 5000)["elements"][0]["text"]) <= 3000
    assert code("&" * 100, limit=20) == "`&amp;&amp;&amp;…`"


@pytest.mark.parametrize(
    ("fields", "described"),
    [
        ({"segments": ["Active Users"]}, "segment Active Users"),
        (
            {"segments": ["Active Users", "VIP"], "excluded": ["Churned"]},
            "segments Active Users, VIP (excluding segment Churned)",
        ),
        ({"external_ids": ["a", "b", "c"]}, "3 users: a, b, c"),
        (
            {"external_ids": [f"u{i}" for i in range(5000)]},
            "5,000 users: u0, u1, u2, … and 4,997 more",
        ),
        ({"segments": ["R&D"]}, "segment R&amp;D"),
    ],
)
def test_an_audience_reads_as_words(fields, described):
    assert sends.audience_text(**fields) == described


def test_thirty_long_segments_are_counted_within_the_audience_budget():
    names = [f"Segment {i:02d} " + "x" * 89 for i in range(30)]

    described = sends.audience_text(names, excluded=names[:10])

    assert described.startswith("30 segments: Segment 00 ")
    assert "(excluding 10 segments: Segment 00 " in described
    assert len(described) <= sends.AUDIENCE_SHOWN


def test_a_failure_reason_is_escaped_and_bounded():
    reason = "&" * 10_000

    assert len(sends.reason_text(reason)) <= sends.REASON_SHOWN
    assert sends.reason_text("a < b") == "a &lt; b"


def test_role_holders_are_summarized_in_the_home_and_listed_in_the_form():
    users = tuple(f"U{i:09d}" for i in range(400))
    members = {Role.SENDER: users, Role.APPROVER: ("S0OPS",)}

    text = setup.roles_text(members)
    form = setup.holders_blocks(members)

    assert len(text) <= SECTION_TEXT
    assert "Senders (400; *Change* lists them all): <@U000000000>, " in text
    assert "Approvers: <!subteam^S0OPS>" in text
    shown = "".join(b["text"]["text"] for b in form)
    assert all(f"<@{u}>" in shown for u in users)
    assert all(len(b["text"]["text"]) <= SECTION_TEXT for b in form)


def test_onesignal_counts_a_long_list_of_ids_it_did_not_find():
    ids = [f"ghost-{i}" for i in range(3000)]

    [line] = normalize_errors({"invalid_aliases": {"external_id": ids}})

    assert line.startswith("invalid_aliases: external_id: 3,000 ids were not found; first 20: ")
    assert line.endswith("ghost-18, ghost-19")
    assert normalize_errors({"notes": list(range(25))})[0].startswith("notes: 25 items; first 20")
