"""A recurring send from the compose form: Repeat, Repeat until and When make a series, stored
once and confirmed where the form was opened; a bad Repeat comes back under its field and
nothing is stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot import const
from commands.views.compose import WHEN_AT, WHEN_IN, WHEN_NOW
from storage.models import Series, SeriesState, utcnow
from tests.scenario.sendkit import ALICE, all_sends, serve_sending, settings, text_of
from tests.scenario.test_send_form import FIELD, submit, values


@pytest.fixture
def database(sqlite_database):
    """The form's logic does not depend on the backend: SQLite only."""
    return sqlite_database


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


def repeating(every: str | None, ends: str | None = None, **fields: Any) -> dict[str, Any]:
    """The form's values with Repeat and Repeat until filled in."""
    filled = values(**fields)
    filled[const.BLOCK_COMPOSE_EVERY] = {FIELD: {"type": "plain_text_input", "value": every}}
    filled[const.BLOCK_COMPOSE_ENDS] = {FIELD: {"type": "plain_text_input", "value": ends}}
    return filled


async def _series(database: Any) -> list[Series]:
    async with database.sessions() as session:
        return list(await session.scalars(sa.select(Series)))


async def test_repeat_with_a_first_time_stores_a_series_and_confirms_it(app, fake_slack, database):
    first = utcnow().replace(second=0, microsecond=0) + timedelta(days=2)

    response = await submit(
        app, repeating("week", "3 times", when=WHEN_AT, at=int(first.timestamp()))
    )

    assert response.status_code == 200 and response.text == ""
    [series] = await _series(database)
    assert series.state == SeriesState.ACTIVE and series.times == 3 and series.next_at == first
    answer = await fake_slack.wait_for("chat.postEphemeral")
    assert answer.args["channel"] == "C0GENERAL" and answer.args["user"] == ALICE
    text = text_of(answer.args)
    weekday = first.astimezone(ZoneInfo("Europe/Berlin")).strftime("%A")
    assert f"Series `{series.short_id}`" in text and f"every {weekday} at" in text
    assert ", 3 times" in text
    assert await all_sends(database) == []


@pytest.mark.parametrize(
    ("filled", "block", "words"),
    [
        (repeating("30m"), const.BLOCK_COMPOSE_EVERY, "at most every hour"),
        (repeating("day", when=WHEN_NOW), const.BLOCK_COMPOSE_AT, "Pick the first time"),
        (repeating("6h", when=WHEN_IN, delay="2h"), const.BLOCK_COMPOSE_EVERY, "At a date"),
        (repeating("6h", "someday"), const.BLOCK_COMPOSE_ENDS, "--until needs a date"),
    ],
)
async def test_a_bad_repeat_comes_back_under_its_field_and_stores_nothing(
    app, fake_slack, database, filled, block, words
):
    response = await submit(app, filled)

    answer = response.json()
    assert answer["response_action"] == "errors" and words in answer["errors"][block]
    await asyncio.sleep(0.2)
    assert await _series(database) == [] and await all_sends(database) == []
    assert fake_slack.calls_to("chat.postEphemeral") == []
