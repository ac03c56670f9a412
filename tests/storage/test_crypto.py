"""Secrets at rest: bound to their workspace and purpose, under a key ring that rotates."""

from __future__ import annotations

import logging
import stat

import pytest
from pydantic import SecretStr

from storage.crypto import (
    KEY_FILE_NAME,
    KeyConfigError,
    KeyRing,
    Purpose,
    SecretDecryptionError,
    generate_key,
    key_id_of,
    load_keyring,
)
from tests.plugins.database import register_secret

TEAM, OTHER = "T0000TEST", "T0000OTHER"


@pytest.fixture
def api_key() -> str:
    return register_secret("os_v2_app_thisisnotarealkeybutlookslikeone")


def test_a_secret_decrypts_for_its_workspace_and_purpose(keyring, api_key):
    token = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)

    assert api_key not in token
    assert key_id_of(token) == keyring.primary_key_id
    decrypted = keyring.decrypt(token, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    assert decrypted.get_secret_value() == api_key
    assert api_key not in repr(decrypted)


def test_each_encryption_is_different(keyring, api_key):
    first = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    second = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    assert first != second


@pytest.mark.parametrize(
    ("team_id", "purpose"),
    [(OTHER, Purpose.ONESIGNAL_API_KEY), (TEAM, Purpose.SLACK_BOT_TOKEN)],
)
def test_a_copied_ciphertext_does_not_decrypt_elsewhere(keyring, api_key, team_id, purpose):
    token = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)

    with pytest.raises(SecretDecryptionError) as caught:
        keyring.decrypt(token, team_id=team_id, purpose=purpose)

    message = str(caught.value)
    assert message.startswith(f"Cannot decrypt the {purpose} of workspace {team_id}:")
    assert "does not belong" in message
    assert api_key not in message and token not in message


def test_an_altered_ciphertext_is_refused(keyring, api_key):
    token = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    middle = len(token) - 30  # inside the ciphertext, away from base64 padding bits
    flipped = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    with pytest.raises(SecretDecryptionError, match="altered"):
        keyring.decrypt(flipped, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    with pytest.raises(SecretDecryptionError, match="not a PushOps ciphertext"):
        keyring.decrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)


def test_the_ring_decrypts_with_any_key_and_encrypts_with_the_first(api_key):
    old, new = register_secret(generate_key()), register_secret(generate_key())
    old_ring = KeyRing.from_text(old)
    token = old_ring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)

    ring = KeyRing.from_text(f"{new}, {old}")
    assert (
        ring.decrypt(token, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY).get_secret_value()
        == api_key
    )
    assert not ring.is_current(token)
    assert ring.is_current(ring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY))

    with pytest.raises(SecretDecryptionError) as caught:
        KeyRing.from_text(new).decrypt(token, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    assert (
        f"encrypted with key {old_ring.primary_key_id}, which is not in PUSHOPS_SECRET_KEY"
        in str(caught.value)
    )


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", " , "])
def test_a_malformed_key_setting_is_named_without_its_value(bad):
    good = register_secret(generate_key())
    with pytest.raises(KeyConfigError) as caught:
        KeyRing.from_text(f"{good},{bad}" if bad.strip(" ,") else bad)
    message = str(caught.value)
    assert "PUSHOPS_SECRET_KEY" in message and "pushops keys generate" in message
    assert good not in message
    if bad.strip(" ,"):
        assert "entry 2 of 2" in message and bad not in message


def test_the_same_key_twice_is_refused():
    key = register_secret(generate_key())
    with pytest.raises(KeyConfigError, match="twice"):
        KeyRing.from_text(f"{key},{key}")


def test_without_the_setting_a_key_file_is_made_once_with_mode_0600(tmp_path, caplog, api_key):
    caplog.set_level(logging.WARNING, logger="storage.crypto")
    ring = load_keyring(secret_key=None, data_dir=tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE_NAME
    register_secret(path.read_text().strip())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "PUSHOPS_SECRET_KEY is not set" in caplog.text and str(path) in caplog.text

    caplog.clear()
    again = load_keyring(secret_key=SecretStr(""), data_dir=tmp_path / "data")
    assert again.key_ids == ring.key_ids
    assert caplog.records == []
    token = ring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    assert (
        again.decrypt(token, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY).get_secret_value()
        == api_key
    )


def test_the_setting_wins_over_the_key_file(tmp_path, secret_key):
    load_keyring(secret_key=None, data_dir=tmp_path)
    register_secret((tmp_path / KEY_FILE_NAME).read_text().strip())
    ring = load_keyring(secret_key=SecretStr(secret_key), data_dir=tmp_path)
    assert ring.key_ids == KeyRing.from_text(secret_key).key_ids


def test_no_key_material_in_a_repr(keyring, secret_key):
    assert secret_key not in repr(keyring)
    assert repr(keyring) == f"KeyRing(key_ids=['{keyring.primary_key_id}'])"


def test_a_ciphertext_bound_to_a_row_decrypts_for_that_row_only(keyring, api_key):
    token = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY, row="A")

    assert keyring.is_current(token, row="A")
    assert (
        keyring.decrypt(
            token, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY, row="A"
        ).get_secret_value()
        == api_key
    )
    for row in ("B", None):
        with pytest.raises(SecretDecryptionError):
            keyring.decrypt(token, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY, row=row)
    unbound = keyring.encrypt(api_key, team_id=TEAM, purpose=Purpose.ONESIGNAL_API_KEY)
    assert not keyring.is_current(unbound, row="A")  # rotation binds it
    assert keyring.is_current(unbound)
