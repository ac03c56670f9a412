"""What a send may say and to whom: every refusal names its field, the problem and the fix."""

from __future__ import annotations

import pytest

from bot.delivery import MAX_EXTERNAL_IDS, MAX_TEXT_BYTES, Audience, SendContent, SendRejected


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"message": "   "}, "message", "The message is empty"),
        ({"message": "x" * (MAX_TEXT_BYTES + 1)}, "message", "Shorten it by 1 bytes"),
        ({"message": "é" * 1000, "title": "ü" * 800}, "message", "3,600 bytes"),
        ({"message": "Hi", "url": "ftp://example.com/x"}, "url", "not a web address"),
        ({"message": "Hi", "url": "https://exa mple.com"}, "url", "without spaces"),
        ({"message": "Hi", "url": "https://e.com/" + "a" * 2048}, "url", "Use a shorter link"),
        ({"message": "Hi", "image": "cat.png"}, "image", "image link 'cat.png'"),
        ({"message": 5}, "message", "The message must be text"),
        ({}, "message", "The message is empty"),  # a template may give it; none here
        ({"message": "Hi", "languages": {"xx": {"message": "?"}}}, "language", "ar, bs, bg"),
        (
            {"template": {"id": "t1", "name": "Blank"}, "languages": {"de": {"message": "Hallo"}}},
            "message",
            "English is required",
        ),
    ],
)
def test_content_refusals_name_the_field_and_the_fix(fields, field, words):
    with pytest.raises(SendRejected) as caught:
        SendContent(**fields)

    assert caught.value.field == field
    assert words in str(caught.value)


def test_content_is_trimmed_and_maps_to_onesignal_fields():
    content = SendContent(
        message="  Release 2.0 is out ",
        title=" ",
        url="https://example.com/notes",
        image="https://example.com/i.png",
    )

    assert content.title is None
    assert content.notification_fields() == {
        "contents": {"en": "Release 2.0 is out"},
        "url": "https://example.com/notes",
        "big_picture": "https://example.com/i.png",
        "chrome_web_image": "https://example.com/i.png",
        "ios_attachments": {"image": "https://example.com/i.png"},
    }


def test_content_stored_with_onesignal_names_is_read_back():
    stored = {"contents": {"en": "Hello"}, "headings": {"en": "Hi"}}

    assert SendContent.from_stored(stored) == SendContent(message="Hello", title="Hi")


def test_a_misspelt_field_is_a_programming_error_not_a_user_error():
    with pytest.raises(TypeError):
        SendContent(message="Hi", text="oops")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({}, "No audience: add --segment NAME or --user ID"),
        ({"segments": ["A"], "external_ids": ["u1"]}, "Choose segments or users, not both"),
        ({"excluded_segments": ["Churned"]}, "Excluded segments need an included one"),
        ({"segments": ["A"], "excluded_segments": ["A"]}, "A is both included and excluded"),
        ({"segments": [" "]}, "A segment name is empty"),
        ({"segments": ["s" * 129]}, "the limit is 128"),
        ({"external_ids": ["u" * 129]}, "the limit is 128"),
        (
            {"external_ids": [f"u{i}" for i in range(MAX_EXTERNAL_IDS + 1)]},
            "one send reaches at most 20,000 by id",
        ),
    ],
)
def test_audience_refusals_say_how_to_fix_them(fields, words):
    with pytest.raises(SendRejected) as caught:
        Audience(**fields)

    assert caught.value.field == "audience"
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "described"),
    [
        ({"segments": ["Active Users"]}, "segment Active Users"),
        (
            {"segments": ["Active Users", "VIP"], "excluded_segments": ["Churned"]},
            "segments Active Users, VIP (excluding Churned)",
        ),
        ({"external_ids": ["a"]}, "1 user: a"),
        ({"external_ids": ["a", "b", "c"]}, "3 users: a, b, c"),
        (
            {"external_ids": [f"u{i}" for i in range(5000)]},
            "5,000 users: u0, u1, u2 and 4,997 more",
        ),
    ],
)
def test_an_audience_describes_itself(fields, described):
    assert Audience(**fields).describe() == described


def test_repeated_ids_count_once():
    audience = Audience(external_ids=["a", " a", "b", "a"])

    assert audience.external_ids == ("a", "b")
    assert audience.by_id
