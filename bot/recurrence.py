"""The rule of a recurring send (`--every`): read from the words, stored as JSON, and asked
for its occurrences.

Calendar rules (`day`, `weekday`, `week`, `month`, a weekday name) keep the wall-clock time
in the sender's zone, so a Monday 09:00 series stays at 09:00 across a daylight-saving
change; a duration (`6h`, at least `MIN_INTERVAL`) counts elapsed time from its first
occurrence. Around a clock change a calendar rule does what cron does: a wall time the
change skips goes out that much later on that day (02:30 on the spring-forward night at
03:30), and a wall time the clock passes twice goes out once, the first time.

The arithmetic is written here rather than taken from APScheduler's `CronTrigger`: in
APScheduler 3.11 its next fire time after a wall time the clock passes twice is that same
moment again (a daily series would stop there), and after a spring-forward night it skips a
whole day for times before the change (00:30 daily: 28 March, then 30 March). Dates and
`zoneinfo` do it exactly: the next matching date, its wall time resolved in the zone.

The first occurrence is `--at` (read by `bot.timeparse.parse_at`) or, for a duration
without it, one interval from now; a calendar rule needs `--at`, which says its time of day
(and for `week` its weekday, for `month` its day). A series ends after `--times N`
occurrences or with the last one on or before `--until DATE`, else runs until stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.timeparse import IN_FORMS, ScheduledTime, TimeParseError, parse_at, parse_in

MIN_INTERVAL: Final = timedelta(hours=1)
"""The shortest `--every` duration: a series is for reminders, not for polling users."""
MAX_TIMES: Final = 1000
"""The most occurrences `--times` allows."""

WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CALENDAR: Final = ("day", "weekday", "week", "month")
EVERY_FORMS: Final = (
    "day, weekday, week, month, a weekday name (monday) or a duration of at least 1 hour (6h)"
)
_LONGEST_GAP_DAYS: Final = 400
"""Days searched for a rule's next date; the longest gap is 62 (day 31: Jan 31 to Mar 31)."""
_TICK: Final = timedelta(microseconds=1)
_DATE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class RecurrenceError(ValueError):
    """Words that make no series; `str(error)` is the message for the user."""


@dataclass(frozen=True)
class Rule:
    """When a series recurs: `every` is a calendar word or a weekday name with the wall
    time `hour:minute` (and `day` of the month for `month`, `weekday` 0-6 for `week`), or
    `interval` seconds counted from `start`. `zone` is the IANA zone (or `UTC+01:00`-style
    fixed offset name) the wall time is read in."""

    every: str
    zone: str
    start: datetime
    hour: int = 0
    minute: int = 0
    weekday: int | None = None
    day: int | None = None
    interval: int | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (UTC)."""
        if self.interval is not None:
            step = timedelta(seconds=self.interval)
            done = max(0, (moment - self.start) // step + 1)
            return (self.start + done * step).astimezone(UTC)
        zone = zone_of(self.zone)
        day = moment.astimezone(zone).date()
        for _ in range(_LONGEST_GAP_DAYS):
            if self._falls_on(day):
                at = _wall_time(day, time(self.hour, self.minute), zone)
                if at > moment:
                    return at
            day += timedelta(days=1)
        raise RuntimeError(f"rule {self} has no occurrence after {moment}")  # never: see above

    def first_from(self, moment: datetime) -> datetime:
        """The first occurrence at or after `moment` (UTC): where a resumed series goes on."""
        return self.next_after(moment - _TICK)

    def _falls_on(self, day: date) -> bool:
        if self.every == "weekday":
            return day.weekday() < 5
        if self.weekday is not None:
            return day.weekday() == self.weekday
        if self.day is not None:
            return day.day == self.day
        return True

    def describe(self) -> str:
        """`every Monday at 09:00 (Europe/Berlin)`, `every 6h`."""
        if self.interval is not None:
            return f"every {_span(self.interval)}"
        clock = f"{self.hour:02d}:{self.minute:02d}"
        if self.every == "weekday":
            what = "every weekday (Mon-Fri)"
        elif self.weekday is not None:
            what = f"every {WEEKDAYS[self.weekday].capitalize()}"
        elif self.day is not None:
            what = f"every month on day {self.day}" + (
                " (months without one are skipped)" if self.day > 28 else ""
            )
        else:
            what = "every day"
        return f"{what} at {clock} ({self.zone})"

    def to_json(self) -> dict[str, Any]:
        """The rule as stored in `series.rule`."""
        return {
            "every": self.every,
            "zone": self.zone,
            "start": self.start.astimezone(UTC).isoformat(),
            "hour": self.hour,
            "minute": self.minute,
            "weekday": self.weekday,
            "day": self.day,
            "interval": self.interval,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        """The rule `to_json` stored."""
        return cls(
            every=str(data["every"]),
            zone=str(data["zone"]),
            start=datetime.fromisoformat(str(data["start"])),
            hour=int(data.get("hour") or 0),
            minute=int(data.get("minute") or 0),
            weekday=data.get("weekday"),
            day=data.get("day"),
            interval=data.get("interval"),
        )


@dataclass(frozen=True)
class Recurrence:
    """A series as asked for: its rule, first occurrence, and end (`until` in UTC, or
    `times`), with the notes the first time's reading carries (a clock change)."""

    rule: Rule
    first: datetime
    until: datetime | None = None
    times: int | None = None
    notes: tuple[str, ...] = ()

    def upcoming(self, count: int) -> list[datetime]:
        """The first `count` occurrences (fewer when the series ends before)."""
        found: list[datetime] = []
        moment = self.first
        while len(found) < count and not self.ended(moment, len(found)):
            found.append(moment)
            moment = self.rule.next_after(moment)
        return found

    def ended(self, moment: datetime, done: int) -> bool:
        """Whether an occurrence at `moment`, after `done` of them, is past the series' end."""
        if self.times is not None and done >= self.times:
            return True
        return self.until is not None and moment > self.until

    def describe(self) -> str:
        """The rule and its end, for replies and the approval request."""
        end = ""
        if self.times is not None:
            end = f", {self.times} time{'s' if self.times != 1 else ''}"
        elif self.until is not None:
            local = self.until.astimezone(zone_of(self.rule.zone)) - timedelta(seconds=1)
            end = f", until {local.date().isoformat()}"
        return self.rule.describe() + end


def parse_every(
    every: str,
    *,
    at: str | None = None,
    until: str | None = None,
    times: str | None = None,
    tz: str | None = None,
    now: datetime | None = None,
) -> Recurrence:
    """Read `--every` (with `--at`, `--until`, `--times`) in the sender's zone `tz`.

    Raises `RecurrenceError` naming the problem and the fix.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    word = " ".join(every.lower().split())
    if until is not None and times is not None:
        raise RecurrenceError("Use --until or --times, not both: a series ends one way.")
    if word in CALENDAR or word in WEEKDAYS:
        rule, first = _calendar(word, at, tz, now)
    else:
        rule, first = _interval(word, at, tz, now)
    recurrence = Recurrence(
        rule=rule,
        first=first.utc,
        until=_until(until, rule, first.utc),
        times=_times(times),
        notes=first.notes,
    )
    return recurrence


def _calendar(word: str, at: str | None, tz: str | None, now: datetime) -> tuple[Rule, Any]:
    if at is None:
        example = "monday --at 09:00" if word in WEEKDAYS else f"{word} --at 09:00"
        raise RecurrenceError(
            f"--every {word} needs --at for its time of day, as in --every {example}."
        )
    when = _at(at, tz, now)
    local = when.local
    weekday = WEEKDAYS.index(word) if word in WEEKDAYS else None
    if word == "week":
        weekday = local.weekday()
    rule = Rule(
        every=word,
        zone=when.zone_name,
        start=when.utc,
        hour=local.hour,
        minute=local.minute,
        weekday=weekday,
        day=local.day if word == "month" else None,
    )
    # `--every monday --at 09:00` read on a Tuesday: `--at` gives the time, the rule the day.
    first = rule.first_from(when.utc)
    return rule, ScheduledTime(first, when.zone, when.adjusted, when.zone_note)


def _interval(word: str, at: str | None, tz: str | None, now: datetime) -> tuple[Rule, Any]:
    try:
        step = parse_in(word, tz=tz, now=now)
    except TimeParseError:
        raise RecurrenceError(f"I can't read --every {word!r}. Use {EVERY_FORMS}.") from None
    seconds = round((step.utc - now).total_seconds())
    if seconds < MIN_INTERVAL.total_seconds():
        raise RecurrenceError(
            f"--every {word} is too often: a series repeats at most every hour. "
            "Use --every 1h or longer, or day, weekday, week, month."
        )
    when = _at(at, tz, now) if at is not None else step
    rule = Rule(every="interval", zone=when.zone_name, start=when.utc, interval=seconds)
    return rule, when


def _at(text: str, tz: str | None, now: datetime) -> ScheduledTime:
    try:
        return parse_at(text, tz=tz, now=now)
    except TimeParseError as error:
        raise RecurrenceError(f"--at: {error}") from None


def _until(text: str | None, rule: Rule, first: datetime) -> datetime | None:
    """The end of day `text` (YYYY-MM-DD) in the rule's zone, in UTC."""
    if text is None:
        return None
    match = _DATE.fullmatch(text.strip())
    try:
        day = date(int(match[1]), int(match[2]), int(match[3])) if match else None
    except ValueError:
        day = None
    if day is None:
        raise RecurrenceError(f"--until needs a date like 2027-03-31, not {text!r}.")
    zone = zone_of(rule.zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    if end <= first:
        raise RecurrenceError(
            f"--until {day.isoformat()} is before the first occurrence; pick a later date."
        )
    return end


def _times(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_TIMES:
        raise RecurrenceError(
            f"--times needs a whole number from 1 to {MAX_TIMES}, as in --times 4."
        )
    return int(text)


def _wall_time(day: date, clock: time, zone: tzinfo) -> datetime:
    """`clock` on `day` in `zone`, in UTC. Read with fold 0 (PEP 495): the first of the two
    when the clock passes it twice, and, when a change skips it, with the offset from before
    the jump, which puts it as much later as the clock jumped (02:30 CET is 03:30 CEST)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def zone_of(name: str) -> tzinfo:
    """The zone a rule names: an IANA name, `UTC`, or `UTC+01:00` (a fixed offset)."""
    if name.startswith("UTC") and len(name) > 3:
        sign = -1 if name[3] == "-" else 1
        hours, minutes = name[4:].split(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    return ZoneInfo(name)


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "".join(parts) or f"{seconds}s"


__all__ = [
    "CALENDAR",
    "EVERY_FORMS",
    "IN_FORMS",
    "MIN_INTERVAL",
    "Recurrence",
    "RecurrenceError",
    "Rule",
    "parse_every",
    "zone_of",
]
