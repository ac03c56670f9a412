"""Stopping notifications at OneSignal, reading their counters, and finding a send's notifications
by name: what `cancel` and `status` ask, and what delivery asks when a call's outcome is unknown.

A notification OneSignal already accepted can only be asked to stop; what was already
delivered stays delivered. These helpers say exactly that, never more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from bot.delivery.answers import explain
from bot.delivery.apps import AppClient
from bot.delivery.outcomes import COUNTERS
from bot.onesignal import BadRequest, NotFound, NotificationDetails, OneSignalError

log = logging.getLogger(__name__)

Answer = Literal["cancelled", "finished", "unknown", "error"]

_PAGE: Final = 50  # OneSignal lists at most 50 notifications a page


@dataclass(frozen=True)
class CancelAnswers:
    """OneSignal's answers to cancelling some notifications."""

    answers: dict[str, Answer] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def ids(self, answer: Answer) -> list[str]:
        """The notifications that got `answer`."""
        return [nid for nid, got in self.answers.items() if got == answer]


async def recall(app: AppClient, notification_ids: Sequence[str]) -> CancelAnswers:
    """Ask OneSignal to cancel each notification; what each answer was.

    `finished`: OneSignal says it was already sent to everyone (or it no longer exists to
    cancel); `unknown`: this app has no such notification; `error`: no usable answer.
    """
    answers: dict[str, Answer] = {}
    errors: dict[str, str] = {}
    for nid in notification_ids:
        try:
            await app.client.cancel_notification(app.onesignal_app_id, nid)
        except NotFound:
            answers[nid] = "unknown"
        except BadRequest as error:
            # OneSignal answers 400 "Notification has already been sent to all recipients".
            answers[nid] = "finished"
            errors[nid] = explain(error)
        except OneSignalError as error:
            answers[nid] = "error"
            errors[nid] = explain(error)
        else:
            answers[nid] = "cancelled"
    return CancelAnswers(answers, errors)


@dataclass
class Counters:
    """Counters summed over notifications, per platform too."""

    totals: dict[str, int] = field(default_factory=dict)
    per_platform: dict[str, dict[str, int]] = field(default_factory=dict)
    completed: list[datetime | None] = field(default_factory=list)
    canceled: bool = False

    def add(self, details: NotificationDetails) -> None:
        """Add one notification's counters."""
        for name in COUNTERS:
            self.totals[name] = self.totals.get(name, 0) + (getattr(details, name) or 0)
        for platform, stats in (details.platform_delivery_stats or {}).items():
            if not isinstance(stats, dict):
                continue
            into = self.per_platform.setdefault(str(platform), {})
            for name, value in stats.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    into[name] = into.get(name, 0) + value
        completed = details.completed_at
        self.completed.append(datetime.fromtimestamp(completed, UTC) if completed else None)
        self.canceled = self.canceled or bool(details.canceled)

    @property
    def completed_at(self) -> datetime | None:
        """When the last notification finished, once every one has."""
        if not self.completed or any(moment is None for moment in self.completed):
            return None
        return max(moment for moment in self.completed if moment is not None)


async def read_counters(
    app: AppClient, notification_ids: Sequence[str]
) -> tuple[Counters, list[str]]:
    """The summed counters, and a sentence per notification OneSignal did not give."""
    counters = Counters()
    problems: list[str] = []
    for nid in notification_ids:
        try:
            counters.add(await app.client.get_notification(app.onesignal_app_id, nid))
        except OneSignalError as error:
            problems.append(f"{nid}: {explain(error)}")
    return counters, problems


LOOKUP_PAGES: Final = 4
"""Pages of 50 (OneSignal's most) `find_by_name` reads, newest first."""

SETTLE_PAGES: Final = 20
"""Pages `look_up` may read to be sure: a send found by name decides what people are told."""


async def find_by_name(app: AppClient, name: str, *, since: datetime | None) -> list[str]:
    """The ids of the app's notifications named `name` (or one of its batches, `name` and
    a suffix), queued since `since` (a minute's slack for clocks), among its latest
    `LOOKUP_PAGES` pages; what was found before an error.

    Its limit: an app that queued more than 200 notifications since then hides older ones.
    """
    found, _complete = await _scan(app, name, since=since, pages=LOOKUP_PAGES)
    return [nid for ids in found.values() for nid in ids]


async def look_up(
    app: AppClient, name: str, *, since: datetime | None, pages: int = SETTLE_PAGES
) -> dict[str, list[str]] | None:
    """The app's notifications named `name` or one of its batches, queued since `since`: the
    ids under each exact name, oldest first. None when OneSignal could not say: a listing
    failed, or more than `pages` pages were queued since then."""
    found, complete = await _scan(app, name, since=since, pages=pages)
    return found if complete else None


async def _scan(
    app: AppClient, name: str, *, since: datetime | None, pages: int
) -> tuple[dict[str, list[str]], bool]:
    """(ids by exact name, oldest first; whether every notification since `since` was seen)."""
    earliest = since.timestamp() - 60 if since is not None else None
    found: dict[str, list[str]] = {}
    for page in range(pages):
        try:
            listed = await app.client.get_notifications(
                app.onesignal_app_id, limit=_PAGE, offset=page * _PAGE
            )
        except OneSignalError as error:
            log.warning("could not list notifications of app %s: %s", app.name, explain(error))
            return found, False
        notifications = listed.notifications
        for notification in notifications:
            named = getattr(notification, "name", None)
            if isinstance(named, str) and (named == name or named.startswith(name + " ")):
                found.setdefault(named, []).insert(0, notification.id)  # listed newest first
        older = [n for n in notifications if earliest and (n.queued_at or 0) < earliest]
        if older or len(notifications) < _PAGE:
            return found, True
    return found, False


async def find_notification(
    apps: Sequence[AppClient], notification_id: str
) -> tuple[AppClient, NotificationDetails] | None:
    """The app (of those given) that has this notification, and its details; None if none."""
    for app in apps:
        try:
            details = await app.client.get_notification(app.onesignal_app_id, notification_id)
        except (NotFound, BadRequest):
            continue
        return app, details
    return None
