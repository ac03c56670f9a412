"""A database that refuses writes, through the real door: `/readyz` answers 503 meanwhile.

The database refuses for real (triggers on every table, see `tests.scenario.busy`), on SQLite
and on PostgreSQL alike.
"""

import pytest

from tests.scenario.busy import refusing_writes
from tests.scenario.sendkit import serve_sending, settings


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def test_readyz_is_503_while_the_database_refuses_writes_and_200_after(app, database):
    before = await app.http.get("/readyz")
    async with refusing_writes(database):
        during = await app.http.get("/readyz")
    after = await app.http.get("/readyz")

    assert before.status_code == 200
    assert during.status_code == 503
    assert during.json() == {"status": "unavailable", "reason": "WriteRefused"}
    assert after.status_code == 200 and after.json() == {"status": "ready"}
