"""slack_sdk's SQLAlchemy installation store with every Slack token encrypted for its workspace.

DESIGN.md invariant 7 covers Slack tokens in OAuth mode: this store is a drop-in replacement
for `AsyncSQLAlchemyInstallationStore` on our migrated tables. Tokens are sealed on the way in
and opened on the way out; values that are not our ciphertexts pass through untouched, so
rows written before (plaintext) still work and `pushops keys rotate` re-encrypts the rest.
"""

from __future__ import annotations

import copy
import logging
from typing import TypeVar

from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import KeyRing, key_id_of
from storage.models import SLACK_TOKEN_COLUMNS

_Record = TypeVar("_Record", Bot, Installation)


def token_owner(record: Bot | Installation) -> str:
    """The id a token is bound to: the team, or the enterprise for an org-wide install."""
    return record.team_id or record.enterprise_id or ""


class EncryptedInstallationStore(AsyncSQLAlchemyInstallationStore):
    """Installations and bots in `slack_installations`/`slack_bots`, tokens encrypted."""

    def __init__(
        self,
        *,
        client_id: str,
        engine: AsyncEngine,
        keyring: KeyRing,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(
            client_id=client_id, engine=engine, logger=logger or logging.getLogger(__name__)
        )
        self._keyring = keyring

    def _seal(self, record: _Record) -> _Record:
        sealed = copy.copy(record)
        for attribute, purpose in SLACK_TOKEN_COLUMNS.items():
            value = getattr(sealed, attribute, None)
            if value and key_id_of(value) is None:
                encrypted = self._keyring.encrypt(
                    value, team_id=token_owner(record), purpose=purpose
                )
                setattr(sealed, attribute, encrypted)
        return sealed

    def _open(self, record: _Record) -> _Record:
        for attribute, purpose in SLACK_TOKEN_COLUMNS.items():
            value = getattr(record, attribute, None)
            if value and key_id_of(value) is not None:
                plain = self._keyring.decrypt(value, team_id=token_owner(record), purpose=purpose)
                setattr(record, attribute, plain.get_secret_value())
        return record

    async def async_save(self, installation: Installation) -> None:
        """Save an installation (and its bot) with sealed tokens."""
        await super().async_save(self._seal(installation))

    async def async_save_bot(self, bot: Bot) -> None:
        """Save a bot with sealed tokens."""
        await super().async_save_bot(self._seal(bot))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The latest bot of the workspace, tokens decrypted."""
        bot = await super().async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._open(bot) if bot is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The latest installation of the workspace (or user), tokens decrypted."""
        installation = await super().async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._open(installation) if installation is not None else None
