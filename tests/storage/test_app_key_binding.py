"""A OneSignal key's ciphertext is bound to its app's row, not only to its workspace: keys
swapped between two apps of one workspace do not decrypt. Keys written before that (unbound)
are bound at the next start of `serve` or `worker`, and by `pushops keys rotate`."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.services import build_services
from bot.settings import Settings
from storage import workspaces
from storage.crypto import Purpose, SecretDecryptionError
from storage.models import OneSignalApp
from storage.rotation import bind_app_keys, rotate_secrets
from tests.plugins.database import register_secret


async def _apps(database):
    async with database.sessions() as session:
        rows = await session.scalars(sa.select(OneSignalApp).order_by(OneSignalApp.name))
        return {app.name: app for app in rows}


async def _set_ciphertext(database, app_id, ciphertext):
    async with database.sessions.begin() as session:
        await session.execute(
            sa.update(OneSignalApp)
            .where(OneSignalApp.id == app_id)
            .values(api_key_ciphertext=ciphertext)
        )


async def test_keys_swapped_between_two_apps_of_a_workspace_do_not_decrypt(
    database, keyring, storage_factory
):
    one = await storage_factory.app(name="one", api_key=register_secret("os_v2_app_first_key"))
    two = await storage_factory.app(name="two", api_key=register_secret("os_v2_app_second_key"))

    await _set_ciphertext(database, one.id, two.api_key_ciphertext)
    await _set_ciphertext(database, two.id, one.api_key_ciphertext)

    apps = await _apps(database)
    for name in ("one", "two"):
        with pytest.raises(SecretDecryptionError):
            workspaces.decrypt_app_key(apps[name], keyring=keyring)


async def _unbound(database, keyring, app, plain):
    """The app's key as versions before the binding wrote it (workspace and purpose only)."""
    legacy = keyring.encrypt(plain, team_id=app.team_id, purpose=Purpose.ONESIGNAL_API_KEY)
    assert legacy.startswith("v1:")
    await _set_ciphertext(database, app.id, legacy)
    return legacy


async def test_an_unbound_key_still_decrypts_and_is_bound_by_bind_app_keys(
    database, keyring, storage_factory
):
    plain = register_secret("os_v2_app_written_by_an_older_version")
    app = await storage_factory.app(name="old")
    other = await storage_factory.app(name="other")
    legacy = await _unbound(database, keyring, app, plain)
    assert (
        workspaces.decrypt_app_key(
            (await _apps(database))["old"], keyring=keyring
        ).get_secret_value()
        == plain
    )

    report = await bind_app_keys(session_factory=database.sessions, keyring=keyring)

    bound = (await _apps(database))["old"]
    assert report.reencrypted == 1 and report.ok
    assert bound.api_key_ciphertext != legacy and bound.api_key_ciphertext.startswith("v2:")
    assert workspaces.decrypt_app_key(bound, keyring=keyring).get_secret_value() == plain
    await _set_ciphertext(database, other.id, bound.api_key_ciphertext)
    with pytest.raises(SecretDecryptionError):
        workspaces.decrypt_app_key((await _apps(database))["other"], keyring=keyring)
    again = await bind_app_keys(session_factory=database.sessions, keyring=keyring)
    assert again.reencrypted == 0  # bound keys are left alone


async def test_keys_rotate_binds_unbound_keys_too(database, keyring, storage_factory):
    plain = register_secret("os_v2_app_rotated_and_bound")
    app = await storage_factory.app(name="old")
    await _unbound(database, keyring, app, plain)

    report = await rotate_secrets(session_factory=database.sessions, keyring=keyring, actor="cli")

    bound = (await _apps(database))["old"]
    assert report.reencrypted == 1 and bound.api_key_ciphertext.startswith("v2:")
    assert workspaces.decrypt_app_key(bound, keyring=keyring).get_secret_value() == plain


async def test_serve_and_worker_bind_unbound_keys_at_start(
    database, keyring, storage_factory, tmp_path
):
    plain = register_secret("os_v2_app_bound_at_start")
    app = await storage_factory.app(name="old")
    await _unbound(database, keyring, app, plain)
    settings = Settings(_env_file=None, PUSHOPS_DATA_DIR=str(tmp_path))

    services = build_services(settings, database=database, keyring=keyring)
    await services.start()
    try:
        bound = (await _apps(database))["old"]
    finally:
        await services.aclose()

    assert bound.api_key_ciphertext.startswith("v2:")
    assert workspaces.decrypt_app_key(bound, keyring=keyring).get_secret_value() == plain
