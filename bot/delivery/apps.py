"""OneSignal clients per configured app, sharing one connection pool, with keys kept briefly.

Decrypting an app's key costs a database read and an AES-GCM open; a burst of sends of one
app would pay it per send. The decrypted key lives here for `DeliveryPolicy.credentials_ttl`
seconds (inside a `SecretStr`, so it never shows in a repr) and is dropped when OneSignal
refuses it, so a key replaced with `pushops apps add --replace` is picked up at once. The
row of the app a new send names is kept here too, for `APP_TTL` seconds (`resolve`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from bot.cache import Expiring
from bot.delivery.content import SendRejected
from bot.delivery.outcomes import DeliveryPolicy
from bot.onesignal import OneSignalClient, RetryPolicy
from bot.onesignal_clients import OneSignalClients
from storage import workspaces
from storage.crypto import KeyRing, SecretDecryptionError
from storage.db import Database
from storage.errors import AppNotFound
from storage.models import OneSignalApp

APP_TTL: Final = 5.0
"""Seconds an app's row found by name is kept for new sends (see `AppClients.resolve`)."""


class AppUnavailable(Exception):
    """The send's app cannot be used (removed, or its key cannot be decrypted); says why."""


@dataclass(frozen=True)
class AppClient:
    """A client ready for one app: OneSignal's app id, our name and id for it, the client."""

    app_ref: uuid.UUID
    name: str
    onesignal_app_id: str
    client: OneSignalClient


class AppClients:
    """One `OneSignalClient` per (workspace, app), made by `clients`, kept for a while."""

    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        clients: OneSignalClients,
        policy: DeliveryPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._keyring = keyring
        self._clients = clients
        self._retries = RetryPolicy(
            policy.client_retries, policy.client_retry_delay, policy.client_retry_max_delay
        )
        self._ttl = policy.credentials_ttl
        # One lookup per app at a time (`Expiring.get`): a burst of due sends of one app must
        # not each read and decrypt its key while the first lookup is still on its way.
        self._cache: Expiring[tuple[str, uuid.UUID], AppClient] = Expiring(clock=clock)
        # (team, app name or None for the default) -> the app's row; see `resolve`
        self._rows: Expiring[tuple[str, str | None], OneSignalApp] = Expiring()

    async def resolve(
        self, session: AsyncSession, team_id: str, app_name: str | None
    ) -> OneSignalApp:
        """The row of the app a new send names (the default app when None), in the caller's
        transaction; `SendRejected(field="app")`, naming the apps there are, when none is."""
        # Kept a few seconds: every send asks, before its ack, and apps rarely change. /push
        # setup forgets them at once (`forget_team`); another replica's change shows within
        # APP_TTL, and a send to an app removed meanwhile fails at delivery, saying why.
        # The read is in the caller's transaction, so it is not an `Expiring.get` load (a task
        # of its own, which could outlive the session).
        found, kept = self._rows.peek((team_id, app_name))
        if found and kept is not None:
            return kept
        app = await workspaces.get_app(session=session, team_id=team_id, name=app_name)
        if app is not None:
            # Out of the session that read it: a rollback of that transaction (a store that
            # found the database busy) would expire the row kept for every later send, and a
            # concurrent transaction would find it unreadable.
            session.expunge(app)
            self._rows.put((team_id, app_name), app, APP_TTL)
            return app
        names = [a.name for a in await workspaces.list_apps(session=session, team_id=team_id)]
        if not names:
            raise SendRejected(
                "app",
                "No OneSignal app is set up in this workspace yet; an admin can add one "
                "with /push setup.",
            )
        if app_name is None:
            raise SendRejected(
                "app",
                f"This workspace has no default app; add --app with one of: {', '.join(names)}.",
            )
        raise SendRejected(
            "app", f"There is no app {app_name!r} here; use --app with one of: {', '.join(names)}."
        )

    async def for_app(self, team_id: str, app_ref: uuid.UUID | None, app_name: str) -> AppClient:
        """The client of the app `app_ref` of the workspace; AppUnavailable when it is gone."""
        if app_ref is None:
            raise AppUnavailable(_removed(app_name))

        async def load() -> tuple[AppClient, float]:
            async with self._database.sessions() as session:
                app = await workspaces.get_app_by_id(
                    session=session, team_id=team_id, app_ref=app_ref
                )
            if app is None:
                raise AppUnavailable(_removed(app_name))
            return self._client_of(app), self._ttl

        return await self._cache.get((team_id, app_ref), load)

    async def by_name(self, team_id: str, name: str | None) -> AppClient:
        """The client of the app named `name` (the default app when None); AppNotFound if none."""
        async with self._database.sessions() as session:
            app = await workspaces.get_app(session=session, team_id=team_id, name=name)
        if app is None:
            raise AppNotFound(team_id, name)
        return self._remember(app)

    async def all_of(self, team_id: str) -> list[AppClient]:
        """Clients of every app of the workspace, default first (for a bare OneSignal id)."""
        async with self._database.sessions() as session:
            apps = await workspaces.list_apps(session=session, team_id=team_id)
        clients = []
        for app in apps:
            try:
                clients.append(self._remember(app))
            except AppUnavailable:
                continue
        return clients

    def forget(self, team_id: str, app_ref: uuid.UUID | None) -> None:
        """Drop a cached key (OneSignal refused it: it may have been replaced)."""
        if app_ref is not None:
            self._cache.forget((team_id, app_ref))

    def forget_team(self, team_id: str) -> None:
        """Drop every cached key and row of the workspace (its apps changed)."""
        self._cache.forget_where(lambda key: key[0] == team_id)
        self._rows.forget_where(lambda key: key[0] == team_id)

    def _remember(self, app: OneSignalApp) -> AppClient:
        ready = self._client_of(app)
        self._cache.put((app.team_id, app.id), ready, self._ttl)
        return ready

    def _client_of(self, app: OneSignalApp) -> AppClient:
        try:
            key = workspaces.decrypt_app_key(app, keyring=self._keyring)
        except SecretDecryptionError:
            raise AppUnavailable(
                f"The key of the OneSignal app {app.name!r} cannot be decrypted with this "
                "PUSHOPS_SECRET_KEY; an admin can add the app again with /push setup."
            ) from None
        client = self._clients.client(key, retries=self._retries)
        return AppClient(app.id, app.name, app.onesignal_app_id, client)


def _removed(app_name: str) -> str:
    return (
        f"The OneSignal app {app_name!r} was removed from PushOps; add it again with "
        "/push setup, then send again."
    )
