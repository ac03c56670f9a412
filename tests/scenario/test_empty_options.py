"""An option given with nothing after it (`--app ""`, `--title=`) is refused with a message that
names the option and the fix, in every subcommand that takes options, and nothing is written."""

import pytest

from tests.scenario.sendkit import (
    SEGMENT,
    all_sends,
    audit_actions,
    serve_sending,
    settings,
    text_of,
)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


@pytest.mark.parametrize(
    ("text", "option", "takes"),
    [
        (f'send --yes --app "" --segment "{SEGMENT}" Hi', "--app", "NAME"),
        (f'send --yes --title= --segment "{SEGMENT}" Hi', "--title", "TEXT"),
        (f'send --yes --title "   " --segment "{SEGMENT}" Hi', "--title", "TEXT"),
        ('send --yes --segment "" Hi', "--segment", "NAME"),
        ('user cust-4711 --app ""', "--app", "NAME"),
        ("user cust-4711 --app=", "--app", "NAME"),
        ('list --app ""', "--app", "NAME"),
    ],
)
async def test_an_empty_option_value_is_refused_by_name(
    app, fake_onesignal, database, text, option, takes
):
    before = await audit_actions(database)

    reply = await (await app.post_command(text)).reply()

    answer = text_of(reply)
    assert reply["response_type"] == "ephemeral"
    assert answer.startswith(f"{option} is empty."), answer
    assert f"Give it a value ({option} {takes}, in quotes" in answer
    assert f"or leave {option} out" in answer and "Usage:" in answer
    assert await all_sends(database) == []
    assert await audit_actions(database) == before
    assert fake_onesignal.requests == []
