"""Splitting /push text like a shell, and reading --options, with clear refusals."""

import pytest

from commands._parsing import parse_options, split_command, split_words, unescape_slack
from commands.context import CommandError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("", ())),
        ("   ", ("", ())),
        ("HELP", ("help", ())),
        (
            'send --title "Big news" Hello world',
            ("send", ("--title", "Big news", "Hello", "world")),
        ),
        ("send 'single quoted'", ("send", ("single quoted",))),
        ('send "it\'s here"', ("send", ("it's here",))),
        ("send “curly quotes” too", ("send", ("curly quotes", "too"))),
        ("cancel 7K3M9Q", ("cancel", ("7K3M9Q",))),
    ],
)
def test_split_command(text, expected):
    assert split_command(text) == expected


def test_an_unclosed_double_quote_is_named():
    with pytest.raises(CommandError, match='has a " that is never closed'):
        split_words('send "Hello there')


def test_an_apostrophe_outside_quotes_gets_the_fix():
    with pytest.raises(CommandError) as caught:
        split_words("send --segment Beta Don't miss it")
    assert "has a ' that is never closed" in str(caught.value)
    assert "needs the whole message in double quotes" in str(caught.value)


def test_a_trailing_backslash_is_named():
    with pytest.raises(CommandError, match="ends with a backslash"):
        split_words("send hello \\")


def test_slack_entities_are_unescaped():
    assert unescape_slack("a &lt;b&gt; &amp;amp; c") == "a <b> &amp; c"


def test_options_single_repeatable_flags_and_positional():
    words = split_words(
        '--yes --title "Hi there" --segment A --segment=B hello world --url https://x.test/?a=1'
    )

    options = parse_options(
        words, flags={"--yes"}, single={"--title", "--url"}, repeatable={"--segment"}
    )

    assert options.has("--yes")
    assert options.one("--title") == "Hi there"
    assert options.many("--segment") == ("A", "B")
    assert options.one("--url") == "https://x.test/?a=1"
    assert options.positional == ("hello", "world")
    assert options.one("--app") is None


def test_a_lone_double_dash_ends_the_options():
    options = parse_options(["--title", "T", "--", "--not-an-option", "text"], single={"--title"})

    assert options.positional == ("--not-an-option", "text")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--colour", "red"], "Unknown option --colour."),
        (["--title"], "--title needs a value after it."),
        (["--title", "a", "--title", "b"], "--title is given twice; give it once."),
        (["--yes=1"], "--yes takes no value."),
        (["--title", ""], "--title is empty. Give it a value (--title TEXT, in quotes"),
        (["--title="], "--title is empty. Give it a value"),
        (["--title", "  "], "--title is empty. Give it a value"),
    ],
)
def test_option_mistakes_are_named_with_the_usage(words, message):
    with pytest.raises(CommandError) as caught:
        parse_options(
            words, flags={"--yes"}, single={"--title"}, usage="/push send [options] MESSAGE"
        )

    assert str(caught.value).startswith(message)
    assert str(caught.value).endswith("Usage: /push send [options] MESSAGE")
