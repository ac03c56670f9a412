"""Splitting one notification to many external ids into requests OneSignal accepts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from bot.onesignal.errors import InvalidRequest, OneSignalError

# OneSignal takes at most 2,000 ids in one targeting list.
MAX_IDS_PER_REQUEST = 2000


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What happened to one batch of `OneSignalClient.send_to_external_ids`.

    Attributes:
        index: the batch number, from 0.
        idempotency_key: the key this batch was sent with (retry with the same one).
        external_ids_count: how many external ids the batch targeted.
        notification_id: OneSignal's id, when the batch was accepted.
        recipients: OneSignal's recipient count, when it gave one.
        error: why the batch failed (`NothingSent` when nobody matched), else None.
    """

    index: int
    idempotency_key: str
    external_ids_count: int
    notification_id: str | None = None
    recipients: int | None = None
    error: OneSignalError | None = None

    @property
    def ok(self) -> bool:
        """True when OneSignal accepted the batch."""
        return self.error is None


def unique_ids(external_ids: Iterable[str]) -> list[str]:
    """The ids in first-seen order without repeats (a repeat across batches sends twice)."""
    ids = list(dict.fromkeys(external_ids))
    if not ids:
        raise InvalidRequest("external_ids is empty: name at least one recipient")
    if any(not isinstance(i, str) or not i for i in ids):
        raise InvalidRequest("every external id must be a non-empty string")
    return ids


def chunk(ids: list[str], size: int) -> list[list[str]]:
    """`ids` cut into consecutive lists of at most `size`."""
    if not 1 <= size <= MAX_IDS_PER_REQUEST:
        raise InvalidRequest(f"batch_size must be between 1 and {MAX_IDS_PER_REQUEST}")
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def batch_key(idempotency_key: str, index: int, batches: int) -> str:
    """The idempotency key of batch `index` of `batches`.

    One batch keeps the caller's key unchanged; several get UUIDv5(caller's key, index),
    so every batch has its own key and a retry of the whole send derives the same ones.
    """
    if batches == 1:
        return idempotency_key
    return str(uuid.uuid5(_namespace(idempotency_key), str(index)))


def _namespace(key: str) -> uuid.UUID:
    try:
        return uuid.UUID(key)
    except ValueError:
        # Not a UUID: derive a stable namespace from the text itself.
        return uuid.uuid5(uuid.NAMESPACE_URL, key)
