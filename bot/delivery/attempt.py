"""One delivery attempt of a claimed send: the OneSignal call(s) and what their answers mean.

Nothing here writes to the database: the attempt ends in a `DeliveryResult` (sent, failed,
missed, or kept in `sending` for a later round) that the service records, and in a sentence
for people.

Passing failures (no answer, 5xx, 429, an unreadable answer) are retried with the same
idempotency key until `DeliveryPolicy.max_attempts`, and never later than the send's due time
plus the grace; OneSignal's refusals (400, 401, 403, 404, 409, nothing sent) fail at once:
repeating them cannot help.

A call without a usable answer may have created the notification all the same. Such a send
is never called failed, missed or "nothing sent" before OneSignal has been asked:
- right after the call, by the notification's name (`recall.look_up`, a read that never
  sends): found, the send is sent;
- while it may still be attempted, by the next attempt too: the same key replays
  OneSignal's first answer, or sends it if the first call never arrived, which is right
  until its due time plus the grace;
- after that (late, or out of attempts), by its name only, in check rounds (`settle`): a
  replay would send it late. A crashed worker's send found late is settled the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.delivery import notifications
from bot.delivery.answers import Absent, explain, is_passing, outcome_unknown
from bot.delivery.apps import AppClient, AppClients, AppUnavailable
from bot.delivery.content import Audience, SendContent, SendRejected
from bot.delivery.options import DeliveryOptions
from bot.delivery.outcomes import DeliveryPolicy
from bot.onesignal import (
    BatchResult,
    Forbidden,
    NotificationRequest,
    OneSignalError,
    RateLimited,
    Unauthorized,
)
from bot.onesignal.batching import MAX_IDS_PER_REQUEST, batch_key, chunk, unique_ids
from bot.words import plural
from storage.deliveries import DeliveryResult
from storage.models import Send, SendState

__all__ = [
    "Attempt",
    "absent",
    "attempt_delivery",
    "deadline_of",
    "earliest_call",
    "explain",
    "judge",
    "may_attempt",
    "notification_ids",
    "notification_name",
    "settle",
    "span",
]

NOTHING_THERE = "OneSignal has no notification of it: nothing was sent."
MAY_HAVE_GONE = "It may have gone out: OneSignal could not be asked whether it did."


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


def notification_ids(send: Send) -> list[str]:
    """Every OneSignal notification of a send, in batch order (the first one alone if older)."""
    ids = [str(b["notification_id"]) for b in send.batches or [] if b.get("notification_id")]
    if not ids and send.notification_id:
        ids = [send.notification_id]
    return ids


def deadline_of(send: Send, grace: timedelta | None) -> datetime | None:
    """The last moment an attempt of `send` may start: its due time plus the misfire grace
    (docs/design.md invariant 4); None when there is no such limit."""
    if grace is None or send.due_at is None:
        return None
    return send.due_at + grace


def may_attempt(
    send: Send, *, policy: DeliveryPolicy, now: datetime, grace: timedelta | None
) -> bool:
    """Whether this claim of `send` may call OneSignal's create (else it may only ask by
    name): within `max_attempts` claims, and not later than its due time plus the grace."""
    deadline = deadline_of(send, grace)
    return send.attempts <= policy.max_attempts and (deadline is None or now <= deadline)


def earliest_call(send: Send) -> datetime:
    """No OneSignal call for `send` was made before this: it is claimed only once due."""
    return send.due_at or send.created_at


def notification_name(send: Send, batch: int = 0, batches: int = 1) -> str:
    """The `name` of the OneSignal notification of `send`, or of its batch `batch` of `batches`.

    OneSignal shows it in its dashboard and returns it when notifications are listed; with
    the send's UUID in it, what a call without an answer (or a worker that died) created
    can be found (`recall.look_up`), each batch under its own name.
    """
    name = f"PushOps {send.short_id} {send.id}"
    return name if batches == 1 else f"{name} {batch + 1}/{batches}"


async def attempt_delivery(
    send: Send,
    *,
    apps: AppClients,
    policy: DeliveryPolicy,
    clock: Callable[[], datetime],
    grace: timedelta | None = None,
) -> Attempt:
    """Send a claimed send to OneSignal once (the client retries briefly inside) and judge it.

    A call left without a usable answer is followed by a look-up by name. With `grace`, a
    retry that would start later than the send's due time plus the grace is not planned.
    """
    try:
        content = SendContent.from_stored(send.content)
        audience = Audience.from_stored(send.audience)
        options = DeliveryOptions.from_stored(send.options)
    except (SendRejected, TypeError) as error:
        return _failed(send, f"The stored send cannot be delivered: {error}")
    try:
        app = await apps.for_app(send.team_id, send.app_ref, send.app_name)
    except AppUnavailable as error:
        records = _records_of(send, audience)
        if send.attempts > 1 and any(r.get("unknown") for r in records):
            # an earlier call may have gone out: say nothing false of it
            return _unsettled(send, policy, clock(), records, str(error))
        return _failed(send, str(error))
    batches = await _call(send, app, content, audience, options)
    if any(b.error is not None and outcome_unknown(b.error) for b in batches):
        batches = await _ask_by_name(send, app, batches)
    if any(isinstance(b.error, Unauthorized | Forbidden) for b in batches):
        apps.forget(send.team_id, send.app_ref)
    # waits count from the failure
    return judge(send, batches, policy=policy, now=clock(), deadline=deadline_of(send, grace))


async def settle(
    send: Send,
    *,
    apps: AppClients,
    policy: DeliveryPolicy,
    clock: Callable[[], datetime],
    grace: timedelta | None = None,
) -> Attempt:
    """A check round for a held send that may no longer be attempted: ask OneSignal, by name,
    for what is not recorded as sent, and end the send with what OneSignal says.

    Never sends. What OneSignal has is sent; what it has not, is not. While OneSignal cannot
    be asked, the send is held for another check, `DeliveryPolicy.checks` times at most.
    """
    try:
        audience = Audience.from_stored(send.audience)
    except (SendRejected, TypeError) as error:
        return _failed(send, f"The stored send cannot be delivered: {error}")
    records = _records_of(send, audience)
    deadline = deadline_of(send, grace)
    late_by = grace if deadline is not None and clock() > deadline else None
    if not any(r.get("unknown") for r in records):  # nothing of it can have gone out unseen
        return absent(send, records, late_by=late_by, asked=False)
    try:
        app = await apps.for_app(send.team_id, send.app_ref, send.app_name)
    except AppUnavailable as error:
        return _unsettled(send, policy, clock(), records, str(error))
    found = await notifications.look_up(app, notification_name(send), since=earliest_call(send))
    if found is None:
        return _unsettled(send, policy, clock(), records, send.last_error)
    records = [_found_in(record, send, len(records), found) for record in records]
    if all(r.get("notification_id") for r in records):
        ids = [str(r["notification_id"]) for r in records]
        return Attempt(DeliveryResult(send.id, SendState.SENT, ids[0], records), None, ids)
    return absent(send, records, late_by=late_by)


async def _call(
    send: Send, app: AppClient, content: SendContent, audience: Audience, options: DeliveryOptions
) -> list[BatchResult]:
    key = str(send.id)  # docs/design.md invariant 3: the send's UUID is the idempotency key
    template: dict[str, Any] = {  # every batch carries the same fields
        "app_id": app.onesignal_app_id,
        "name": notification_name(send),
        **content.notification_fields(),
        **options.notification_fields(),
    }
    if audience.by_id:
        return await app.client.send_to_external_ids(
            NotificationRequest(**template),
            audience.external_ids,
            idempotency_key=key,
            batch_name=lambda index, count: notification_name(send, index, count),
        )
    request = NotificationRequest(**template, **audience.segment_fields(), idempotency_key=key)
    try:
        created = await app.client.create_notification(request)
    except OneSignalError as error:
        return [BatchResult(0, key, 0, error=error)]
    return [BatchResult(0, key, 0, created.id, created.recipients)]


async def _ask_by_name(send: Send, app: AppClient, batches: list[BatchResult]) -> list[BatchResult]:
    """`batches`, each whose outcome was unknown settled by OneSignal's listing: found (sent),
    or `Absent`; left unknown when OneSignal could not say."""
    found = await notifications.look_up(app, notification_name(send), since=earliest_call(send))
    if found is None:
        return batches
    settled = []
    for batch in batches:
        if batch.error is None or not outcome_unknown(batch.error):
            settled.append(batch)
            continue
        ids = found.get(notification_name(send, batch.index, len(batches)))
        if ids:
            settled.append(replace(batch, notification_id=ids[0], error=None))
        else:
            settled.append(replace(batch, error=Absent(batch.error)))
    return settled


def judge(
    send: Send,
    batches: Sequence[BatchResult],
    *,
    policy: DeliveryPolicy,
    now: datetime,
    deadline: datetime | None = None,
) -> Attempt:
    """Sent, failed, or kept for another round, from each batch's outcome.

    A retry is planned only if it starts by `deadline` (however long OneSignal's
    Retry-After): a send is never attempted later than its due time plus the grace. A
    batch whose outcome is unknown, or which OneSignal did not have right after the call,
    is never called "not sent" here: the send is held for a check round (`settle`).
    """
    done = [b for b in batches if b.ok and b.notification_id]
    bad = [b for b in batches if not b.ok]
    ids = [b.notification_id for b in done if b.notification_id]
    recorded = [_batch_record(b, send.attempts) for b in batches]
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
    if any(isinstance(error, Absent) or outcome_unknown(error) for error in _errors(passing)):
        retry_at = now + timedelta(seconds=policy.wait_before(send.attempts))
        result = DeliveryResult(send.id, SendState.SENDING, first, recorded, reason, retry_at)
        return Attempt(result, reason, ids)
    return _ended(send, done, bad, len(batches), reason, recorded)


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


def _errors(batches: Sequence[BatchResult]) -> list[OneSignalError]:
    return [b.error for b in batches if b.error is not None]


def _failed(send: Send, reason: str) -> Attempt:
    return Attempt(DeliveryResult(send.id, SendState.FAILED, None, (), reason), reason)


def _longest_retry_after(batches: Sequence[BatchResult]) -> float | None:
    waits = [b.error.retry_after for b in batches if isinstance(b.error, RateLimited)]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def _batch_record(batch: BatchResult, attempt: int) -> dict[str, Any]:
    """A batch's outcome as stored. `unknown`: OneSignal has not said (the call got no usable
    answer, and no look-up since settled it: one right after the call is not the last word).
    `attempt`: the claim of the send that made it."""
    error = batch.error
    return {
        "index": batch.index,
        "idempotency_key": batch.idempotency_key,
        "external_ids": batch.external_ids_count,
        "notification_id": batch.notification_id,
        "recipients": batch.recipients,
        "error": explain(error) if error is not None else None,
        "status": getattr(error, "status", None),
        "unknown": error is not None and (outcome_unknown(error) or isinstance(error, Absent)),
        "attempt": attempt,
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


# --- check rounds ------------------------------------------------------------------------------


def _records_of(send: Send, audience: Audience) -> list[dict[str, Any]]:
    """The send's batch records as this claim finds them, each stamped with this claim.

    As the last recorded round left them; when a claim since then died before its result
    was recorded (or none ever was: one blank record per batch its audience makes), every
    batch not known to be sent is `unknown`: that claim's call may have reached OneSignal.
    """
    records = [dict(batch) for batch in send.batches or []] or _blanks(send, audience)
    previous = send.attempts - 1  # the claim before this one
    cut_off = any(int(r.get("attempt") or 0) < previous for r in records)
    return [
        r
        | {"attempt": send.attempts}
        | ({"unknown": True} if cut_off and not r.get("notification_id") else {})
        for r in records
    ]


def _blanks(send: Send, audience: Audience) -> list[dict[str, Any]]:
    key = str(send.id)
    if not audience.by_id:
        return [_blank(0, key, 0)]
    sizes = [len(ids) for ids in chunk(unique_ids(audience.external_ids), MAX_IDS_PER_REQUEST)]
    return [_blank(i, batch_key(key, i, len(sizes)), size) for i, size in enumerate(sizes)]


def _blank(index: int, key: str, external_ids: int) -> dict[str, Any]:
    return {
        "index": index,
        "idempotency_key": key,
        "external_ids": external_ids,
        "notification_id": None,
        "recipients": None,
        "error": None,
        "status": None,
        "unknown": True,
        "attempt": 0,
    }


def _found_in(
    record: dict[str, Any], send: Send, total: int, found: Mapping[str, list[str]]
) -> dict[str, Any]:
    """`record` with the notification OneSignal lists under its batch's name, if any."""
    if record.get("notification_id"):
        return record
    ids = found.get(notification_name(send, int(record.get("index") or 0), total))
    if not ids:
        return record
    return record | {"notification_id": ids[0], "error": None, "status": None, "unknown": False}


def _unsettled(
    send: Send,
    policy: DeliveryPolicy,
    now: datetime,
    records: list[dict[str, Any]],
    why: str | None,
) -> Attempt:
    """OneSignal could not be asked: hold the send for another check, or (no checks left)
    end it saying that what is not recorded may have gone out."""
    ids = [str(r["notification_id"]) for r in records if r.get("notification_id")]
    first = ids[0] if ids else None
    reason = why or "Its delivery was cut off before OneSignal answered."
    if send.attempts < policy.max_attempts + policy.checks:
        retry_at = now + timedelta(seconds=policy.wait_before(send.attempts))
        result = DeliveryResult(send.id, SendState.SENDING, first, records, reason, retry_at)
        return Attempt(result, reason, ids)
    reason = f"{reason} {MAY_HAVE_GONE}"
    state = SendState.SENT if ids else SendState.FAILED
    return Attempt(DeliveryResult(send.id, state, first, records, reason), reason, ids)


def absent(
    send: Send, records: list[dict[str, Any]], *, late_by: timedelta | None, asked: bool = True
) -> Attempt:
    """The end of a send with batches that did not go out (`records` without a notification
    id): the others stay sent; with none, nothing was sent.

    `late_by`: the grace, when the send is now later than it (it may not be attempted again).
    `asked`: OneSignal said it has nothing of them (else their own answers said so).
    """
    records = [r | {"unknown": False} for r in records]  # OneSignal has said
    ids = [str(r["notification_id"]) for r in records if r.get("notification_id")]
    if ids:
        reason = _partly_recorded(records, late_by)
        result = DeliveryResult(send.id, SendState.SENT, ids[0], records, reason)
        return Attempt(result, reason, ids)
    if late_by is not None and send.last_error is None:
        # Its worker died before any answer was recorded: nothing went out, and it is late.
        why = (
            "Its delivery was cut off, OneSignal has no notification of it, and it is now "
            f"more than {span(late_by.total_seconds())} late."
        )
        return Attempt(DeliveryResult(send.id, SendState.MISSED, None, records, why), why)
    why = send.last_error or "Its delivery was cut off before OneSignal answered."
    if asked:
        reason = f"{why} {NOTHING_THERE}"
    elif late_by is not None:
        late = span(late_by.total_seconds())
        reason = f"{why} Not sent: still not delivered {late} after its due time."
    else:
        reason = why
    return Attempt(DeliveryResult(send.id, SendState.FAILED, None, records, reason), reason)


def _partly_recorded(records: Sequence[Mapping[str, Any]], late_by: timedelta | None) -> str:
    missing = [r for r in records if not r.get("notification_id")]
    users = sum(int(r.get("external_ids") or 0) for r in missing)
    went = ", ".join(
        f"batch {int(r.get('index', 0)) + 1} ({r['notification_id']})"
        for r in records
        if r.get("notification_id")
    )
    why = (
        f"being still undelivered {span(late_by.total_seconds())} after the due time"
        if late_by is not None
        else "and OneSignal has no notification of them"
    )  # (not late: they were asked about, as only unknown outcomes leave a send held)
    return (
        f"Partly delivered: {len(missing)} of {len(records)} batches "
        f"({plural(users, 'user')}) were not sent, {why}. "
        f"The other {len(records) - len(missing)} went out: {went}."
    )
