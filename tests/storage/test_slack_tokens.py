"""Slack tokens in OAuth mode (bot.installations): encrypted for their workspace, rotated."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore

from bot.installations import EncryptedInstallationStore
from storage.crypto import KeyRing, SecretDecryptionError, generate_key, key_id_of
from storage.db import Database
from storage.models import SLACK_BOTS, SLACK_INSTALLATIONS
from storage.rotation import rotate_secrets
from tests.plugins.database import register_secret


def _installation(team_id: str, bot_token: str) -> Installation:
    return Installation(
        app_id="A0PUSHOPS",
        team_id=team_id,
        team_name="Acme",
        bot_token=bot_token,
        bot_id="B0BOT",
        bot_user_id="U0BOT",
        bot_scopes=["commands", "chat:write"],
        bot_refresh_token=register_secret(f"xoxe-1-refresh-{team_id}-0123456789"),
        user_id="U0INSTALLER",
    )


@pytest.fixture
def store(database: Database, keyring: KeyRing) -> EncryptedInstallationStore:
    return _store(database, keyring)


def _store(database: Database, keyring: KeyRing) -> EncryptedInstallationStore:
    inner = AsyncSQLAlchemyInstallationStore(client_id="111.222", engine=database.engine)
    return EncryptedInstallationStore(inner, keyring)


async def _raw(database: Database, table: sa.Table, team_id: str) -> Any:
    async with database.engine.connect() as connection:
        return (await connection.execute(sa.select(table).where(table.c.team_id == team_id))).one()


async def test_tokens_are_stored_encrypted_and_read_back_plain(database, store, keyring):
    token = register_secret("xoxb-1111-2222-abcdefghijklmnop")
    await store.async_save(_installation("T0000TEST", token))

    bot = await store.async_find_bot(enterprise_id=None, team_id="T0000TEST")
    installation = await store.async_find_installation(enterprise_id=None, team_id="T0000TEST")

    assert bot is not None and bot.bot_token == token
    assert installation is not None and installation.bot_token == token
    assert installation.bot_refresh_token.startswith("xoxe-1-refresh-")
    for table in (SLACK_INSTALLATIONS, SLACK_BOTS):
        row = await _raw(database, table, "T0000TEST")
        assert key_id_of(row.bot_token) == keyring.primary_key_id
        assert token not in row.bot_token and "xoxe" not in row.bot_refresh_token


async def test_a_token_copied_to_another_workspace_does_not_decrypt(database, store):
    await store.async_save(
        _installation("T0000TEST", register_secret("xoxb-1111-aaaaaaaaaaaaaaaa"))
    )
    await store.async_save(
        _installation("T0000OTHER", register_secret("xoxb-2222-bbbbbbbbbbbbbbbb"))
    )
    mine = await _raw(database, SLACK_BOTS, "T0000TEST")
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(SLACK_BOTS)
            .where(SLACK_BOTS.c.team_id == "T0000OTHER")
            .values(bot_token=mine.bot_token)
        )

    with pytest.raises(SecretDecryptionError, match="slack_bot_token of workspace T0000OTHER"):
        await store.async_find_bot(enterprise_id=None, team_id="T0000OTHER")


async def test_rotation_re_encrypts_slack_tokens(database, store, secret_key):
    token = register_secret("xoxb-3333-cccccccccccccccc")
    await store.async_save(_installation("T0000TEST", token))
    new_key = register_secret(generate_key())

    report = await rotate_secrets(
        session_factory=database.sessions,
        keyring=KeyRing.from_text(f"{new_key},{secret_key}"),
        actor="cli:test",
    )

    assert report.ok and report.reencrypted == 4  # bot + refresh token, in both tables
    only_new = _store(database, KeyRing.from_text(new_key))
    bot = await only_new.async_find_bot(enterprise_id=None, team_id="T0000TEST")
    assert bot is not None and bot.bot_token == token
