"""No secret in a log line: the suite-wide guard, and the storage paths under SQL echo."""

from __future__ import annotations

import logging

import pytest

from storage import workspaces
from storage.crypto import SecretDecryptionError
from storage.models import OneSignalApp
from tests.plugins.database import OTHER_TEAM, fake_api_key, find_leaks


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("bot.test", logging.INFO, __file__, 1, message, args, None)


def test_the_guard_finds_a_secret_in_a_message_or_its_arguments():
    secret = "os_v2_app_leakyleakyleaky"
    records = [_record("fine"), _record("key=%s", secret), _record(f"header Key {secret}")]

    leaks = find_leaks(records, {secret})

    assert leaks == ["bot.test: key=<secret>", "bot.test: header Key <secret>"]


async def test_keys_stay_out_of_logs_even_with_sql_echo(database, run_cli, storage_factory, caplog):
    # SQL echo logs every statement with its parameters: only ciphertexts may appear there.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    key = fake_api_key()
    app_id = "6f1c2d3e-0000-4000-8000-00000000abcd"

    added = await run_cli(
        *("apps", "add", "--team", "T0000TEST", "--name", "main", "--app-id", app_id),
        "--no-verify",
        env={"ONESIGNAL_API_KEY": key},
    )
    listed = await run_cli("apps", "list")
    async with database.sessions() as session:
        credentials = await workspaces.get_app_credentials(
            session=session, keyring=storage_factory.keyring, team_id="T0000TEST"
        )
        mine = await workspaces.get_app(session=session, team_id="T0000TEST")
    assert mine is not None
    misplaced = OneSignalApp(
        team_id=OTHER_TEAM, name="x", api_key_ciphertext=mine.api_key_ciphertext
    )
    with pytest.raises(SecretDecryptionError) as caught:
        workspaces.decrypt_app_key(misplaced, keyring=storage_factory.keyring)
    logging.getLogger("storage.test").warning(
        "%r %s %s", credentials, credentials.api_key, caught.value
    )

    assert added.code == listed.code == 0
    assert credentials.api_key.get_secret_value() == key
    assert any("INSERT INTO onesignal_apps" in record.getMessage() for record in caplog.records)
    assert find_leaks(caplog.records, {key}) == []
