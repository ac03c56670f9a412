"""The workspace service: what a workspace keeps besides its sends, between `commands/` and
`storage/`.

Its OneSignal apps and their keys (add, replace, remove, the default), who holds which role,
the approval policy and log channel, each person's linked external id (`/push me`), and its
audit log (reading it, and writing refusals and user lookups). Every method is one transaction
(or one read) of its own, so no Slack handler opens a session; a change that sends depend on
is told to the send state machine at once (`Sends.forget_apps`, `forget_policy`).

The rows it hands up (`Workspace`, `OneSignalApp`, `Member`, `AuditEvent`) and the errors it
raises are re-exported here, so the Slack surface needs nothing from `storage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from bot.cache import Expiring
from bot.onesignal import OneSignalClient
from bot.onesignal_clients import PERSON_WAITING, OneSignalClients
from bot.policy import ApprovalPolicy, Role
from storage import lookups, workspaces
from storage.audit import append_audit, list_audit_events
from storage.crypto import KeyRing, SecretDecryptionError
from storage.db import Database, WriteBusy, limited_lock_wait
from storage.errors import AppInUse, AppNotFound, DuplicateAppName, InvalidInput
from storage.links import (
    MAX_EXTERNAL_ID_LENGTH,
    get_linked_external_id,
    set_linked_external_id,
    validate_external_id,
)
from storage.lookups import LookupOutcome
from storage.models import AuditEvent, Member, OneSignalApp, Workspace
from storage.workspaces import validate_app_name, validate_onesignal_app_id

__all__ = [
    "MAX_EXTERNAL_ID_LENGTH",
    "AppClient",
    "AppInUse",
    "AppNotFound",
    "AuditEvent",
    "DuplicateAppName",
    "InvalidInput",
    "KeyUnreadable",
    "LookupOutcome",
    "Member",
    "OneSignalApp",
    "Snapshot",
    "TeamFacts",
    "Workspace",
    "Workspaces",
    "WriteBusy",
    "limited_lock_wait",
    "validate_app_name",
    "validate_external_id",
    "validate_onesignal_app_id",
]

REFUSAL_OUTCOME: Final = "denied"
"""The `outcome` of every refusal's audit event."""

TEAM_TTL: Final = 5.0
"""Seconds a workspace's stored roles and approval policy are reused before the next read.

A change through this service drops them at once; a change made through another replica (or
straight in the database) is seen here at most this much later.
"""


def is_usergroup_id(subject_id: str) -> bool:
    """Whether a stored subject is a Slack user group (S…) rather than a user (U…/W…)."""
    return subject_id.startswith("S")


@dataclass(frozen=True)
class TeamFacts:
    """A workspace's stored role holders, settings (the approval policy lives there) and log
    channel."""

    members: tuple[tuple[str, Role], ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    log_channel_id: str | None = None

    def roles_of(self, subject_id: str) -> set[Role]:
        """The roles held by this user or group itself."""
        return {role for subject, role in self.members if subject == subject_id}

    def group_roles(self) -> dict[str, set[Role]]:
        """User group id -> the roles given to the group."""
        groups: dict[str, set[Role]] = {}
        for subject, role in self.members:
            if is_usergroup_id(subject):
                groups.setdefault(subject, set()).add(role)
        return groups

    @property
    def senders_configured(self) -> bool:
        """Whether anyone holds the sender role; until then anyone in the workspace may send."""
        return any(role == Role.SENDER for _, role in self.members)


class SendsToTell(Protocol):
    """What the send state machine hears of a workspace's changes (`bot.delivery.Sends` is one)."""

    def forget_apps(self, team_id: str) -> None:
        """The workspace's apps changed (added, replaced, removed, a new default)."""

    def forget_policy(self, team_id: str) -> None:
        """The workspace's approval policy changed."""


class KeyUnreadable(Exception):
    """An app's REST API key cannot be decrypted with this process's key ring."""


@dataclass(frozen=True)
class Snapshot:
    """A workspace as `/push setup` shows it: its row (None before its first write), its apps
    (default first) and its role holders."""

    workspace: Workspace | None
    apps: list[OneSignalApp]
    members: list[Member]


@dataclass(frozen=True)
class AppClient:
    """A OneSignal client for one app of a workspace, and which app it is."""

    name: str
    onesignal_app_id: str
    client: OneSignalClient


class Workspaces:
    """Reads and changes a workspace's settings, apps, roles, links and audit log.

    Args:
        database: where they are.
        keyring: seals and opens the apps' OneSignal keys.
        clients: builds a OneSignal client for an app (`Services.onesignal`).
        sends: told when apps or the approval policy change.
    """

    def __init__(
        self,
        *,
        database: Database,
        keyring: KeyRing,
        clients: OneSignalClients,
        sends: SendsToTell,
    ) -> None:
        self._database = database
        self._keyring = keyring
        self._clients = clients
        self._sends = sends
        self._facts: Expiring[str, TeamFacts] = Expiring()

    # --- reading ------------------------------------------------------------------------------

    async def snapshot(self, team_id: str) -> Snapshot:
        """The workspace's row, apps and role holders, in one session."""
        async with self._database.sessions() as session:
            workspace = await workspaces.get_workspace(session=session, team_id=team_id)
            apps = await workspaces.list_apps(session=session, team_id=team_id)
            members = await workspaces.list_members(session=session, team_id=team_id)
        return Snapshot(workspace, apps, members)

    async def facts(self, team_id: str) -> TeamFacts:
        """The workspace's role holders, settings and log channel, in one read (kept for
        TEAM_TTL seconds)."""

        async def read() -> tuple[TeamFacts, float | None]:
            async with self._database.sessions() as session:
                members = await workspaces.list_members(session=session, team_id=team_id)
                workspace = await workspaces.get_workspace(session=session, team_id=team_id)
            held = tuple((member.subject_id, member.role) for member in members)
            if workspace is None:
                return TeamFacts(members=held), TEAM_TTL
            facts = TeamFacts(
                members=held,
                settings=dict(workspace.settings),
                log_channel_id=workspace.log_channel_id,
            )
            return facts, TEAM_TTL

        return await self._facts.get(team_id, read)

    def forget_facts(self, team_id: str) -> None:
        """Read the workspace's roles and settings afresh next time."""
        self._facts.forget(team_id)

    async def get_workspace(self, team_id: str) -> Workspace | None:
        """The workspace's row, or None before its first write."""
        async with self._database.sessions() as session:
            return await workspaces.get_workspace(session=session, team_id=team_id)

    async def app(self, team_id: str, name: str | None) -> OneSignalApp | None:
        """The app named `name` (the default app when None), or None."""
        async with self._database.sessions() as session:
            return await workspaces.get_app(session=session, team_id=team_id, name=name)

    async def app_names(self, team_id: str) -> list[str]:
        """The names of the workspace's apps, default first."""
        async with self._database.sessions() as session:
            return [a.name for a in await workspaces.list_apps(session=session, team_id=team_id)]

    async def audit_events(self, team_id: str, *, limit: int) -> list[AuditEvent]:
        """The workspace's latest `limit` audit events, newest first."""
        async with self._database.sessions() as session:
            return await list_audit_events(session=session, team_id=team_id, limit=limit)

    async def linked_external_id(self, team_id: str, user_id: str) -> str | None:
        """The external id `user_id` linked in the workspace (`/push me`), or None."""
        async with self._database.sessions() as session:
            return await get_linked_external_id(session=session, team_id=team_id, user_id=user_id)

    # --- OneSignal apps -----------------------------------------------------------------------

    async def app_client(self, team_id: str, name: str | None) -> AppClient:
        """A client for the app `name` (the default app when None) with its decrypted key, for
        a person waiting for its answer (one quick retry, then "try again").

        Raises AppNotFound when there is no such app, KeyUnreadable when its key cannot be
        decrypted here.
        """
        async with self._database.sessions() as session:
            try:
                app = await workspaces.get_app_credentials(
                    session=session, keyring=self._keyring, team_id=team_id, name=name
                )
            except SecretDecryptionError:
                raise KeyUnreadable(name) from None
        client = self._clients.client(app.api_key, retries=PERSON_WAITING)
        return AppClient(app.name, app.onesignal_app_id, client)

    async def add_app(
        self,
        *,
        team_id: str,
        enterprise_id: str | None,
        actor: str,
        name: str,
        onesignal_app_id: str,
        api_key: SecretStr,
        make_default: bool,
        replace: bool,
    ) -> bool:
        """Save an app and its key (sealed); with `replace`, the new id and key of app `name`.

        Returns whether it is the default app. DuplicateAppName when `name` is taken and
        not replaced.
        """
        async with self._database.sessions.begin() as session:
            await workspaces.ensure_workspace(
                session=session, team_id=team_id, enterprise_id=enterprise_id
            )
            app = await workspaces.add_app(
                session=session,
                keyring=self._keyring,
                team_id=team_id,
                name=name,
                onesignal_app_id=onesignal_app_id,
                api_key=api_key,
                added_by=actor,
                make_default=make_default,
                replace=replace,
            )
            is_default = app.is_default
        self._apps_changed(team_id)
        return is_default

    async def set_default_app(self, *, team_id: str, name: str, actor: str) -> None:
        """Make `name` the default app; AppNotFound when it is gone."""
        async with self._database.sessions.begin() as session:
            await workspaces.set_default_app(
                session=session, team_id=team_id, name=name, actor=actor
            )
        self._apps_changed(team_id)

    async def remove_app(self, *, team_id: str, name: str, actor: str) -> None:
        """Remove the app and its key; AppNotFound when gone, AppInUse while sends need it."""
        async with self._database.sessions.begin() as session:
            await workspaces.remove_app(session=session, team_id=team_id, name=name, actor=actor)
        self._apps_changed(team_id)

    def _apps_changed(self, team_id: str) -> None:
        """New sends see the workspace's apps as they are now."""
        self._sends.forget_apps(team_id)

    # --- settings, roles, links ---------------------------------------------------------------

    async def set_log_channel(
        self, *, team_id: str, enterprise_id: str | None, actor: str, channel_id: str | None
    ) -> None:
        """Post results of sends in `channel_id` (None: in no channel)."""
        changes: dict[str, Any] = (
            {"log_channel_id": channel_id} if channel_id else {"clear_log_channel": True}
        )
        await self._update(team_id, enterprise_id, actor, changes)

    async def set_policy(
        self, *, team_id: str, enterprise_id: str | None, actor: str, policy: ApprovalPolicy
    ) -> None:
        """Save the approval policy; due sends are checked against it at once."""
        changes = {"settings": {"approvals": policy.to_settings()}}
        await self._update(team_id, enterprise_id, actor, changes)
        self._sends.forget_policy(team_id)

    async def _update(
        self, team_id: str, enterprise_id: str | None, actor: str, changes: Mapping[str, Any]
    ) -> None:
        async with self._database.sessions.begin() as session:
            await workspaces.ensure_workspace(
                session=session, team_id=team_id, enterprise_id=enterprise_id
            )
            await workspaces.update_workspace(
                session=session, team_id=team_id, actor=actor, **changes
            )
        self.forget_facts(team_id)

    async def change_roles(
        self,
        *,
        team_id: str,
        enterprise_id: str | None,
        actor: str,
        role: Role,
        give: bool,
        subjects: Iterable[str],
    ) -> list[str]:
        """Give `role` to (or, without `give`, take it from) each subject; those changed."""
        changed = []
        async with self._database.sessions.begin() as session:
            await workspaces.ensure_workspace(
                session=session, team_id=team_id, enterprise_id=enterprise_id
            )
            for subject in subjects:
                if give:
                    had = await workspaces.member_roles(
                        session=session, team_id=team_id, subject_ids=[subject]
                    )
                    await workspaces.add_member(
                        session=session, team_id=team_id, subject_id=subject, role=role, actor=actor
                    )
                    done = role not in had
                else:
                    done = await workspaces.remove_member(
                        session=session, team_id=team_id, subject_id=subject, role=role, actor=actor
                    )
                if done:
                    changed.append(subject)
        self.forget_facts(team_id)
        return changed

    async def link_external_id(
        self, *, team_id: str, enterprise_id: str | None, user_id: str, external_id: str
    ) -> bool:
        """Link `user_id` to `external_id` (`/push me`); False when it already was.
        InvalidInput when the external id is not one."""
        async with self._database.sessions.begin() as session:
            await workspaces.ensure_workspace(
                session=session, team_id=team_id, enterprise_id=enterprise_id
            )
            return await set_linked_external_id(
                session=session, team_id=team_id, user_id=user_id, external_id=external_id
            )

    # --- audit --------------------------------------------------------------------------------

    async def record_refusal(
        self,
        *,
        team_id: str,
        actor: str,
        action: str,
        target: str,
        details: Mapping[str, Any],
        create_workspace: bool,
    ) -> str | None:
        """Audit a refusal (outcome `denied`). Returns None once written, else why not: the
        workspace is unknown here and not to be created, or the database refused."""
        try:
            async with self._database.sessions.begin() as session:
                if create_workspace:
                    await workspaces.ensure_workspace(session=session, team_id=team_id)
                elif await workspaces.get_workspace(session=session, team_id=team_id) is None:
                    return "no such workspace here"
                await append_audit(
                    session=session,
                    team_id=team_id,
                    actor=actor,
                    action=action,
                    target=target,
                    outcome=REFUSAL_OUTCOME,
                    details=details,
                )
        except (SQLAlchemyError, InvalidInput) as error:
            return type(error).__name__
        return None

    async def record_user_lookup(
        self, *, team_id: str, actor: str, external_id: str, app_name: str, outcome: LookupOutcome
    ) -> None:
        """Audit that `actor` looked up `external_id` in app `app_name` (`/push user`)."""
        async with self._database.sessions.begin() as session:
            await lookups.record_user_lookup(
                session=session,
                team_id=team_id,
                actor=actor,
                external_id=external_id,
                app_name=app_name,
                outcome=outcome,
            )
