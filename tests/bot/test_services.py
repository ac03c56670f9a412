"""Background work after the ack: held until done, waited for at shutdown, then cancelled."""

import asyncio
import logging

from bot.services import BackgroundTasks, build_services
from bot.settings import Settings
from storage.crypto import KEY_FILE_NAME, load_keyring
from tests.plugins.database import register_secret


async def test_drain_waits_for_quick_work_and_cancels_what_outlives_the_grace():
    tasks = BackgroundTasks()
    quick = tasks.spawn(asyncio.sleep(0.01, result="done"))
    stuck = tasks.spawn(asyncio.Event().wait())

    await tasks.drain(0.2)

    assert quick.result() == "done"
    assert stuck.cancelled()
    assert len(tasks) == 0


async def test_a_finished_task_is_no_longer_held():
    tasks = BackgroundTasks()

    await tasks.spawn(asyncio.sleep(0))

    assert len(tasks) == 0


async def test_without_pushops_secret_key_every_start_warns_that_the_key_sits_with_the_data(
    tmp_path, caplog, sqlite_database
):
    caplog.set_level(logging.WARNING, logger="bot.services")
    settings = Settings(_env_file=None, PUSHOPS_DATA_DIR=str(tmp_path))
    for _ in range(2):  # the key file exists from the first start on: warned all the same
        keyring = load_keyring(secret_key=None, data_dir=tmp_path)
        register_secret((tmp_path / KEY_FILE_NAME).read_text().strip())
        caplog.clear()
        services = build_services(settings, database=sqlite_database, keyring=keyring)
        await services.start()
        await services.aclose()

        assert "PUSHOPS_SECRET_KEY is not set" in caplog.text
        assert str(tmp_path / KEY_FILE_NAME) in caplog.text
        assert "a copy of the data directory carries both" in caplog.text


async def test_with_pushops_secret_key_a_start_does_not_warn(
    tmp_path, caplog, secret_key, sqlite_database
):
    caplog.set_level(logging.WARNING, logger="bot.services")
    settings = Settings(
        _env_file=None, PUSHOPS_DATA_DIR=str(tmp_path), PUSHOPS_SECRET_KEY=secret_key
    )
    keyring = load_keyring(secret_key=settings.secret_key, data_dir=tmp_path)

    services = build_services(settings, database=sqlite_database, keyring=keyring)
    await services.start()
    await services.aclose()

    assert "PUSHOPS_SECRET_KEY" not in caplog.text
