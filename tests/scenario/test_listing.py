"""`/push list`: scheduled sends of this workspace only, soonest first, each with a Cancel button
that acts at once, then recent ones, latest first; `--app` keeps one app's."""

from datetime import timedelta
from typing import Any

import pytest

from bot import const
from storage import workspaces
from storage.models import SendState, utcnow
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import OTHER_TEAM
from tests.scenario.sendkit import (
    SEGMENT,
    all_sends,
    buttons,
    click,
    creates,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def _send(app: Any, options: str, message: str) -> None:
    sent = await app.post_command(f'send --yes {options} --segment "{SEGMENT}" "{message}"')
    await sent.reply()


async def test_the_list_shows_scheduled_sends_soonest_first_then_recent_ones_latest_first(
    app, database, storage_factory
):
    await _send(app, "", "First sent")
    await _send(app, "", "Second sent")
    await _send(app, "--in 2h", "Even later")
    await _send(app, "--in 1h", "Later one")
    first, second, even_later, later = await all_sends(database)
    await wait_for_state(database, second.short_id, SendState.SENT)
    theirs = await storage_factory.send(await storage_factory.app(OTHER_TEAM, make_default=True))

    sent = await app.post_command("list")

    reply = await sent.reply()
    text = text_of(reply)
    order = [text.index(s.short_id) for s in (later, even_later, second, first)]
    assert order == sorted(order)
    assert theirs.short_id not in text
    cancels = [b for b in reply["blocks"] if b.get("accessory", {}).get("action_id")]
    assert [b["accessory"]["value"] for b in cancels] == [str(later.id), str(even_later.id)]
    assert "Later one" in text and "scheduled" in text
    assert "*Scheduled sends*, soonest first" in text and "*Recent sends*, latest first" in text


async def test_one_send_of_each_kind_is_counted_in_the_singular(app, database):
    await _send(app, "", "Sent now")
    await _send(app, "--in 1h", "Later one")
    await wait_for_state(database, (await all_sends(database))[0].short_id, SendState.SENT)

    reply = await (await app.post_command("list")).reply()

    assert reply["text"] == "1 scheduled send, 1 recent send."


async def _scheduled(storage_factory: Any, app_row: Any, hours: float, message: str) -> Any:
    return await storage_factory.send(
        app_row,
        due_at=utcnow() + timedelta(hours=hours),
        content={"message": message},
        audience={"segments": [SEGMENT]},
    )


async def _default_app(database: Any) -> Any:
    async with database.sessions() as session:
        return await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")


async def test_the_soonest_sends_are_listed_however_many_are_scheduled(
    app, database, storage_factory
):
    default = await _default_app(database)
    soonest = await _scheduled(storage_factory, default, 1, "Soonest")  # created first
    others = [await _scheduled(storage_factory, default, 2 + i, f"Later {i}") for i in range(21)]

    sent = await app.post_command("list")

    reply = await sent.reply()
    cancels = [b["accessory"]["value"] for b in reply["blocks"] if b.get("accessory")]
    assert cancels == [str(s.id) for s in [soonest, *others[:19]]]
    assert others[-1].short_id not in text_of(reply)
    assert "These are the 20 soonest; more are due later. `/push status ID` shows any send." in (
        text_of(reply)
    )
    assert reply["text"] == "more than 20 scheduled sends, 0 recent sends."


async def test_a_list_that_fits_says_nothing_of_more(app, database, storage_factory):
    default = await _default_app(database)
    for i in range(20):
        await _scheduled(storage_factory, default, 1 + i, f"Later {i}")

    reply = await (await app.post_command("list")).reply()

    assert len([b for b in reply["blocks"] if b.get("accessory")]) == 20
    assert "These are the" not in text_of(reply)
    assert reply["text"] == "20 scheduled sends, 0 recent sends."


async def test_more_than_twenty_recent_sends_are_said_to_be_cut(app, database, storage_factory):
    default = await _default_app(database)
    for i in range(21):
        await storage_factory.send(default, state=SendState.SENT, content={"message": f"Sent {i}"})

    reply = await (await app.post_command("list")).reply()

    text = text_of(reply)
    assert (
        "These are the 20 latest; older ones are not shown. `/push status ID` shows any send."
        in (text)
    )
    assert "These are the 20 soonest" not in text
    assert reply["text"] == "0 scheduled sends, more than 20 recent sends."


async def test_list_of_one_app_is_filtered_before_it_is_cut(app, database, storage_factory):
    default = await _default_app(database)
    ours = await _scheduled(storage_factory, default, 3, "Of default")
    shop = await storage_factory.app(DEFAULT_TEAM_ID, name="shop")
    for i in range(20):  # created later, and due sooner
        await _scheduled(storage_factory, shop, 1, f"Of shop {i}")

    sent = await app.post_command("list --app default")

    reply = await sent.reply()
    cancels = [b["accessory"]["value"] for b in reply["blocks"] if b.get("accessory")]
    assert cancels == [str(ours.id)]
    assert "*Scheduled sends of app `default`*, soonest first" in text_of(reply)


async def test_cancel_in_the_list_acts_at_once_and_shows_the_list_again(
    app, fake_onesignal, database
):
    await _send(app, "--in 1h", "Later one")
    [send] = await all_sends(database)
    listed = await app.post_command("list")
    reply = await listed.reply()
    button = buttons(reply["blocks"])[const.ACTION_LIST_CANCEL]

    clicked = await click(app, const.ACTION_LIST_CANCEL, button["value"])

    told = await app.fake.wait_for_reply(clicked)
    assert f"Stopped `{send.short_id}` before it was sent" in told["text"]
    assert told["replace_original"] is False
    again = await app.fake.wait_for_reply(clicked, count=2)
    assert again["replace_original"] is True and "Nothing is scheduled." in text_of(again)
    [cancelled] = await all_sends(database)
    assert cancelled.state == SendState.CANCELLED and creates(fake_onesignal) == []


async def test_list_of_one_app_and_of_an_unknown_app(app, database):
    await _send(app, "--in 1h", "Later one")

    known = await app.post_command("list --app default")
    unknown = await app.post_command("list --app shop")

    assert "Later one" in text_of(await known.reply())
    reply = await unknown.reply()
    assert reply["text"].startswith(
        "There is no OneSignal app named `shop` here. Pick one with `--app NAME`: `default`.\n"
    )


async def test_an_empty_list_says_so(app):
    sent = await app.post_command("list")

    text = text_of(await sent.reply())
    assert "Nothing is scheduled." in text and "No sends yet." in text
