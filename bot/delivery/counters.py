"""A send's final delivery counters: read from OneSignal once per notification, within its limit.

When a send went out, its end owes a read of its counters for later (`storage.outbox.COUNTERS`,
`DeliveryPolicy.counters_after`: an hour by default). `FinalCounters` does that read: one
`GET /notifications/{id}` per notification of the send (one per batch: a send to a segment,
or to up to 2,000 external ids, has one), paced by `ViewPacer` within OneSignal's limit for
its view endpoints, and records what OneSignal said in the send's batches, so every later
message about the send shows them. A send whose counters were recorded already is not read
again (a drainer that died after recording them leaves only the messages to owe).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

from bot.delivery.answers import explain
from bot.delivery.apps import AppClient, AppClients, AppUnavailable
from bot.delivery.attempt import notification_ids
from bot.onesignal import (
    BadRequest,
    Forbidden,
    NotFound,
    NotificationDetails,
    OneSignalError,
    Unauthorized,
)
from storage import deliveries
from storage.db import Database
from storage.models import Send

FINAL_COUNTERS: Final = ("successful", "received", "failed", "errored", "converted", "remaining")
"""OneSignal's counters kept for a send, as OneSignal names them (`converted`: clicks)."""

VIEWS_PER_SECOND: Final = 1.0
"""OneSignal's limit on its view endpoints (view notification, view notifications, view
templates, view user): 1 request a second per app, with a look-back of 10. Counters are read
at that steady rate, leaving the look-back to what people wait for (`/push status`)."""


class ViewPacer:
    """Spaces this process's counters reads of each app `1 / per_second` apart."""

    def __init__(
        self,
        per_second: float = VIEWS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gap = 1.0 / per_second
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, app_id: str, reads: int, *, within: float) -> list[float] | None:
        """The moments (this clock's) of `reads` reads of `app_id`, now reserved; None, and
        nothing reserved, when the first would wait longer than `within` seconds."""
        now = self._clock()
        first = max(now, self._next.get(app_id, now))
        if first - now > within:
            return None
        moments = [first + i * self._gap for i in range(reads)]
        self._next[app_id] = moments[-1] + self._gap
        return moments

    def free_in(self, app_id: str) -> float:
        """Seconds until the next read of `app_id` may start."""
        return max(0.0, self._next.get(app_id, 0.0) - self._clock())


@dataclass(frozen=True)
class Counted:
    """The send with its final counters recorded (`counters_of` reads them)."""

    send: Send


@dataclass(frozen=True)
class Later:
    """Not read now: try again in `seconds` (the pace, or a passing failure: `why`).
    `counted`: whether this counts as a failed try (False when only paced)."""

    seconds: float
    why: str
    counted: bool = True


@dataclass(frozen=True)
class Uncountable:
    """OneSignal will not give the counters (the notification is gone, the key refused, the
    app removed): nothing is shown. `why` is for the log."""

    why: str


CountersRead: TypeAlias = Counted | Later | Uncountable

_FOR_GOOD = (NotFound, BadRequest, Unauthorized, Forbidden)
"""OneSignal's answers that asking again does not change."""


class FinalCounters:
    """Reads and records sends' final counters (see the module's docstring)."""

    def __init__(
        self, *, database: Database, apps: AppClients, pacer: ViewPacer | None = None
    ) -> None:
        self.database = database
        self.apps = apps
        self.pacer = pacer or ViewPacer()

    async def read(self, send: Send, *, within: float = 2.0) -> CountersRead:
        """Read `send`'s counters from OneSignal (unless recorded already) and record them."""
        if counters_of(send) is not None:
            return Counted(send)
        ids = notification_ids(send)
        if not ids:
            return Uncountable("no notification")
        try:
            app = await self.apps.for_app(send.team_id, send.app_ref, send.app_name)
        except AppUnavailable as error:
            return Uncountable(str(error))
        moments = self.pacer.reserve(app.onesignal_app_id, len(ids), within=within)
        if moments is None:
            return Later(self.pacer.free_in(app.onesignal_app_id), "paced", counted=False)
        try:
            details = await _read_all(app, ids, moments)
        except _FOR_GOOD as error:
            return Uncountable(explain(error))
        except OneSignalError as error:
            return Later(60.0, explain(error))
        recorded = await self._record(send, details)
        return Counted(recorded) if recorded is not None else Uncountable("send removed")

    async def _record(self, send: Send, details: Sequence[NotificationDetails]) -> Send | None:
        read_at = datetime.now(UTC).isoformat()
        counted = {d.id: {**_counters(d), "read_at": read_at} for d in details}
        async with self.database.sessions.begin() as session:
            return await deliveries.record_counters(
                session=session, team_id=send.team_id, send_id=send.id, counted=counted
            )


async def _read_all(
    app: AppClient, ids: Sequence[str], moments: Sequence[float]
) -> list[NotificationDetails]:
    """Each notification read at its reserved moment (of `time.monotonic`)."""
    details = []
    for nid, moment in zip(ids, moments, strict=True):
        wait = moment - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        details.append(await app.client.get_notification(app.onesignal_app_id, nid))
    return details


def _counters(details: NotificationDetails) -> dict[str, Any]:
    """What OneSignal reported of one notification (counters it left out stay out)."""
    kept: dict[str, Any] = {
        name: value for name in FINAL_COUNTERS if (value := getattr(details, name)) is not None
    }
    kept["completed_at"] = details.completed_at
    kept["canceled"] = bool(details.canceled)
    return kept


@dataclass(frozen=True)
class SendCounters:
    """A send's final counters, summed over its notifications.

    Attributes:
        totals: OneSignal's counters by OneSignal's names (`successful`, `received`,
            `failed`, `errored`, `converted`, `remaining`), those it reported.
        finished: whether OneSignal reported every notification's delivery completed (or
            cancelled) when they were read.
        read_at: when they were read (the latest read).
    """

    totals: Mapping[str, int]
    finished: bool
    read_at: datetime | None


def counters_of(send: Send) -> SendCounters | None:
    """The final counters recorded for `send`, or None before they were read."""
    counted = [b["counters"] for b in send.batches or [] if isinstance(b.get("counters"), dict)]
    if not counted:
        return None
    totals: dict[str, int] = {}
    for counters in counted:
        for name in FINAL_COUNTERS:
            value = counters.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    finished = all(c.get("completed_at") or c.get("canceled") for c in counted)
    moments = [str(c["read_at"]) for c in counted if c.get("read_at")]
    read_at = datetime.fromisoformat(max(moments)) if moments else None
    return SendCounters(totals, finished, read_at)
