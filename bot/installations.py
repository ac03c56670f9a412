"""Slack installations (multi-workspace mode) with their tokens encrypted at rest.

slack_sdk's SQLAlchemy store keeps tokens as given; this wrapper seals each token with the
key ring before it is written and opens it after it is read, bound to its workspace and its
column (storage.crypto), so a token copied into another workspace's row does not decrypt.
`pushops keys rotate` (storage.rotation) re-encrypts these rows under a new key.

Given the database, an installation also makes (or refreshes) its workspace's row with the
workspace's name and Enterprise Grid org, which the bot needs to find its token again later.

`ExpiringOAuthStateStore`: slack_sdk's state store deletes a state only when it is used, so
every visit of `/slack/install` (no sign-in needed) would leave a row forever; ours deletes the
expired ones each time it issues a new one.
"""

from __future__ import annotations

import copy
from logging import Logger, getLogger
from typing import Any, TypeVar

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

from storage import workspaces
from storage.crypto import KeyRing, key_id_of
from storage.db import Database
from storage.models import SLACK_TOKEN_COLUMNS, utcnow
from storage.oauth_states import delete_expired_states

_Record = TypeVar("_Record", Bot, Installation)


class ExpiringOAuthStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's SQLAlchemy state store whose expired states go when a new one is issued."""

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """Delete the expired states, then issue a new one."""
        await delete_expired_states(engine=self.engine, now=utcnow())
        state: str = await super().async_issue(*args, **kwargs)
        return state


class EncryptedInstallationStore(AsyncInstallationStore):
    """Wraps an installation store: tokens are ciphertexts in it, plaintext out of it."""

    def __init__(
        self, inner: AsyncInstallationStore, keyring: KeyRing, *, database: Database | None = None
    ) -> None:
        self._inner = inner
        self._keyring = keyring
        self._database = database

    @property
    def logger(self) -> Logger:
        return getLogger(__name__)

    async def async_save(self, installation: Installation) -> None:
        """Save `installation` (and its bot) with every token sealed; record its workspace."""
        await self._inner.async_save(self._sealed(installation))
        await self._record_workspace(installation)

    async def async_save_bot(self, bot: Bot) -> None:
        """Save `bot` with its tokens sealed."""
        await self._inner.async_save_bot(self._sealed(bot))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The workspace's bot with its tokens opened, or None."""
        bot = await self._inner.async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._opened(bot) if bot is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The workspace's installation with its tokens opened, or None."""
        found = await self._inner.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._opened(found) if found is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the workspace's bot (after `tokens_revoked` or `app_uninstalled`)."""
        await self._inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Forget the workspace's installation (or one user's)."""
        await self._inner.async_delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget everything of the workspace."""
        await self._inner.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def _record_workspace(self, installation: Installation) -> None:
        # An org-wide install names no workspace: each one's row gets its org from its first
        # request instead (commands pass the request's enterprise_id to ensure_workspace).
        if self._database is None or not installation.team_id:
            return
        async with self._database.sessions.begin() as session:
            await workspaces.ensure_workspace(
                session=session,
                team_id=installation.team_id,
                name=installation.team_name,
                enterprise_id=installation.enterprise_id,
            )

    def _sealed(self, record: _Record) -> _Record:
        owner = _owner(record)
        sealed = copy.copy(record)
        for column, purpose in SLACK_TOKEN_COLUMNS.items():
            value: Any = getattr(record, column, None)
            if isinstance(value, str) and value and key_id_of(value) is None:
                setattr(
                    sealed, column, self._keyring.encrypt(value, team_id=owner, purpose=purpose)
                )
        return sealed

    def _opened(self, record: _Record) -> _Record:
        owner = _owner(record)
        for column, purpose in SLACK_TOKEN_COLUMNS.items():
            value: Any = getattr(record, column, None)
            # Rows written before encryption existed stay readable (rotation leaves them too).
            if isinstance(value, str) and key_id_of(value) is not None:
                plain = self._keyring.decrypt(value, team_id=owner, purpose=purpose)
                setattr(record, column, plain.get_secret_value())
        return record


def _owner(record: Bot | Installation) -> str:
    """The id tokens are bound to, as storage.rotation reads it back."""
    return record.team_id or record.enterprise_id or ""
