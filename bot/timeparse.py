"""Turns the `--at` and `--in` text of a send into the UTC instant it goes out.

Rules a user can rely on (and the confirmation repeats the instant chosen):

- Times are read in the sender's IANA zone unless the text names one (a trailing
  `Europe/Berlin`, `UTC`, or an offset such as `+01:00`; the text wins).
  A sender without a known zone (Slack left it out, or names one this machine
  lacks) is read as UTC, and the result says so in `zone_note`.
- A time without a date (`09:00`) is its next occurrence: today if still ahead,
  else tomorrow. A weekday (`monday 9am`) is the next such day whose time is
  still ahead, today included. A date without a year (`1 Dec 09:00`) is this
  year's if still ahead, else next year's. `next monday` and `this monday` both mean
  the coming Monday (the confirmation shows the date). An explicit day (`today`, `tomorrow`,
  `2026-12-01`) is taken as written, and refused if it has passed.
- A wall time that does not exist (clocks go forward) moves forward to the first
  valid minute after the change; one that happens twice (clocks go back) takes the
  first occurrence. Either way `adjusted` says what happened. (A bare time on the
  day clocks go back keeps this rule too: its first occurrence decides today/tomorrow.)
- The instant must be after `now` and at most `MAX_AHEAD` (30 days) later.

Why no natural-language library: measured on our forms, `dateparser` costs ~90 ms to
import plus ~300 ms on its first parse (language data), took 2.4 s and returned None
for `2026-12-01 09:00 Europe/Berlin`, read `tomorrow at 9` as 10:00, and pulls in
regex, pytz and tzlocal; `dateutil.parser` (already installed) guesses: it drops
`tomorrow` from `tomorrow 9am` (today 09:00), reads `5` as the 5th of the month and
ignores a zone name. For a command that notifies real users a refusal beats a guess,
so the forms below are a small strict grammar, each one covered by the table test,
and zones come from the standard library's `zoneinfo`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MAX_AHEAD: Final = timedelta(days=30)
"""How far ahead a send may be scheduled.

Not OneSignal's limit on `send_after`: PushOps holds a scheduled send itself and calls
OneSignal only when it is due, without `send_after`, so OneSignal never sees how far ahead
it was scheduled. It is the horizon OneSignal gives its own scheduling ("You can schedule
a message up to 30 days in advance", OneSignal's Messages documentation), kept so that a
team meets one rule in the dashboard and in Slack; a notification written for months
later is rarely still right then. Every refusal says the limit and the latest time allowed.
"""
AHEAD_LIMIT: Final = f"PushOps schedules sends at most {MAX_AHEAD.days} days ahead"
"""The limit in words, for refusals and the help."""
MAX_TEXT: Final = 100

AT_FORMS: Final = (
    "2026-12-01 09:00, 09:00, 9am, 2026-12-01T09:00+01:00, tomorrow 9am, "
    "monday 17:30, 1 Dec 09:00 or in 2h; a zone may follow, as in 09:00 Europe/Berlin"
)
IN_FORMS: Final = "90s, 10m, 2h, 1d, or combined like 1h30m"

# English names, not strftime's %a/%b: those follow the process locale.
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


class TimeParseError(ValueError):
    """Text that cannot be scheduled; `str(error)` is the message to show the user."""


@dataclass(frozen=True)
class ScheduledTime:
    """The instant a send goes out, with what a confirmation should tell the user.

    `utc` is aware UTC; `zone` the zone the text was read in (a `ZoneInfo`, or a fixed
    `timezone` when the text gave an offset); `adjusted` a sentence when a clock change
    moved or chose the time; `zone_note` a sentence when the sender's zone was unknown.
    """

    utc: datetime
    zone: tzinfo
    adjusted: str | None = None
    zone_note: str | None = None

    @property
    def local(self) -> datetime:
        """The instant on the wall clock of `zone`."""
        return self.utc.astimezone(self.zone)

    @property
    def zone_name(self) -> str:
        """`Europe/Berlin`, or `UTC+01:00` for an offset given in the text."""
        return _zone_name(self.zone)

    @property
    def notes(self) -> tuple[str, ...]:
        """The sentences a confirmation must carry besides `describe()`."""
        return tuple(note for note in (self.adjusted, self.zone_note) if note)

    def describe(self) -> str:
        """`Tue 1 Dec 2026, 09:00 CET (08:00 UTC)`."""
        return _describe(self.utc, self.zone)


def parse_when(
    *,
    at: str | None = None,
    in_: str | None = None,
    tz: str | None = None,
    now: datetime | None = None,
) -> ScheduledTime | None:
    """Parse whichever of `--at`/`--in` was given; None when neither (send now)."""
    if at is not None and in_ is not None:
        raise TimeParseError("Use --at or --in, not both.")
    if at is not None:
        return parse_at(at, tz=tz, now=now)
    if in_ is not None:
        return parse_in(in_, tz=tz, now=now)
    return None


def parse_at(text: str, *, tz: str | None, now: datetime | None = None) -> ScheduledTime:
    """Read `--at` text as an instant in (now, now + 30 days].

    `tz` is the sender's IANA zone (Slack's `user.tz`), `now` an aware datetime
    (default: the current time). Raises `TimeParseError` with a message for the user.
    """
    now = _check_now(now)
    cleaned = _clean(text, AT_FORMS)
    lowered = cleaned.lower()
    if lowered.startswith("in "):
        return parse_in(cleaned[3:], tz=tz, now=now)
    if lowered.endswith(" from now"):
        return parse_in(cleaned[: -len(" from now")], tz=tz, now=now)
    body, named = _split_zone(cleaned)
    spec = _match_at(_normalize(body))
    zone, note = _effective_zone(spec.offset, named, tz)
    when = _resolve(spec, zone, now)
    return _within_window(ScheduledTime(when.utc, zone, when.adjusted, note), now)


def parse_in(text: str, *, tz: str | None = None, now: datetime | None = None) -> ScheduledTime:
    """Read `--in` text (`90s`, `10m`, `2h`, `1d`, `1h30m`) as now plus that delay.

    `tz` only chooses the zone `describe()` shows; a missing or unknown one shows UTC.
    """
    now = _check_now(now)
    seconds = _duration_seconds(_normalize(_clean(text, IN_FORMS)))
    zone, _ = _sender_zone(tz)
    if seconds > MAX_AHEAD.total_seconds():
        raise TimeParseError(too_far_ahead(now, zone))
    return ScheduledTime(now.astimezone(UTC) + timedelta(seconds=seconds), zone)


# --- input hygiene ---------------------------------------------------------------------

_QUOTES: Final = "\"'“”‘’"


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")  # a caller's bug, not the user's
    return now.astimezone(UTC)


def _clean(text: str, forms: str) -> str:
    """Collapse whitespace and strip quotes the shell split or Slack's smart quotes left."""
    cleaned = " ".join(text.split()).strip(_QUOTES).strip()
    if not cleaned:
        raise TimeParseError(f"The time is empty. Use a form like {forms}.")
    if len(cleaned) > MAX_TEXT:
        raise TimeParseError(f"That time is too long to read. Use a form like {forms}.")
    return cleaned


def _normalize(text: str) -> str:
    lowered = " ".join(text.lower().split())
    return re.sub(r"(?<![a-z])([ap])\.m\.?", r"\1m", lowered)


# --- durations -------------------------------------------------------------------------

_UNIT_SECONDS: Final = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 604800),
}
# One `12h`, `30 minutes`, optionally after `, ` or `and `; nine digits keep int() cheap.
_DURATION_PART: Final = re.compile(r"(?:,\s*|and\s+)?(\d{1,9})\s*([a-z]+)\s*", re.ASCII)


def duration_seconds(text: str) -> int:
    """Seconds in a duration (`90s`, `10m`, `2h`, `1d`, `1h30m`); TimeParseError if unreadable."""
    return _duration_seconds(_normalize(_clean(text, IN_FORMS)))


def _duration_seconds(text: str) -> int:
    total, pos = 0, 0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None or part[2] not in _UNIT_SECONDS:
            raise TimeParseError(f"I can't read '{text}' as a delay. Use {IN_FORMS}.")
        total += int(part[1]) * _UNIT_SECONDS[part[2]]
        pos = part.end()
    if total == 0:
        raise TimeParseError(f"The delay must be more than zero. Use {IN_FORMS}.")
    return total


# --- zones -----------------------------------------------------------------------------

_ZONE_TOKEN: Final = re.compile(
    r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)+|utc|gmt", re.I | re.ASCII
)
_ABBREVIATION: Final = re.compile(r"[A-Z]{3,5}")


def _split_zone(text: str) -> tuple[str, tzinfo | None]:
    """Split a trailing zone name off the text; refuse an abbreviation like `EST`."""
    head, _, last = text.rpartition(" ")
    if not head:
        return text, None
    if _ZONE_TOKEN.fullmatch(last):
        return head, _named_zone(last)
    if _ABBREVIATION.fullmatch(last) and last.lower() not in _GRAMMAR_WORDS:
        raise TimeParseError(
            f"'{last}' is ambiguous as a time zone. Name one like Europe/Berlin or "
            "America/New_York, or give an offset like -05:00."
        )
    return text, None


def _named_zone(name: str) -> ZoneInfo:
    zone = _zone_or_none(name) or _zone_or_none(_zone_keys().get(name.lower(), ""))
    if zone is None:
        raise TimeParseError(
            f"I don't know the time zone '{name}'. Use an IANA name like Europe/Berlin, "
            "America/New_York or UTC."
        )
    return zone


def _zone_or_none(name: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, or unreadable
        return None


@lru_cache(maxsize=1)
def _zone_keys() -> dict[str, str]:
    """Lower-cased IANA names, so `europe/berlin` works; built only when first needed."""
    return {key.lower(): key for key in available_timezones()}


def _sender_zone(tz: str | None) -> tuple[ZoneInfo, str | None]:
    """The sender's zone, or UTC with a sentence saying why."""
    zone = _zone_or_none(tz or "")
    if zone is not None:
        return zone, None
    if not tz:
        return ZoneInfo("UTC"), "Your Slack profile has no time zone, so this was read as UTC."
    return ZoneInfo("UTC"), f"Your Slack time zone '{tz}' is unknown here, so this was read as UTC."


def _effective_zone(
    offset: str | None, named: tzinfo | None, tz: str | None
) -> tuple[tzinfo, str | None]:
    if offset is not None and named is not None:
        raise TimeParseError("Give either an offset or a time zone, not both.")
    if offset is not None:
        return _offset_zone(offset), None
    if named is not None:
        return named, None
    return _sender_zone(tz)


def _offset_zone(offset: str) -> tzinfo:
    if offset == "z":
        return UTC
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 14 or minutes > 59:
        raise TimeParseError(f"'{offset}' is not a UTC offset. Use one like +01:00 or -05:00.")
    sign = -1 if offset[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _zone_name(zone: tzinfo) -> str:
    if isinstance(zone, ZoneInfo):
        return zone.key
    return "UTC" if zone is UTC else str(zone)


# --- the `--at` grammar ----------------------------------------------------------------

_WEEKDAY_NUMBERS: Final = {
    **dict.fromkeys(("monday", "mon"), 0),
    **dict.fromkeys(("tuesday", "tues", "tue"), 1),
    **dict.fromkeys(("wednesday", "wed"), 2),
    **dict.fromkeys(("thursday", "thurs", "thur", "thu"), 3),
    **dict.fromkeys(("friday", "fri"), 4),
    **dict.fromkeys(("saturday", "sat"), 5),
    **dict.fromkeys(("sunday", "sun"), 6),
}
_MONTH_NUMBERS: Final = {
    **{name.lower(): number for number, name in enumerate(_MONTHS, start=1)},
    "january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7,
    "august": 8, "sept": 9, "september": 9, "october": 10, "november": 11, "december": 12,
}  # fmt: skip
_GRAMMAR_WORDS: Final = frozenset(
    {*_WEEKDAY_NUMBERS, *_MONTH_NUMBERS, "am", "pm", "at", "on", "next", "this", "noon"}
    | {"midday", "today", "tomorrow", "in"}
)


def _names(words: dict[str, int]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_DATE: Final = rf"""(?:
    (?P<iso>\d{{4}}-\d{{1,2}}-\d{{1,2}})
  | (?P<relative>today|tomorrow)
  | (?:(?:next|this)\s+)?(?P<weekday>{_names(_WEEKDAY_NUMBERS)})
  | (?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<month>{_names(_MONTH_NUMBERS)})\.?
      (?:,?\s+(?P<year>\d{{4}}))?
  | (?P<month2>{_names(_MONTH_NUMBERS)})\.?\s+(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?
      (?:,?\s+(?P<year2>\d{{4}}))?
)"""
_TIME: Final = r"""(?:
    (?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?(?:\s*(?P<ampm>am|pm))?
  | (?P<hour12>\d{1,2})\s*(?P<ampm12>am|pm)
  | (?P<noon>noon|midday)
)"""
_OFFSET: Final = r"(?:\s*(?P<offset>z|[+-]\d{2}(?::?\d{2})?))?"
_DATE_TIME_SEP: Final = r"(?:\s+at\s+|\s*,\s*|\s+|(?<=\d)t(?=\d))"
_AT_PATTERNS: Final = tuple(
    re.compile(pattern, re.VERBOSE | re.ASCII)
    for pattern in (
        rf"(?:at\s+)?{_TIME}{_OFFSET}",
        rf"(?:on\s+)?{_DATE}{_DATE_TIME_SEP}{_TIME}{_OFFSET}",
        rf"(?:at\s+)?{_TIME}{_OFFSET}(?:\s+on|\s*,)?\s+{_DATE}",
    )
)
_DATE_ONLY: Final = re.compile(rf"(?:on\s+)?{_DATE}", re.VERBOSE | re.ASCII)


@dataclass(frozen=True)
class _AtSpec:
    """What the text said: candidate days in order of preference, a wall time, an offset."""

    days: _DaySpec
    wall: time
    offset: str | None


@dataclass(frozen=True)
class _DaySpec:
    kind: str  # "date" | "relative" | "weekday" | "yearless" | "none"
    value: str = ""
    month: int = 0
    day: int = 0
    year: int = 0


def _match_at(text: str) -> _AtSpec:
    for pattern in _AT_PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
            return _AtSpec(_day_spec(groups), _wall_time(groups), groups.get("offset"))
    if _DATE_ONLY.fullmatch(text):
        raise TimeParseError(f"Add a time of day to '{text}', as in 'tomorrow 9am'.")
    raise TimeParseError(f"I can't read '{text}' as a time. Use a form like {AT_FORMS}.")


def _day_spec(groups: dict[str, str]) -> _DaySpec:
    if "iso" in groups:
        year, month, day = (int(part) for part in groups["iso"].split("-"))
        return _DaySpec("date", year=year, month=month, day=day)
    if "relative" in groups:
        return _DaySpec("relative", groups["relative"])
    if "weekday" in groups:
        return _DaySpec("weekday", day=_WEEKDAY_NUMBERS[groups["weekday"]])
    if "month" in groups or "month2" in groups:
        return _month_day(groups)
    return _DaySpec("none")


def _month_day(groups: dict[str, str]) -> _DaySpec:
    """`1 Dec [2026]` or `Dec 1[, 2026]`."""
    month = _MONTH_NUMBERS[groups.get("month") or groups["month2"]]
    day = int(groups.get("day") or groups["day2"])
    year = groups.get("year") or groups.get("year2")
    if year is None:
        return _DaySpec("yearless", month=month, day=day)
    return _DaySpec("date", month=month, day=day, year=int(year))


def _wall_time(groups: dict[str, str]) -> time:
    if "noon" in groups:
        return time(12)
    if "hour12" in groups:
        return time(_hour_12(int(groups["hour12"]), groups["ampm12"]))
    hour, minute = int(groups["hour"]), int(groups["minute"])
    if "ampm" in groups:
        hour = _hour_12(hour, groups["ampm"])
    if hour > 23 or minute > 59 or int(groups.get("second", 0)) > 59:
        raise TimeParseError(f"{groups['hour']}:{groups['minute']} is not a time of day.")
    return time(hour, minute, int(groups.get("second", 0)))


def _hour_12(hour: int, ampm: str) -> int:
    if not 1 <= hour <= 12:
        raise TimeParseError(f"{hour}{ampm} is not a time of day; use 1 to 12 with am/pm.")
    return hour % 12 + (12 if ampm == "pm" else 0)


# --- from words to an instant ----------------------------------------------------------


# Beyond this distance from today a day is judged without zone arithmetic (see _resolve).
_CALENDAR_ONLY: Final = timedelta(days=366)


@dataclass(frozen=True)
class _Resolved:
    utc: datetime
    adjusted: str | None


def _resolve(spec: _AtSpec, zone: tzinfo, now: datetime) -> _Resolved:
    """The first candidate day whose wall time is after `now`, else the last candidate.

    Days years away are judged by the calendar alone, before any zone arithmetic that
    could overflow near year 1 or 9999.
    """
    today = now.astimezone(zone).date()
    resolved: _Resolved | None = None
    passed: datetime | None = None
    for day in _candidate_days(spec.days, today):
        wall = datetime.combine(day, spec.wall)
        if day > today + _CALENDAR_ONLY:
            raise TimeParseError(too_far_ahead(now, zone, _plain(wall)))
        if day < today - _CALENDAR_ONLY:
            passed = wall
            continue
        resolved = _to_utc(wall, zone)
        if resolved.utc > now:
            return resolved
    if resolved is not None:
        return resolved
    if passed is not None:
        raise TimeParseError(f"That time has passed: {_plain(passed)}. Pick a later time.")
    raise TimeParseError(f"That date does not exist. Use a form like {AT_FORMS}.")


def _candidate_days(spec: _DaySpec, today: date) -> Iterator[date]:
    if spec.kind == "none":
        yield from (today, today + timedelta(days=1))
    elif spec.kind == "relative":
        yield today + timedelta(days=1 if spec.value == "tomorrow" else 0)
    elif spec.kind == "weekday":
        first = today + timedelta(days=(spec.day - today.weekday()) % 7)
        yield from (first, first + timedelta(days=7))
    elif spec.kind == "yearless":
        yield from _valid_dates(
            (today.year, spec.month, spec.day), (today.year + 1, spec.month, spec.day)
        )
    else:
        yield from _valid_dates((spec.year, spec.month, spec.day))


def _valid_dates(*parts: tuple[int, int, int]) -> Iterator[date]:
    for year, month, day in parts:
        try:
            yield date(year, month, day)
        except ValueError:  # 31 Apr, 29 Feb of a common year, year 10000
            continue


def _to_utc(wall: datetime, zone: tzinfo) -> _Resolved:
    """Apply the clock-change rule: a gap moves forward, a fold takes its first occurrence."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # does not survive a round trip
        start = _gap_end(wall, zone, before=second, after=first)
        return _Resolved(start, _gap_note(wall, start, zone))
    if first != second:
        return _Resolved(first, _fold_note(wall, first, zone))
    return _Resolved(first, None)


def _gap_end(wall: datetime, zone: tzinfo, *, before: datetime, after: datetime) -> datetime:
    """The first whole second whose wall time is at or after `wall`: the change itself.

    `before` reads `wall` with the offset after the change (so it lands before the gap),
    `after` with the offset before it; zoneinfo has no public list of transitions.
    """
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _gap_note(wall: datetime, start: datetime, zone: tzinfo) -> str:
    local = start.astimezone(zone)
    return (
        f"{_clock(wall)} does not exist on {_day(wall)} in {_zone_name(zone)} (clocks go "
        f"forward), so it was moved to {_clock(local)} {_abbreviation(local)}, the first "
        "minute after the change."
    )


def _fold_note(wall: datetime, first: datetime, zone: tzinfo) -> str:
    local = first.astimezone(zone)
    return (
        f"{_clock(wall)} happens twice on {_day(wall)} in {_zone_name(zone)} (clocks go "
        f"back), so the first one, {_clock(local)} {_abbreviation(local)} "
        f"({_clock(first)} UTC), was chosen."
    )


def _within_window(when: ScheduledTime, now: datetime) -> ScheduledTime:
    if when.utc <= now:
        raise TimeParseError(f"That time has passed: {when.describe()}. Pick a later time.")
    if when.utc - now > MAX_AHEAD:
        raise TimeParseError(too_far_ahead(now, when.zone, when.describe()))
    return when


def too_far_ahead(now: datetime, zone: tzinfo | str | None, when: str | None = None) -> str:
    """The refusal of a time more than `MAX_AHEAD` after `now` (`when`, as the person sees
    it), with the limit and the latest time allowed, in `zone` (a zone or its name)."""
    if not isinstance(zone, tzinfo):
        zone, _ = _sender_zone(zone)
    said = f": {when}" if when else ""
    latest = _describe(now.astimezone(UTC) + MAX_AHEAD, zone)
    return (
        f"That is more than {MAX_AHEAD.days} days ahead{said}. "
        f"{AHEAD_LIMIT}; the latest you can schedule is {latest}."
    )


# --- formatting ------------------------------------------------------------------------


def _describe(utc: datetime, zone: tzinfo) -> str:
    local = utc.astimezone(zone)
    text = f"{_day(local)}, {_clock(local)} {_abbreviation(local)}"
    if local.utcoffset() == timedelta(0) and _abbreviation(local) == "UTC":
        return text
    utc_day = "" if utc.date() == local.date() else f"{_day(utc, year=False)} "
    return f"{text} ({utc_day}{_clock(utc)} UTC)"


def _day(moment: datetime, *, year: bool = True) -> str:
    text = f"{_WEEKDAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]}"
    return f"{text} {moment.year}" if year else text


def _plain(wall: datetime) -> str:
    """`2026-12-01 09:00` for any year (strftime's %Y does not pad years before 1000)."""
    return f"{wall.date().isoformat()} {_clock(wall)}"


def _clock(moment: datetime) -> str:
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def _abbreviation(local: datetime) -> str:
    """`CET`; zones without a letter abbreviation (`-03`) read as `UTC-03`."""
    name = local.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name
