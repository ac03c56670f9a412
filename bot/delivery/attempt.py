"""One delivery attempt of a claimed send: the OneSignal call(s) and what their answers mean.

Nothing here writes to the database: the attempt ends in a `DeliveryResult` (sent, failed,
or kept in `sending` until a retry) that the service records, and in a sentence for people.

Passing failures (no answer, 5xx, 429, an unreadable answer) are retried with the same
idempotency key until `DeliveryPolicy.max_attempts`; OneSignal's refusals (400, 401, 403,
404, 409, nothing sent) fail at once: repeating them cannot help.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.delivery.apps import AppClient, AppClients, AppUnavailable
from bot.delivery.content import Audience, SendContent, SendRejected
from bot.delivery.outcomes import DeliveryPolicy
from bot.onesignal import (
    BatchResult,
    Forbidden,
    InvalidRequest,
    NothingSent,
    NotificationRequest,
    OneSignalAPIError,
    OneSignalError,
    OneSignalTimeout,
    OneSignalTransportError,
    RateLimited,
    ServerError,
    Unauthorized,
    UnexpectedResponse,
)
from bot.words import plural
from storage.deliveries import DeliveryResult
from storage.models import Send, SendState


@dataclass(frozen=True)
class Attempt:
    """What one attempt did.

    Attributes:
        result: what to record.
        reason: for people, why it failed or what of it failed (None when all went out).
        notification_ids: what OneSignal created (to cancel there if the send was stopped).
    """

    result: DeliveryResult
    reason: str | None = None
    notification_ids: list[str] = field(default_factory=list)


def is_passing(error: BaseException) -> bool:
    """Whether trying again later (same key) may succeed where this failed."""
    return isinstance(
        error, OneSignalTransportError | ServerError | RateLimited | UnexpectedResponse
    )


def explain(error: BaseException) -> str:
    """One sentence on what OneSignal said (no key ever appears in these texts)."""
    if isinstance(error, NothingSent):
        return f"OneSignal sent it to nobody: {error.reason}."
    if isinstance(error, RateLimited):
        return "OneSignal's rate limit was reached (HTTP 429)."
    if isinstance(error, UnexpectedResponse):
        return f"OneSignal gave an answer PushOps could not read (HTTP {error.status})."
    if isinstance(error, OneSignalAPIError):
        detail = "; ".join(error.errors) or "no details given"
        verb = "failed" if isinstance(error, ServerError) else "refused it"
        return f"OneSignal {verb} (HTTP {error.status}): {detail}."
    if isinstance(error, OneSignalTimeout):
        return "OneSignal did not answer in time."
    if isinstance(error, OneSignalTransportError):
        return "OneSignal could not be reached."
    if isinstance(error, InvalidRequest):
        return f"The notification was refused before sending: {error}."
    return f"Delivery failed ({type(error).__name__})."


def notification_ids(send: Send) -> list[str]:
    """Every OneSignal notification of a send, in batch order (the first one alone if older)."""
    ids = [str(b["notification_id"]) for b in send.batches or [] if b.get("notification_id")]
    if not ids and send.notification_id:
        ids = [send.notification_id]
    return ids


def deadline_of(send: Send, grace: timedelta | None) -> datetime | None:
    """The last moment an attempt of `send` may start: its due time plus the misfire grace
    (DESIGN.md invariant 4); None when there is no such limit."""
    if grace is None or send.due_at is None:
        return None
    return send.due_at + grace


async def attempt_delivery(
    send: Send,
    *,
    apps: AppClients,
    policy: DeliveryPolicy,
    clock: Callable[[], datetime],
    grace: timedelta | None = None,
) -> Attempt:
    """Send a claimed send to OneSignal once (the client retries briefly inside) and judge it.

    With `grace`, a retry that would start later than the send's due time plus the grace is
    not planned: the send ends failed (or partly delivered) now, saying why.
    """
    try:
        content = SendContent.from_stored(send.content)
        audience = Audience.from_stored(send.audience)
    except (SendRejected, TypeError) as error:
        return _failed(send, f"The stored send cannot be delivered: {error}")
    try:
        app = await apps.for_app(send.team_id, send.app_ref, send.app_name)
    except AppUnavailable as error:
        return _failed(send, str(error))
    batches = await _call(send, app, content, audience)
    if any(isinstance(b.error, Unauthorized | Forbidden) for b in batches):
        apps.forget(send.team_id, send.app_ref)
    # waits count from the failure
    return judge(send, batches, policy=policy, now=clock(), deadline=deadline_of(send, grace))


def notification_name(send: Send) -> str:
    """The `name` every OneSignal notification of `send` carries (each of its batches too).

    OneSignal shows it in its dashboard and returns it when notifications are listed; with
    the send's UUID in it, a cancel can find what a worker that died created but never
    recorded (`recall.find_by_name`).
    """
    return f"PushOps {send.short_id} {send.id}"


async def _call(
    send: Send, app: AppClient, content: SendContent, audience: Audience
) -> list[BatchResult]:
    key = str(send.id)  # DESIGN.md invariant 3: the send's UUID is the idempotency key
    template: dict[str, Any] = {
        "app_id": app.onesignal_app_id,
        "name": notification_name(send),
        **content.notification_fields(),
    }
    if audience.by_id:
        return await app.client.send_to_external_ids(
            NotificationRequest(**template), audience.external_ids, idempotency_key=key
        )
    request = NotificationRequest(**template, **audience.segment_fields(), idempotency_key=key)
    try:
        created = await app.client.create_notification(request)
    except OneSignalError as error:
        return [BatchResult(0, key, 0, error=error)]
    return [BatchResult(0, key, 0, created.id, created.recipients)]


def judge(
    send: Send,
    batches: Sequence[BatchResult],
    *,
    policy: DeliveryPolicy,
    now: datetime,
    deadline: datetime | None = None,
) -> Attempt:
    """Sent, failed, or kept for another attempt, from each batch's outcome.

    A retry is planned only if it starts by `deadline` (however long OneSignal's
    Retry-After): a send is never attempted later than its due time plus the grace.
    """
    done = [b for b in batches if b.ok and b.notification_id]
    bad = [b for b in batches if not b.ok]
    ids = [b.notification_id for b in done if b.notification_id]
    recorded = [_batch_record(b) for b in batches]
    first = ids[0] if ids else None
    if not bad:
        return Attempt(DeliveryResult(send.id, SendState.SENT, first, recorded), None, ids)
    passing = [b for b in bad if b.error is not None and is_passing(b.error)]
    reason = _failures(bad, len(batches))
    if passing and send.attempts < policy.max_attempts:
        wait = policy.wait_before(send.attempts, _longest_retry_after(passing))
        retry_at = now + timedelta(seconds=wait)
        if deadline is None or retry_at <= deadline:
            result = DeliveryResult(send.id, SendState.SENDING, first, recorded, reason, retry_at)
            return Attempt(result, reason, ids)
        reason += (
            f" Not tried again: the next try ({span(wait)} later) would be more than "
            f"{span(_grace_of(send, deadline))} after its due time."
        )
    elif passing:
        reason += f" Gave up after {plural(send.attempts, 'attempt')}."
    return _ended(send, done, bad, len(batches), reason, recorded)


def too_late(send: Send, *, grace: timedelta) -> Attempt:
    """The end of a send found still unfinished more than `grace` after its due time: what
    went out (the batches with an id) stays sent, the rest is not attempted any more."""
    recorded = [dict(batch) for batch in send.batches or []]
    ids = [str(b["notification_id"]) for b in recorded if b.get("notification_id")]
    missing = [b for b in recorded if not b.get("notification_id")]
    why = f"Not sent: still not delivered {span(grace.total_seconds())} after its due time."
    if not ids:
        return Attempt(DeliveryResult(send.id, SendState.FAILED, None, recorded, why), why)
    users = sum(int(b.get("external_ids") or 0) for b in missing)
    went = ", ".join(
        f"batch {int(b.get('index', 0)) + 1} ({b['notification_id']})"
        for b in recorded
        if b.get("notification_id")
    )
    reason = (
        f"Partly delivered: {len(missing)} of {len(recorded)} batches ({plural(users, 'user')}) "
        f"were not sent, being still undelivered {span(grace.total_seconds())} after the due time. "
        f"The other {len(ids)} went out: {went}."
    )
    result = DeliveryResult(send.id, SendState.SENT, ids[0], recorded, reason)
    return Attempt(result, reason, ids)


def span(seconds: float) -> str:
    """`45 s`, `10 min`, `2 h`: a duration for people."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.3g} h"


def _grace_of(send: Send, deadline: datetime) -> float:
    return (deadline - send.due_at).total_seconds() if send.due_at is not None else 0.0


def _ended(
    send: Send,
    done: Sequence[BatchResult],
    bad: Sequence[BatchResult],
    total: int,
    reason: str,
    recorded: list[dict[str, Any]],
) -> Attempt:
    """No more attempts: sent (partly) when any batch went out, else failed."""
    ids = [b.notification_id for b in done if b.notification_id]
    first = ids[0] if ids else None
    if done:
        reason = _partly(done, bad, total, reason)
        return Attempt(
            DeliveryResult(send.id, SendState.SENT, first, recorded, reason), reason, ids
        )
    return Attempt(DeliveryResult(send.id, SendState.FAILED, None, recorded, reason), reason, ids)


def _failed(send: Send, reason: str) -> Attempt:
    return Attempt(DeliveryResult(send.id, SendState.FAILED, None, (), reason), reason)


def _longest_retry_after(batches: Sequence[BatchResult]) -> float | None:
    waits = [b.error.retry_after for b in batches if isinstance(b.error, RateLimited)]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def _batch_record(batch: BatchResult) -> dict[str, Any]:
    return {
        "index": batch.index,
        "idempotency_key": batch.idempotency_key,
        "external_ids": batch.external_ids_count,
        "notification_id": batch.notification_id,
        "recipients": batch.recipients,
        "error": explain(batch.error) if batch.error is not None else None,
        "status": getattr(batch.error, "status", None),
    }


def _failures(bad: Sequence[BatchResult], total: int) -> str:
    if total == 1:
        return explain(bad[0].error) if bad[0].error is not None else "Nothing was sent."
    parts = [
        f"batch {b.index + 1} of {total} ({plural(b.external_ids_count, 'user')}): "
        + (explain(b.error) if b.error is not None else "nothing sent")
        for b in bad
    ]
    return "; ".join(parts)


def _partly(done: Sequence[BatchResult], bad: Sequence[BatchResult], total: int, why: str) -> str:
    sent_users = sum(b.external_ids_count for b in done)
    failed_users = sum(b.external_ids_count for b in bad)
    went = ", ".join(f"batch {b.index + 1} ({b.notification_id})" for b in done)
    return (
        f"Partly delivered: {len(bad)} of {total} batches ({plural(failed_users, 'user')}) "
        f"failed: {why} The other {len(done)} ({plural(sent_users, 'user')}) went out: {went}."
    )
