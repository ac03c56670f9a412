"""What the send services answer (estimates, cancellations, status) and how hard they try."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, TypeAlias

from sqlalchemy.exc import DBAPIError

from storage.claims import DEFAULT_LEASE
from storage.db import WriteBusy, is_lock_timeout
from storage.errors import ShortIdExhausted, WorkspaceNotFound
from storage.models import Send

CancelKind: TypeAlias = Literal[
    "stopped_before_sending", "cancelled_at_onesignal", "already_finished", "not_cancellable"
]

COUNTERS: Final = ("successful", "failed", "errored", "converted", "remaining", "received")
"""OneSignal's delivery counters a status report sums over a send's notifications."""

MAY_STILL_REACH: Final = "A notification already sending may still reach some users."


class SendNotFound(LookupError):
    """No send (or OneSignal notification) by that reference in this workspace."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"No send `{ref[:64]}` in this workspace. Use the 6-character id PushOps showed "
            "(like `7K3M9Q`) or the OneSignal notification id; `/push list` shows recent sends."
        )


class DecisionRefused(Exception):
    """An approval or rejection that may not be recorded: the requester deciding on their own
    send, or an approver answering twice. Its message says which, fit to show the person."""


class NoLongerPending(Exception):
    """The send left pending approval (cancelled, expired, decided by another approver)
    before the decision was recorded: nothing of the decision was kept."""


class NotEditable(Exception):
    """The send went out, is going, or ended before the edit was saved: nothing was changed.

    Attributes:
        short_id: the send's short id.
        state: the state it is in now (`sending`, `sent`, `cancelled`...).
    """

    def __init__(self, short_id: str, state: str) -> None:
        self.short_id = short_id
        self.state = state
        super().__init__(f"Send {short_id} is {state}; nothing was changed.")


class StoreBusy(Exception):
    """Other writers held the database longer than storing the send could wait: nothing of it
    was written, so nothing will be sent."""


class StoreRefused(Exception):
    """The database refused to store the send before its transaction's commit: nothing of it
    was written, so nothing will be sent."""


class StoreInterrupted(Exception):
    """The database failed while committing the send: it may or may not have been stored."""


@dataclass
class Storing:
    """Where a store stands: `committing` once its last statement ran and the commit is next."""

    committing: bool = False


@contextmanager
def store_errors(what: str) -> Iterator[Storing]:
    """Translate the database's failures while storing `what` into what the requester may rely
    on: `StoreBusy` and `StoreRefused` (nothing was stored), `StoreInterrupted` (the commit
    failed: it may have been). A lock timeout without a caller's wait goes on as it is.

    Set `committing` on the yielded `Storing` just before the transaction's commit.
    """
    storing = Storing()
    try:
        yield storing
    except WriteBusy:
        raise StoreBusy(f"other writers held the database; no {what} was stored") from None
    except (WorkspaceNotFound, ShortIdExhausted) as error:  # nothing was stored
        raise StoreRefused(str(error)) from None
    except DBAPIError as error:
        if is_lock_timeout(error):
            raise  # no `lock_wait`: the caller's own `limited_lock_wait` says busy
        # Only a failure of the commit itself leaves it open whether the row was stored.
        failed = StoreInterrupted if storing.committing else StoreRefused
        raise failed(f"the database failed ({type(error).__name__})") from error


@dataclass(frozen=True)
class Estimate:
    """How many people an audience reaches now; `count` None with a `note` when unknown."""

    count: int | None
    note: str | None = None


@dataclass(frozen=True)
class CancelOutcome:
    """What `cancel` did, in words fit for the person who asked.

    Attributes:
        send: the send, or None when the reference was a OneSignal id PushOps does not know.
        kind: stopped before it left; cancelled at OneSignal (it had left); already finished
            (delivered to everyone, or already stopped); or not cancellable (OneSignal
            refused or could not be reached; the message says which).
        message: an exact, honest sentence or two.
    """

    send: Send | None
    kind: CancelKind
    message: str


@dataclass(frozen=True)
class StatusReport:
    """OneSignal's counters for a send (summed over its batches) or a bare notification.

    Attributes:
        send: the send, or None for a OneSignal id PushOps does not know.
        notification_ids: every notification of the send (one per batch).
        counters: successful, failed, errored, converted, remaining, received.
        per_platform: platform (`ios`, `android`, ...) -> counter -> value.
        completed_at: when OneSignal finished, once every notification has.
        canceled: whether OneSignal reports any of them cancelled.
        note: a sentence when counters are missing or partial (not sent yet, unreachable).
    """

    send: Send | None
    notification_ids: list[str]
    counters: dict[str, int] = field(default_factory=dict)
    per_platform: dict[str, dict[str, int]] = field(default_factory=dict)
    completed_at: datetime | None = None
    canceled: bool = False
    note: str | None = None


@dataclass(frozen=True)
class DeliveryPolicy:
    """How delivery tries, waits and holds; the defaults suit production, tests shorten them.

    Attributes:
        max_attempts: claims of one send before a passing failure (timeout, 5xx, 429)
            becomes `failed`; each attempt already retries inside the client.
        checks: rounds of asking OneSignal, by name, whether a send whose last call got no
            usable answer went out, once it may not be attempted again (out of attempts, or
            later than its due time plus the grace); while OneSignal cannot say, the send is
            held in `sending` for the next round, and after the last it ends saying it may
            have gone out.
        backoff: seconds before the second attempt; doubles per attempt, up to `max_backoff`.
            OneSignal's `Retry-After`, when longer, wins.
        lease: seconds a claimed send belongs to its worker; a live worker renews it, a dead
            worker's send is taken over once it ends (and retried with the same key).
        max_queued: seconds a send claimed as it was stored keeps its claim (renewed) while
            it waits for a place to be delivered; past that the claim is let go.
        max_in_flight: OneSignal calls at once in this process.
        client_retries, client_retry_delay, client_retry_max_delay: the client's own retries
            inside one attempt (`bot.onesignal.RetryPolicy`).
        credentials_ttl: seconds a decrypted app key is kept in memory.
        record_batch: most delivery results written in one transaction.
        record_backoff, record_max_backoff: seconds before a result the database refused is
            tried again; doubling per refusal in a row, up to the latter.
        counters_after: seconds after a send went out that its final counters are read from
            OneSignal (once per notification) and shown in its messages; None: never.
    """

    max_attempts: int = 5
    checks: int = 3
    backoff: float = 10.0
    max_backoff: float = 300.0
    lease: float = DEFAULT_LEASE.total_seconds()
    max_queued: float = 600.0
    max_in_flight: int = 50
    client_retries: int = 3
    client_retry_delay: float = 0.5
    client_retry_max_delay: float = 30.0
    credentials_ttl: float = 60.0
    record_batch: int = 200
    record_backoff: float = 0.5
    record_max_backoff: float = 10.0
    counters_after: float | None = 3600.0

    def __post_init__(self) -> None:
        if min(self.max_attempts, self.checks, self.max_in_flight, self.record_batch) < 1:
            raise ValueError(
                "max_attempts, checks, max_in_flight and record_batch must be at least 1"
            )
        if self.counters_after is not None and self.counters_after < 0:
            raise ValueError("counters_after must not be negative")
        waits = (self.backoff, self.max_backoff, self.lease, self.max_queued, self.credentials_ttl)
        if min(*waits, self.record_backoff, self.record_max_backoff) <= 0:
            raise ValueError(
                "backoff, max_backoff, lease, max_queued, credentials_ttl, record_backoff and "
                "record_max_backoff must be positive"
            )

    @property
    def counters_wait(self) -> timedelta | None:
        """`counters_after` as a duration (None: counters are never read)."""
        return None if self.counters_after is None else timedelta(seconds=self.counters_after)

    def wait_before(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        wait: float = min(self.max_backoff, self.backoff * 2.0 ** max(0, attempt - 1))
        return max(wait, retry_after or 0.0)
