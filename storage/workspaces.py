"""Workspaces, their OneSignal apps (and keys) and their members' roles.

The conventions are `storage.queries`': functions taking a `session` run inside the caller's
transaction and never commit; every read of tenant data takes `team_id`; every change is
audited in the same transaction. A person's linked external id is in `storage.links`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import append_audit
from storage.crypto import KeyRing, Purpose
from storage.errors import (
    AppInUse,
    AppNotFound,
    DuplicateAppName,
    InvalidInput,
    WorkspaceNotFound,
)
from storage.models import ACTIVE_STATES, Member, MemberRole, OneSignalApp, Send, Workspace
from storage.sql import insert_for, json_safe, rowcount

_TEAM_ID: Final = re.compile(r"^[TE][A-Z0-9]{1,31}$")
_APP_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# --- workspaces -------------------------------------------------------------------------------


def validate_team_id(team_id: str) -> str:
    """`team_id` if it looks like a Slack team (T…) or enterprise (E…) id."""
    if not _TEAM_ID.match(team_id):
        raise InvalidInput(
            f"{team_id!r} is not a Slack workspace id (like T0123ABCD); find it in the "
            "workspace's URL or in Slack's About this workspace."
        )
    return team_id


async def ensure_workspace(
    *,
    session: AsyncSession,
    team_id: str,
    name: str | None = None,
    enterprise_id: str | None = None,
) -> Workspace:
    """The workspace row, created on first sight (concurrent first sights are fine)."""
    validate_team_id(team_id)
    insert = insert_for(session)
    await session.execute(
        insert(Workspace)
        .values(team_id=team_id, name=name or "", enterprise_id=enterprise_id)
        .on_conflict_do_nothing(index_elements=["team_id"])
    )
    workspace = await get_workspace(session=session, team_id=team_id)
    assert workspace is not None
    if name and workspace.name != name:
        workspace.name = name
    if enterprise_id and workspace.enterprise_id != enterprise_id:
        workspace.enterprise_id = enterprise_id
    return workspace


async def get_workspace(*, session: AsyncSession, team_id: str) -> Workspace | None:
    """The workspace, or None."""
    return await session.get(Workspace, team_id)


async def list_workspaces(*, session: AsyncSession) -> list[Workspace]:
    """Every workspace (operator tools and the scheduler, never a Slack reply)."""
    return list(await session.scalars(sa.select(Workspace).order_by(Workspace.team_id)))


async def update_workspace(
    *,
    session: AsyncSession,
    team_id: str,
    actor: str,
    name: str | None = None,
    log_channel_id: str | None = None,
    clear_log_channel: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> Workspace:
    """Change the workspace's name, log channel or settings (merged key by key); audited."""
    workspace = await _require_workspace(session, team_id)
    changed: dict[str, Any] = {}
    if name is not None and name != workspace.name:
        workspace.name = changed["name"] = name
    if clear_log_channel or (log_channel_id is not None):
        workspace.log_channel_id = changed["log_channel_id"] = (
            None if clear_log_channel else log_channel_id
        )
    if settings:
        workspace.settings = {**workspace.settings, **json_safe(settings, "settings")}
        changed["settings"] = sorted(settings)
    if changed:
        await append_audit(
            session=session,
            team_id=team_id,
            actor=actor,
            action="workspace.updated",
            target=f"workspace {team_id}",
            details=changed,
        )
    return workspace


async def _require_workspace(session: AsyncSession, team_id: str) -> Workspace:
    workspace = await get_workspace(session=session, team_id=team_id)
    if workspace is None:
        raise WorkspaceNotFound(team_id)
    return workspace


# --- OneSignal apps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppCredentials:
    """What a OneSignal call needs; the key is a `SecretStr`, so it never shows in a repr."""

    app_ref: uuid.UUID
    name: str
    onesignal_app_id: str
    api_key: SecretStr


def validate_app_name(name: str) -> str:
    """`name` if usable as `--app NAME`."""
    if not _APP_NAME.match(name):
        raise InvalidInput(
            f"{name!r} is not a usable app name: use up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def validate_onesignal_app_id(app_id: str) -> str:
    """The canonical form of a OneSignal app id (a UUID)."""
    try:
        return str(uuid.UUID(app_id.strip()))
    except ValueError:
        raise InvalidInput(
            f"{app_id!r} is not a OneSignal app id; copy it from OneSignal's Settings > Keys & IDs "
            "(it looks like 8f1c2d3e-…)."
        ) from None


async def add_app(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    team_id: str,
    name: str,
    onesignal_app_id: str,
    api_key: SecretStr,
    added_by: str,
    make_default: bool = False,
    replace: bool = False,
) -> OneSignalApp:
    """Save an app and its encrypted REST API key; the workspace's first app becomes its default.

    With `replace`, an app of the same name gets the new app id and key (a key rotated at
    OneSignal); otherwise a duplicate name is `DuplicateAppName`.
    """
    validate_app_name(name)
    app_id = validate_onesignal_app_id(onesignal_app_id)
    plain = api_key.get_secret_value().strip()
    if not plain:
        raise InvalidInput("The REST API key is empty.")
    await ensure_workspace(session=session, team_id=team_id)
    app, action = await _app_to_write(session, team_id, name, replace)
    ciphertext = keyring.encrypt(
        plain, team_id=team_id, purpose=Purpose.ONESIGNAL_API_KEY, row=str(app.id)
    )
    app.onesignal_app_id, app.api_key_ciphertext, app.added_by = app_id, ciphertext, added_by
    has_default = await get_app(session=session, team_id=team_id) is not None
    await session.flush()
    if make_default or not has_default:
        await _make_default(session, app)
    await append_audit(
        session=session,
        team_id=team_id,
        actor=added_by,
        action=action,
        target=f"app {name}",
        details={
            "onesignal_app_id": app_id,
            "default": app.is_default,
            "key_id": keyring.primary_key_id,
        },
    )
    return app


async def _app_to_write(
    session: AsyncSession, team_id: str, name: str, replace: bool
) -> tuple[OneSignalApp, str]:
    """The row `add_app` fills (new, or the one replaced) and its audit action."""
    app = await get_app(session=session, team_id=team_id, name=name)
    if app is None:
        app = OneSignalApp(id=uuid.uuid4(), team_id=team_id, name=name)
        session.add(app)
        return app, "app.added"
    if not replace:
        raise DuplicateAppName(team_id, name)
    return app, "app.replaced"


async def _make_default(session: AsyncSession, app: OneSignalApp) -> None:
    # Clear first: the partial unique index allows one default per workspace at any moment.
    await session.execute(
        sa.update(OneSignalApp)
        .where(OneSignalApp.team_id == app.team_id, OneSignalApp.id != app.id)
        .values(is_default=False)
    )
    app.is_default = True
    await session.flush()


async def get_app(
    *, session: AsyncSession, team_id: str, name: str | None = None
) -> OneSignalApp | None:
    """The app named `name` in the workspace, or its default app when `name` is None."""
    query = sa.select(OneSignalApp).where(OneSignalApp.team_id == team_id)
    query = query.where(OneSignalApp.name == name if name else OneSignalApp.is_default)
    return (await session.scalars(query)).one_or_none()


async def get_app_by_id(
    *, session: AsyncSession, team_id: str, app_ref: uuid.UUID
) -> OneSignalApp | None:
    """The app with our id `app_ref`, only if it belongs to the workspace."""
    query = sa.select(OneSignalApp).where(
        OneSignalApp.id == app_ref, OneSignalApp.team_id == team_id
    )
    return (await session.scalars(query)).one_or_none()


async def list_apps(*, session: AsyncSession, team_id: str | None) -> list[OneSignalApp]:
    """The workspace's apps, default first; `team_id=None` lists every workspace (operator CLI)."""
    query = sa.select(OneSignalApp)
    if team_id is not None:
        query = query.where(OneSignalApp.team_id == team_id)
    order = (OneSignalApp.team_id, OneSignalApp.is_default.desc(), OneSignalApp.name)
    return list(await session.scalars(query.order_by(*order)))


async def set_default_app(
    *, session: AsyncSession, team_id: str, name: str, actor: str
) -> OneSignalApp:
    """Make `name` the workspace's default app."""
    app = await get_app(session=session, team_id=team_id, name=name)
    if app is None:
        raise AppNotFound(team_id, name)
    await _make_default(session, app)
    await append_audit(
        session=session, team_id=team_id, actor=actor, action="app.default", target=f"app {name}"
    )
    return app


async def remove_app(*, session: AsyncSession, team_id: str, name: str, actor: str) -> None:
    """Delete an app and its key; refused while sends not yet delivered still need it.

    Past sends keep their history (`app_name`); when the default goes, the oldest remaining
    app becomes the default.
    """
    app = await get_app(session=session, team_id=team_id, name=name)
    if app is None:
        raise AppNotFound(team_id, name)
    active = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Send)
        .where(Send.app_ref == app.id, Send.state.in_(ACTIVE_STATES))
    )
    if active:
        raise AppInUse(team_id, name, int(active))
    was_default = app.is_default
    await session.delete(app)
    await session.flush()
    if was_default:
        successor = (
            await session.scalars(
                sa.select(OneSignalApp)
                .where(OneSignalApp.team_id == team_id)
                .order_by(OneSignalApp.created_at)
                .limit(1)
            )
        ).one_or_none()
        if successor is not None:
            await _make_default(session, successor)
    await append_audit(
        session=session, team_id=team_id, actor=actor, action="app.removed", target=f"app {name}"
    )


def decrypt_app_key(app: OneSignalApp, *, keyring: KeyRing) -> SecretStr:
    """The app's REST API key; `SecretDecryptionError` when it is not this app's (another
    workspace's, or another app's of this workspace)."""
    return keyring.decrypt(
        app.api_key_ciphertext,
        team_id=app.team_id,
        purpose=Purpose.ONESIGNAL_API_KEY,
        row=str(app.id),
    )


async def get_app_credentials(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    team_id: str,
    name: str | None = None,
    app_ref: uuid.UUID | None = None,
) -> AppCredentials:
    """The decrypted credentials of an app, by our id, by name, or the default one."""
    if app_ref is not None:
        app = await get_app_by_id(session=session, team_id=team_id, app_ref=app_ref)
    else:
        app = await get_app(session=session, team_id=team_id, name=name)
    if app is None:
        raise AppNotFound(team_id, name)
    return AppCredentials(
        app.id, app.name, app.onesignal_app_id, decrypt_app_key(app, keyring=keyring)
    )


# --- members ----------------------------------------------------------------------------------


async def add_member(
    *, session: AsyncSession, team_id: str, subject_id: str, role: MemberRole, actor: str
) -> Member:
    """Give a user (U…/W…) or user group (S…) a role; adding an existing role is a no-op."""
    await _require_workspace(session, team_id)
    existing = (
        await session.scalars(
            sa.select(Member).where(
                Member.team_id == team_id, Member.subject_id == subject_id, Member.role == role
            )
        )
    ).one_or_none()
    if existing is not None:
        return existing
    member = Member(team_id=team_id, subject_id=subject_id, role=role, added_by=actor)
    session.add(member)
    await session.flush()
    await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action="member.added",
        target=subject_id,
        details={"role": role.value},
    )
    return member


async def remove_member(
    *, session: AsyncSession, team_id: str, subject_id: str, role: MemberRole, actor: str
) -> bool:
    """Take a role away; False when the subject did not have it."""
    result = await session.execute(
        sa.delete(Member).where(
            Member.team_id == team_id, Member.subject_id == subject_id, Member.role == role
        )
    )
    if not rowcount(result):
        return False
    await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action="member.removed",
        target=subject_id,
        details={"role": role.value},
    )
    return True


async def list_members(
    *, session: AsyncSession, team_id: str, role: MemberRole | None = None
) -> list[Member]:
    """The workspace's role holders, optionally of one role."""
    query = sa.select(Member).where(Member.team_id == team_id)
    if role is not None:
        query = query.where(Member.role == role)
    return list(await session.scalars(query.order_by(Member.role, Member.subject_id)))


async def member_roles(
    *, session: AsyncSession, team_id: str, subject_ids: Iterable[str]
) -> set[MemberRole]:
    """The roles held by any of `subject_ids` (a user and the user groups they belong to)."""
    subjects = list(subject_ids)
    if not subjects:
        return set()
    query = sa.select(Member.role).where(Member.team_id == team_id, Member.subject_id.in_(subjects))
    return set(await session.scalars(query))
