"""The help text covers the whole grammar of the slash command."""

from bot import const
from commands import SUBCOMMANDS, help
from commands.send import grammar


def test_help_lists_every_subcommand_in_order():
    text = help.help_text()

    positions = [text.index(f"/push {name}") for name in const.SUBCOMMANDS]
    assert positions == sorted(positions)


def test_help_lists_every_send_option():
    text = help.help_text()
    options = {*grammar.FLAGS, *grammar.SINGLE, *grammar.REPEATABLE}
    # one line stands for the options of every language
    shown = {o for o in options if not o.startswith(grammar.LANGUAGE_PREFIXES)}

    for option in sorted(shown | {"--text-XX", "--title-XX"}):
        assert option in text, option
    assert "--when-active" in text and '--button "Label|URL"' in text


def test_help_blocks_escape_and_fit_in_a_section():
    blocks = help.help_blocks("I don't know `/push <x>`")

    grammar = blocks[1]["text"]["text"]
    assert len(grammar) <= 3000  # Slack's limit for a section's text
    assert blocks[-1]["elements"][0]["action_id"] == const.ACTION_DISMISS


def test_the_routed_subcommands_are_the_contract():
    # Every name /push help lists is routed, so an unrouted name is one nobody can use.
    assert {sub.name for sub in SUBCOMMANDS} == set(const.SUBCOMMANDS)
