"""The one-line grammar of /push send: what it reads, and each refusal naming its fix."""

import pytest

from commands._parsing import split_words
from commands.context import CommandError
from commands.send.grammar import SendRequest, parse_send


def parse(text: str) -> SendRequest:
    return parse_send(split_words(text))


def test_every_option_is_read():
    request = parse(
        '--app shop --title "Big news" --segment "Active Users" --segment Beta '
        "--exclude Churned --url https://e.example --image https://e.example/i.png "
        "--at 09:00 --yes Version 2 is out"
    )

    assert request.app == "shop" and request.title == "Big news"
    assert request.segments == ("Active Users", "Beta") and request.excluded == ("Churned",)
    assert request.url == "https://e.example" and request.image == "https://e.example/i.png"
    assert request.at == "09:00" and request.in_ is None
    assert request.yes and not request.test
    assert request.message == "Version 2 is out"


def test_users_split_on_commas_and_repeat():
    request = parse("--user a,b --user c,a --in 10m hi")

    assert request.external_ids == ("a", "b", "c") and request.in_ == "10m"


def test_a_test_send_needs_no_audience():
    request = parse("--test hello me")

    assert request.test and request.segments == () and request.message == "hello me"


def test_a_message_starting_with_dashes_after_a_lone_double_dash():
    assert parse("--segment Beta -- --not-an-option").message == "--not-an-option"


@pytest.mark.parametrize(
    ("text", "problem", "fix"),
    [
        ("hello", "No audience", "--segment NAME or --user ID"),
        ("--segment Beta", "The message is empty", "Put the text after the options"),
        ('--segment Beta "  "', "The message is empty", "Put the text after the options"),
        ("--segment Beta --user a hi", "not both", "--segment or --user"),
        ("--exclude Churned --user a hi", "only narrows segments", "add --segment NAME"),
        ("--test --segment Beta hi", "only to your own", "remove --segment"),
        ("--user , hi", "--user needs external ids", "--user cust-1,cust-2"),
        ('--segment "" hi', "--segment is empty", "--segment NAME, in quotes if it has spaces"),
        ("--segment Beta --colour red hi", "Unknown option --colour", "Usage: /push send"),
        ("--segment Beta --title", "--title needs a value", "Usage: /push send"),
        ("--segment Beta --yes=1 hi", "--yes takes no value", "Usage"),
    ],
)
def test_refusals_name_the_problem_and_the_fix(text, problem, fix):
    with pytest.raises(CommandError) as raised:
        parse(text)

    assert problem in str(raised.value) and fix in str(raised.value)
