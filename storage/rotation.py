"""`pushops keys rotate`: re-encrypt every stored secret under the first key of the ring.

Each row is its own short transaction and its UPDATE is a compare-and-set on the old
ciphertext, so rotation is safe while the bot serves, provided every running process already
has the new ring (`PUSHOPS_SECRET_KEY=new,old`): they decrypt both, and encrypt with the new.

The audit log is never rewritten: its events keep the MACs of the keys that made them. Each
chain that ends under an old key gets one event under the new key (`rotate_audit_keys`), whose
MAC vouches for every event before it; then the old key can go and the log still verifies.

A OneSignal key is bound to its app's row (`storage.crypto`); one written before that binding
is bound by rotation too, and by `bind_app_keys`, which `serve` and `worker` run at start.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import append_audit
from storage.audit_chain import AnchorReport, anchor_audit_chains
from storage.crypto import UNBOUND_PREFIX, KeyRing, Purpose, SecretDecryptionError, key_id_of
from storage.db import Database
from storage.errors import AuditKeyMissing
from storage.models import SLACK_BOTS, SLACK_INSTALLATIONS, SLACK_TOKEN_COLUMNS, OneSignalApp


@dataclass
class RotationReport:
    """What `rotate_secrets` did."""

    reencrypted: int = 0
    current: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every secret is now under the first key."""
        return not self.failures


async def rotate_secrets(
    *, session_factory: async_sessionmaker[AsyncSession], keyring: KeyRing, actor: str
) -> RotationReport:
    """Re-encrypt every OneSignal key and Slack token under the ring's first key, row by row.

    A secret that cannot be decrypted is reported in `failures` and left as it is.
    """
    report = RotationReport()
    async with session_factory() as session:
        apps = (
            await session.execute(sa.select(OneSignalApp.id, OneSignalApp.api_key_ciphertext))
        ).all()
    for app_ref, ciphertext in apps:
        if keyring.is_current(ciphertext, row=str(app_ref)):
            report.current += 1
            continue
        await _rotate_app(session_factory, keyring, app_ref, actor, report)
    for table in (SLACK_INSTALLATIONS, SLACK_BOTS):
        await _rotate_slack_table(session_factory, keyring, table, report)
    return report


async def bind_app_keys(
    *, session_factory: async_sessionmaker[AsyncSession], keyring: KeyRing, actor: str = "pushops"
) -> RotationReport:
    """Bind every OneSignal key not yet bound to its app's row (written by an older version)
    to it, re-encrypting it under the ring's first key; keys already bound are left alone."""
    report = RotationReport()
    async with session_factory() as session:
        unbound = (
            await session.scalars(
                sa.select(OneSignalApp.id).where(
                    OneSignalApp.api_key_ciphertext.startswith(UNBOUND_PREFIX)
                )
            )
        ).all()
    for app_ref in unbound:
        await _rotate_app(session_factory, keyring, app_ref, actor, report)
    return report


async def _rotate_app(
    session_factory: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    app_ref: uuid.UUID,
    actor: str,
    report: RotationReport,
) -> None:
    async with session_factory() as session, session.begin():
        app = await session.get(OneSignalApp, app_ref, with_for_update=True)
        row = str(app_ref)
        if app is None or keyring.is_current(app.api_key_ciphertext, row=row):
            return
        old = app.api_key_ciphertext
        try:
            plain = keyring.decrypt(
                old, team_id=app.team_id, purpose=Purpose.ONESIGNAL_API_KEY, row=row
            )
        except SecretDecryptionError as error:
            report.failures.append(f"app {app.name!r}: {error}")
            return
        new = keyring.encrypt(
            plain, team_id=app.team_id, purpose=Purpose.ONESIGNAL_API_KEY, row=row
        )
        result = await session.execute(
            sa.update(OneSignalApp)
            .where(OneSignalApp.id == app_ref, OneSignalApp.api_key_ciphertext == old)
            .values(api_key_ciphertext=new)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:  # replaced meanwhile: the new value stands
            return
        report.reencrypted += 1
        await append_audit(
            session=session,
            team_id=app.team_id,
            actor=actor,
            action="secret.reencrypted",
            target=f"app {app.name}",
            details={"from_key_id": key_id_of(old), "to_key_id": keyring.primary_key_id},
        )


async def _rotate_slack_table(
    session_factory: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    table: sa.Table,
    report: RotationReport,
) -> None:
    """Re-encrypt the Slack tokens our installation store wrote (plaintext rows are left)."""
    columns = [name for name in SLACK_TOKEN_COLUMNS if name in table.c]
    async with session_factory() as session:
        rows = (await session.execute(sa.select(table.c.id))).scalars().all()
    for row_id in rows:
        async with session_factory() as session, session.begin():
            row = (
                await session.execute(
                    sa.select(table).where(table.c.id == row_id).with_for_update()
                )
            ).one_or_none()
            if row is None:
                continue
            owner = row.team_id or row.enterprise_id or ""
            updates: dict[str, str] = {}
            for column in columns:
                token = getattr(row, column)
                if token is None or key_id_of(token) is None:
                    continue
                if keyring.is_current(token):
                    report.current += 1
                    continue
                purpose = SLACK_TOKEN_COLUMNS[column]
                try:
                    plain = keyring.decrypt(token, team_id=owner, purpose=purpose)
                except SecretDecryptionError as error:
                    report.failures.append(f"{table.name} row {row_id}: {error}")
                    continue
                updates[column] = keyring.encrypt(plain, team_id=owner, purpose=purpose)
            if updates:
                await session.execute(
                    sa.update(table).where(table.c.id == row_id).values(**updates)
                )
                report.reencrypted += len(updates)


async def rotate_audit_keys(*, database: Database, actor: str) -> AnchorReport:
    """Anchor every audit chain under the first key (chains written before any key too).

    A chain whose last event is under a key no longer in the ring is reported, not anchored:
    nothing could then tell its end from a forgery.
    """
    if database.audit_keys is None:
        raise AuditKeyMissing()
    return await anchor_audit_chains(
        session_factory=database.sessions, keys=database.audit_keys, actor=actor, rekey=True
    )
