"""Encryption of secrets at rest: AES-GCM bound to a workspace, a purpose and a row, under a ring.

A ciphertext is the text ``v2:<key id>:<base64url(nonce || ciphertext || tag)>``. The key id is a
short fingerprint of the key that made it, so a ring of several keys (``PUSHOPS_SECRET_KEY`` =
``new,old``) decrypts everything while the first key encrypts, and ``pushops keys rotate`` knows
which rows still need re-encrypting. The associated data names the format version, the key id, the
workspace, the purpose and, for a secret kept in a row of its own (a OneSignal app's key), that
row's id: a value copied into another workspace's row, into another column, or into another app's
row of the same workspace fails authentication instead of decrypting.

``v1`` ciphertexts (no row in the associated data) are what versions before the row binding
wrote, and what secrets without a row of their own still use (Slack tokens). A `v1` OneSignal key
still decrypts; `storage.rotation.bind_app_keys` binds each to its row at the start of `serve`
and `worker`, and `pushops keys rotate` does too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

logger = logging.getLogger(__name__)

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
KEY_FILE_NAME: Final = "secret.key"
_VERSION: Final = "v1"
_BOUND: Final = "v2"
"""The format of a ciphertext bound to its row too."""
UNBOUND_PREFIX: Final = f"{_VERSION}:"
"""How a ciphertext not bound to a row begins (what `bind_app_keys` looks for)."""
_ENV_NAME: Final = "PUSHOPS_SECRET_KEY"


class Purpose(StrEnum):
    """What a secret is for; part of its associated data, so columns cannot swap values."""

    ONESIGNAL_API_KEY = "onesignal_api_key"
    SLACK_BOT_TOKEN = "slack_bot_token"
    SLACK_BOT_REFRESH_TOKEN = "slack_bot_refresh_token"
    SLACK_USER_TOKEN = "slack_user_token"
    SLACK_USER_REFRESH_TOKEN = "slack_user_refresh_token"


class CryptoError(Exception):
    """Root of the errors of this module; messages never contain key material or secrets."""


class KeyConfigError(CryptoError):
    """The configured key ring is unusable (malformed entry, duplicate, unreadable key file)."""


class SecretDecryptionError(CryptoError):
    """A stored secret cannot be decrypted; names the workspace and the purpose, never the value."""

    def __init__(self, *, team_id: str, purpose: str, reason: str) -> None:
        self.team_id = team_id
        self.purpose = purpose
        self.reason = reason
        super().__init__(f"Cannot decrypt the {purpose} of workspace {team_id}: {reason}.")


def generate_key() -> str:
    """A new random key, URL-safe base64, ready for ``PUSHOPS_SECRET_KEY``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id_for(key: bytes) -> str:
    """The fingerprint recorded in each ciphertext: 8 hex digits of a domain-separated SHA-256."""
    return hashlib.sha256(b"pushops secret key id\x00" + key).hexdigest()[:8]


def _parse_key(text: str, *, source: str, position: int, count: int) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyConfigError(
            f"{source}: entry {position} of {count} is not a key (expected {KEY_BYTES} bytes in "
            "URL-safe base64). Make one with `pushops keys generate`."
        )
    return key


class KeyRing:
    """One or more AES-256-GCM keys: the first encrypts, every one decrypts what it made."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise KeyConfigError(
                f"{_ENV_NAME} holds no key. Make one with `pushops keys generate`."
            )
        self._keys: dict[str, AESGCM] = {}
        self._raw: dict[str, bytes] = {}  # for `derive`; never shown
        for key in keys:
            key_id = key_id_for(key)
            if key_id in self._keys:
                raise KeyConfigError(f"{_ENV_NAME} lists the key {key_id} twice.")
            self._keys[key_id] = AESGCM(key)
            self._raw[key_id] = key
        self._primary = next(iter(self._keys))

    @classmethod
    def from_text(cls, text: str, *, source: str = _ENV_NAME) -> KeyRing:
        """Parse a comma-separated list of keys; errors name the entry, never its value."""
        entries = [part.strip() for part in text.split(",") if part.strip()]
        if not entries:
            raise KeyConfigError(f"{source} holds no key. Make one with `pushops keys generate`.")
        return cls(
            [
                _parse_key(entry, source=source, position=i, count=len(entries))
                for i, entry in enumerate(entries, start=1)
            ]
        )

    @property
    def primary_key_id(self) -> str:
        """The id of the key that encrypts."""
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of every key in the ring, the encrypting one first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={list(self._keys)!r})"

    def derive(self, label: bytes) -> tuple[tuple[str, bytes], ...]:
        """For each key of the ring (the encrypting one first): its id, and a key for `label`.

        HKDF-SHA256 with `label` as its info: a derived key is independent of the key it
        comes from and of the keys derived for any other label, so the audit log's MAC key
        (say) reveals nothing of the key that encrypts secrets. Each derived key keeps the id
        of its source key, so one id names one entry of PUSHOPS_SECRET_KEY everywhere.
        """
        return tuple(
            (key_id, HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=None, info=label).derive(key))
            for key_id, key in self._raw.items()
        )

    def encrypt(
        self, plaintext: str | SecretStr, *, team_id: str, purpose: str, row: str | None = None
    ) -> str:
        """Encrypt `plaintext` for `team_id` and `purpose` (and the row `row`, when the secret
        has one of its own) under the first key."""
        value = plaintext.get_secret_value() if isinstance(plaintext, SecretStr) else plaintext
        version = _BOUND if row else _VERSION
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = _associated_data(version, self._primary, team_id, purpose, row)
        sealed = self._keys[self._primary].encrypt(nonce, value.encode("utf-8"), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{version}:{self._primary}:{body}"

    def decrypt(
        self, token: str, *, team_id: str, purpose: str, row: str | None = None
    ) -> SecretStr:
        """The secret in `token`; `SecretDecryptionError` when it is not this workspace's (or,
        for a ciphertext bound to its row, not `row`'s). An unbound (`v1`) ciphertext is
        read whatever `row` is: it predates the binding (see the module)."""

        def fail(reason: str) -> SecretDecryptionError:
            return SecretDecryptionError(team_id=team_id, purpose=purpose, reason=reason)

        version, key_id, body = _split(token)
        if version not in (_VERSION, _BOUND) or not key_id:
            raise fail("the stored value is not a PushOps ciphertext")
        aead = self._keys.get(key_id)
        if aead is None:
            raise fail(
                f"it was encrypted with key {key_id}, which is not in {_ENV_NAME} "
                f"(keys present: {', '.join(self._keys)})"
            )
        aad = _associated_data(
            version, key_id, team_id, purpose, row if version == _BOUND else None
        )
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except (InvalidTag, binascii.Error, ValueError, UnicodeEncodeError):
            raise fail(
                f"it does not belong to workspace {team_id} as {purpose}, or it was altered"
            ) from None
        return SecretStr(plain.decode("utf-8"))

    def is_current(self, token: str, *, row: str | None = None) -> bool:
        """Whether `token` is already encrypted under the first key (and, for a secret with a
        row of its own, bound to it): rotation skips it."""
        version, key_id, _ = _split(token)
        bound = version == _BOUND if row else version == _VERSION
        return bound and key_id == self._primary


def key_id_of(token: str) -> str | None:
    """The id of the key that made `token`, or None when it is not a PushOps ciphertext."""
    version, key_id, _ = _split(token)
    return key_id if version in (_VERSION, _BOUND) and key_id else None


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", "", "")


def _associated_data(
    version: str, key_id: str, team_id: str, purpose: str, row: str | None
) -> bytes:
    # JSON keeps the fields unambiguous whatever characters an id holds.
    fields = ["pushops", version, key_id, team_id, purpose, *([row] if row else [])]
    return json.dumps(fields).encode("utf-8")


def key_file_warning(path: Path) -> str:
    """What an operator should know when the key ring comes from the key file `path`."""
    return (
        f"{_ENV_NAME} is not set: the key that decrypts the stored OneSignal keys and Slack "
        f"tokens is read from {path.resolve()}, in the data directory beside the SQLite "
        "database, so a copy of the data directory carries both the secrets and their key. "
        f"Put the key in {_ENV_NAME} (kept apart from the data), then delete the file."
    )


def load_keyring(*, secret_key: SecretStr | None, data_dir: Path) -> KeyRing:
    """The ring from ``PUSHOPS_SECRET_KEY``, or from the key file in the data dir (made once)."""
    if secret_key is not None and secret_key.get_secret_value().strip():
        return KeyRing.from_text(secret_key.get_secret_value())
    path = data_dir / KEY_FILE_NAME
    return KeyRing.from_text(_read_or_create_key_file(path), source=str(path))


def read_keyring(*, secret_key: SecretStr | None, data_dir: Path) -> KeyRing | None:
    """The ring `load_keyring` would use, without making a key file: None when there is none."""
    if secret_key is not None and secret_key.get_secret_value().strip():
        return KeyRing.from_text(secret_key.get_secret_value())
    return key_file_ring(data_dir)


def key_file_ring(data_dir: Path) -> KeyRing | None:
    """The ring in the data dir's key file (made when no key was set), None without one."""
    path = data_dir / KEY_FILE_NAME
    try:
        return KeyRing.from_text(_read_key_file(path), source=str(path))
    except FileNotFoundError:
        return None


def _read_or_create_key_file(path: Path) -> str:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_key() + "\n")
        # A hard link publishes the complete file atomically and fails if another process won
        # the race, so two processes starting together still share one key.
        os.link(temporary, path)
    except FileExistsError:
        return _read_key_file(path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.warning(
        "%s is not set: generated a new key into %s (mode 0600). Back this file up or move its "
        "content into %s; without it the stored secrets cannot be decrypted.",
        _ENV_NAME,
        path.resolve(),
        _ENV_NAME,
    )
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("The key file %s is readable by others (mode %o): chmod 600 it.", path, mode)
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.__class__.__name__
        raise KeyConfigError(f"Cannot read the key file {path}: {reason}.") from None
