"""Table test of `bot.timeparse`: every `--at`/`--in` form, zones, clock changes, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.timeparse import (
    MAX_AHEAD,
    ScheduledTime,
    TimeParseError,
    parse_at,
    parse_in,
    parse_when,
)

BERLIN, NEW_YORK, KOLKATA, AUCKLAND = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Pacific/Auckland",
)


def utc(text: str) -> datetime:
    """`2026-12-01 08:00` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Fri 20 Nov 2026 09:00 UTC: 10:00 in Berlin, 04:00 in New York, 14:30 in Kolkata,
# 22:00 in Auckland. Standard time everywhere north, summer time in Auckland.
NOW = utc("2026-11-20 09:00")
SPRING = utc("2027-03-10 12:00")  # before New York (14 Mar) and Berlin (28 Mar) go forward
AUTUMN = utc("2026-10-20 12:00")  # before Berlin (25 Oct) and New York (1 Nov) go back
NZ_SPRING = utc("2026-09-20 00:00")  # before Auckland goes forward (27 Sep)
NZ_AUTUMN = utc("2027-03-30 00:00")  # before Auckland goes back (4 Apr)

AT_ROWS = [
    # (text, sender zone, now, expected instant)
    pytest.param("2026-12-01 09:00", BERLIN, NOW, "2026-12-01 08:00", id="date-berlin"),
    pytest.param("2026-12-01 09:00", NEW_YORK, NOW, "2026-12-01 14:00", id="date-new-york"),
    pytest.param("2026-12-01 09:00", KOLKATA, NOW, "2026-12-01 03:30", id="date-kolkata"),
    pytest.param("2026-12-01 09:00", AUCKLAND, NOW, "2026-11-30 20:00", id="date-auckland"),
    pytest.param("2026-12-01 09:00", "UTC", NOW, "2026-12-01 09:00", id="date-utc"),
    pytest.param("2026-12-1 9:05", "UTC", NOW, "2026-12-01 09:05", id="date-unpadded"),
    pytest.param("09:00", BERLIN, NOW, "2026-11-21 08:00", id="time-passed-today-is-tomorrow"),
    pytest.param("11:00", BERLIN, NOW, "2026-11-20 10:00", id="time-still-ahead-is-today"),
    pytest.param("09:00", NEW_YORK, NOW, "2026-11-20 14:00", id="time-new-york-today"),
    pytest.param("09:00", AUCKLAND, NOW, "2026-11-20 20:00", id="time-auckland-next-morning"),
    pytest.param("09:00:30", "UTC", NOW, "2026-11-20 09:00:30", id="time-seconds"),
    pytest.param("09:00", "UTC", NOW, "2026-11-21 09:00", id="time-equal-to-now-is-tomorrow"),
    pytest.param("9am", BERLIN, NOW, "2026-11-21 08:00", id="time-am"),
    pytest.param("5:30 pm", NEW_YORK, NOW, "2026-11-20 22:30", id="time-pm-with-minutes"),
    pytest.param("12am", "UTC", NOW, "2026-11-21 00:00", id="time-midnight-as-12am"),
    pytest.param("12pm", "UTC", NOW, "2026-11-20 12:00", id="time-12pm-is-noon"),
    pytest.param("at noon", BERLIN, NOW, "2026-11-20 11:00", id="time-noon"),
    pytest.param("2026-12-01T09:00+01:00", NEW_YORK, NOW, "2026-12-01 08:00", id="iso-offset-wins"),
    pytest.param("2026-12-01T09:00-05:00", BERLIN, NOW, "2026-12-01 14:00", id="iso-neg-offset"),
    pytest.param("2026-12-01T09:00+0530", "UTC", NOW, "2026-12-01 03:30", id="iso-compact-offset"),
    pytest.param("2026-12-01T09:00Z", BERLIN, NOW, "2026-12-01 09:00", id="iso-z"),
    pytest.param("10:00 +01:00", NEW_YORK, NOW, "2026-11-21 09:00", id="time-with-offset"),
    pytest.param(
        "2026-12-01 09:00 Europe/Berlin", NEW_YORK, NOW, "2026-12-01 08:00", id="zone-named"
    ),
    pytest.param("09:00 UTC", BERLIN, NOW, "2026-11-21 09:00", id="zone-utc"),
    pytest.param("09:00 gmt", BERLIN, NOW, "2026-11-21 09:00", id="zone-gmt-lowercase"),
    pytest.param("9am america/new_york", BERLIN, NOW, "2026-11-20 14:00", id="zone-any-case"),
    pytest.param("tomorrow 9am", BERLIN, NOW, "2026-11-21 08:00", id="tomorrow-berlin"),
    pytest.param("tomorrow 9am", KOLKATA, NOW, "2026-11-21 03:30", id="tomorrow-kolkata"),
    pytest.param("tomorrow 9am", AUCKLAND, NOW, "2026-11-20 20:00", id="tomorrow-is-local"),
    pytest.param("9am tomorrow", "UTC", NOW, "2026-11-21 09:00", id="time-then-day"),
    pytest.param("tomorrow at noon", BERLIN, NOW, "2026-11-21 11:00", id="tomorrow-at-noon"),
    pytest.param("9 a.m. tomorrow", "UTC", NOW, "2026-11-21 09:00", id="a.m."),
    pytest.param("TOMORROW 9AM", BERLIN, NOW, "2026-11-21 08:00", id="upper-case"),
    pytest.param('"tomorrow 9am"', BERLIN, NOW, "2026-11-21 08:00", id="shell-quotes"),
    pytest.param("“tomorrow  9am”", BERLIN, NOW, "2026-11-21 08:00", id="smart-quotes"),
    pytest.param("today 17:30", KOLKATA, NOW, "2026-11-20 12:00", id="today"),
    pytest.param("monday 9am", BERLIN, NOW, "2026-11-23 08:00", id="weekday"),
    pytest.param("friday 11:00", BERLIN, NOW, "2026-11-20 10:00", id="weekday-today-ahead"),
    pytest.param("friday 9am", BERLIN, NOW, "2026-11-27 08:00", id="weekday-today-passed"),
    pytest.param("next mon 17:30", NEW_YORK, NOW, "2026-11-23 22:30", id="next-weekday"),
    pytest.param("on Wed at 8am", "UTC", NOW, "2026-11-25 08:00", id="on-weekday-at"),
    pytest.param("saturday 9am", AUCKLAND, NOW, "2026-11-20 20:00", id="weekday-local"),
    pytest.param("1 Dec 09:00", BERLIN, NOW, "2026-12-01 08:00", id="day-month"),
    pytest.param("Dec 1, 2026 at 9:30 pm", "UTC", NOW, "2026-12-01 21:30", id="month-day-year"),
    pytest.param("on 3rd December 2026 at 8am", "UTC", NOW, "2026-12-03 08:00", id="ordinal"),
    pytest.param(
        "5 Jan 09:00", "UTC", utc("2026-12-20 10:00"), "2027-01-05 09:00", id="yearless-next-year"
    ),
    pytest.param("in 2 hours", BERLIN, NOW, "2026-11-20 11:00", id="in-words"),
    pytest.param("in 90 minutes", None, NOW, "2026-11-20 10:30", id="in-minutes"),
    pytest.param("2h from now", BERLIN, NOW, "2026-11-20 11:00", id="from-now"),
    pytest.param("2026-12-20 09:00", "UTC", NOW, "2026-12-20 09:00", id="exactly-30-days"),
]


@pytest.mark.parametrize(("text", "tz", "now", "expected"), AT_ROWS)
def test_at_forms(text: str, tz: str | None, now: datetime, expected: str) -> None:
    when = parse_at(text, tz=tz, now=now)

    assert when.utc == utc(expected)
    assert when.utc.utcoffset() == timedelta(0)
    assert when.adjusted is None


DST_ROWS = [
    # (text, zone, now, expected instant, what `adjusted` says or None)
    pytest.param(
        "2027-03-28 02:30",
        BERLIN,
        SPRING,
        "2027-03-28 01:00",
        "02:30 does not exist on Sun 28 Mar 2027 in Europe/Berlin (clocks go forward), "
        "so it was moved to 03:00 CEST",
        id="gap-berlin",
    ),
    pytest.param(
        "02:30",
        BERLIN,
        utc("2027-03-27 12:00"),
        "2027-03-28 01:00",
        "moved to 03:00 CEST",
        id="gap-berlin-bare-time",
    ),
    pytest.param(
        "2027-03-14 02:30",
        NEW_YORK,
        SPRING,
        "2027-03-14 07:00",
        "02:30 does not exist on Sun 14 Mar 2027 in America/New_York",
        id="gap-new-york",
    ),
    pytest.param(
        "2027-03-14 02:00",
        NEW_YORK,
        SPRING,
        "2027-03-14 07:00",
        "moved to 03:00 EDT",
        id="gap-first-minute",
    ),
    pytest.param(
        "2027-03-14 02:59:59",
        NEW_YORK,
        SPRING,
        "2027-03-14 07:00",
        "moved to 03:00 EDT",
        id="gap-last-second",
    ),
    pytest.param("2027-03-14 01:59", NEW_YORK, SPRING, "2027-03-14 06:59", None, id="gap-before"),
    pytest.param("2027-03-14 03:00", NEW_YORK, SPRING, "2027-03-14 07:00", None, id="gap-after"),
    pytest.param(
        "2026-09-27 02:30",
        AUCKLAND,
        NZ_SPRING,
        "2026-09-26 14:00",
        "moved to 03:00 NZDT",
        id="gap-auckland",
    ),
    pytest.param(
        "2026-10-25 02:30",
        BERLIN,
        AUTUMN,
        "2026-10-25 00:30",
        "02:30 happens twice on Sun 25 Oct 2026 in Europe/Berlin (clocks go back), "
        "so the first one, 02:30 CEST (00:30 UTC), was chosen",
        id="fold-berlin",
    ),
    pytest.param(
        "2026-11-01 01:30",
        NEW_YORK,
        AUTUMN,
        "2026-11-01 05:30",
        "the first one, 01:30 EDT (05:30 UTC)",
        id="fold-new-york",
    ),
    pytest.param(
        "2027-04-04 02:30",
        AUCKLAND,
        NZ_AUTUMN,
        "2027-04-03 13:30",
        "the first one, 02:30 NZDT",
        id="fold-auckland",
    ),
    pytest.param("2026-10-25 03:00", BERLIN, AUTUMN, "2026-10-25 02:00", None, id="fold-after"),
    pytest.param(
        "2026-10-25T02:30+01:00", BERLIN, AUTUMN, "2026-10-25 01:30", None, id="fold-offset-given"
    ),
    pytest.param("2027-03-28 02:30", KOLKATA, SPRING, "2027-03-27 21:00", None, id="no-dst-zone"),
]


@pytest.mark.parametrize(("text", "tz", "now", "expected", "adjusted"), DST_ROWS)
def test_clock_changes(
    text: str, tz: str, now: datetime, expected: str, adjusted: str | None
) -> None:
    when = parse_at(text, tz=tz, now=now)

    assert when.utc == utc(expected)
    if adjusted is None:
        assert when.adjusted is None
    else:
        assert when.adjusted is not None and adjusted in when.adjusted
        assert when.adjusted in when.notes


AT_ERRORS = [
    # (text, sender zone, now, what the message says)
    pytest.param("2026-11-19 09:00", "UTC", NOW, "That time has passed", id="past-date"),
    pytest.param("today 08:00", "UTC", NOW, "That time has passed: Fri 20 Nov 2026", id="today"),
    pytest.param("today 10:00", BERLIN, NOW, "has passed", id="exactly-now"),
    pytest.param("1999-01-01 09:00", "UTC", NOW, "has passed: 1999-01-01 09:00", id="long-past"),
    pytest.param("0001-01-01 00:00 +05:00", "UTC", NOW, "has passed: 0001-01-01", id="year-one"),
    pytest.param("2026-12-20 09:01", "UTC", NOW, "more than 30 days ahead", id="30-days-1-min"),
    pytest.param(
        "2026-12-21 09:00",
        BERLIN,
        NOW,
        "PushOps schedules sends at most 30 days ahead; the latest you can schedule is "
        "Sun 20 Dec 2026, 10:00 CET (09:00 UTC).",
        id="far",
    ),
    pytest.param(
        "2030-01-01 09:00",
        "UTC",
        NOW,
        "That is more than 30 days ahead: 2030-01-01 09:00. PushOps schedules sends at most 30 "
        "days ahead; the latest you can schedule is Sun 20 Dec 2026, 09:00 UTC.",
        id="years-ahead",
    ),
    pytest.param(
        "9999-12-31 23:59 Pacific/Kiritimati", "UTC", NOW, "more than 30 days", id="year-9999"
    ),
    pytest.param(
        "1 Dec 09:00", "UTC", utc("2026-12-20 10:00"), "more than 30 days", id="yearless-passed"
    ),
    pytest.param("in 31 days", "UTC", NOW, "more than 30 days ahead", id="in-too-far"),
    pytest.param("", BERLIN, NOW, "The time is empty", id="empty"),
    pytest.param('  ""  ', BERLIN, NOW, "The time is empty", id="empty-quotes"),
    pytest.param("soon", BERLIN, NOW, "I can't read 'soon' as a time", id="word"),
    pytest.param("foo", BERLIN, NOW, "Use a form like 2026-12-01 09:00, 09:00", id="names-forms"),
    pytest.param("9", BERLIN, NOW, "I can't read '9'", id="bare-number"),
    pytest.param("2h", BERLIN, NOW, "I can't read '2h'", id="duration-without-in"),
    pytest.param("tomorrow", BERLIN, NOW, "Add a time of day to 'tomorrow'", id="no-time"),
    pytest.param("2026-12-01", BERLIN, NOW, "Add a time of day", id="date-only"),
    pytest.param("25:00", BERLIN, NOW, "25:00 is not a time of day", id="hour-25"),
    pytest.param("12:60", BERLIN, NOW, "not a time of day", id="minute-60"),
    pytest.param("17:30 pm", BERLIN, NOW, "not a time of day", id="24h-with-pm"),
    pytest.param("13pm", BERLIN, NOW, "13pm is not a time of day", id="13pm"),
    pytest.param("0am", BERLIN, NOW, "not a time of day", id="0am"),
    pytest.param("2026-02-30 09:00", BERLIN, NOW, "That date does not exist", id="30-feb"),
    pytest.param("31 Apr 09:00", BERLIN, NOW, "That date does not exist", id="31-apr"),
    pytest.param("09:00 EST", BERLIN, NOW, "'EST' is ambiguous as a time zone", id="abbrev"),
    pytest.param(
        "09:00 Europe/Berln", BERLIN, NOW, "I don't know the time zone 'Europe/Berln'", id="typo"
    ),
    pytest.param("09:00+01:00 Europe/Berlin", BERLIN, NOW, "not both", id="offset-and-zone"),
    pytest.param("09:00+15:00", BERLIN, NOW, "'+15:00' is not a UTC offset", id="bad-offset"),
    pytest.param("tomorrow 9am " + "x" * 120, BERLIN, NOW, "too long", id="too-long"),
    pytest.param("in soon", BERLIN, NOW, "Use 90s, 10m, 2h, 1d", id="in-garbage"),
    pytest.param("tomorrow 9am Mars/Olympus", BERLIN, NOW, "don't know the time zone", id="mars"),
]


@pytest.mark.parametrize(("text", "tz", "now", "message"), AT_ERRORS)
def test_at_refusals(text: str, tz: str | None, now: datetime, message: str) -> None:
    with pytest.raises(TimeParseError) as raised:
        parse_at(text, tz=tz, now=now)

    assert message in str(raised.value)


IN_ROWS = [
    pytest.param("90s", timedelta(seconds=90), id="seconds"),
    pytest.param("10m", timedelta(minutes=10), id="minutes"),
    pytest.param("2h", timedelta(hours=2), id="hours"),
    pytest.param("1d", timedelta(days=1), id="days"),
    pytest.param("1w", timedelta(weeks=1), id="week"),
    pytest.param("1h30m", timedelta(hours=1, minutes=30), id="combined"),
    pytest.param("1h 30m 15s", timedelta(hours=1, minutes=30, seconds=15), id="spaced"),
    pytest.param("2 hours", timedelta(hours=2), id="words"),
    pytest.param("1 hour and 30 minutes", timedelta(hours=1, minutes=30), id="and"),
    pytest.param("1 day, 2 hrs", timedelta(days=1, hours=2), id="comma"),
    pytest.param("  10M ", timedelta(minutes=10), id="case-and-spaces"),
    pytest.param("30d", MAX_AHEAD, id="exactly-30-days"),
]


@pytest.mark.parametrize(("text", "delay"), IN_ROWS)
def test_in_forms(text: str, delay: timedelta) -> None:
    when = parse_in(text, now=NOW)

    assert when.utc == NOW + delay
    assert when.adjusted is None


IN_ERRORS = [
    pytest.param("0m", "The delay must be more than zero", id="zero"),
    pytest.param("0h 0s", "more than zero", id="zeros"),
    pytest.param("-5m", "I can't read '-5m' as a delay. Use 90s, 10m, 2h, 1d", id="negative"),
    pytest.param("1.5h", "I can't read '1.5h'", id="decimal"),
    pytest.param("90", "I can't read '90'", id="no-unit"),
    pytest.param("5 parsecs", "I can't read '5 parsecs'", id="unknown-unit"),
    pytest.param("tomorrow", "Use 90s, 10m, 2h, 1d, or combined like 1h30m", id="word"),
    pytest.param("", "The time is empty. Use a form like 90s", id="empty"),
    pytest.param("31d", "more than 30 days ahead", id="31-days"),
    pytest.param(
        "4w 3d",
        "That is more than 30 days ahead. PushOps schedules sends at most 30 days ahead; the "
        "latest you can schedule is Sun 20 Dec 2026, 09:00 UTC.",
        id="4w3d",
    ),
    pytest.param("99999999999d", "I can't read", id="huge"),
]


@pytest.mark.parametrize(("text", "message"), IN_ERRORS)
def test_in_refusals(text: str, message: str) -> None:
    with pytest.raises(TimeParseError) as raised:
        parse_in(text, now=NOW)

    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        pytest.param(
            "2026-12-01 09:00", BERLIN, "Tue 1 Dec 2026, 09:00 CET (08:00 UTC)", id="berlin"
        ),
        pytest.param(
            "2026-12-01 09:00",
            AUCKLAND,
            "Tue 1 Dec 2026, 09:00 NZDT (Mon 30 Nov 20:00 UTC)",
            id="utc-on-another-day",
        ),
        pytest.param("2026-12-01 09:00", "UTC", "Tue 1 Dec 2026, 09:00 UTC", id="utc"),
        pytest.param(
            "2026-12-01T09:00+01:00",
            BERLIN,
            "Tue 1 Dec 2026, 09:00 UTC+01:00 (08:00 UTC)",
            id="offset",
        ),
        pytest.param(
            "2026-12-01 09:00 America/Sao_Paulo",
            BERLIN,
            "Tue 1 Dec 2026, 09:00 UTC-03 (12:00 UTC)",
            id="numeric-abbreviation",
        ),
        pytest.param(
            "in 90s", BERLIN, "Fri 20 Nov 2026, 10:01:30 CET (09:01:30 UTC)", id="seconds-shown"
        ),
    ],
)
def test_describe(text: str, tz: str, expected: str) -> None:
    assert parse_at(text, tz=tz, now=NOW).describe() == expected


def test_result_carries_its_zone() -> None:
    when = parse_at("tomorrow 9am", tz=KOLKATA, now=NOW)

    assert when.zone_name == KOLKATA
    assert (when.local.hour, when.local.minute) == (9, 0)
    assert when.notes == ()


@pytest.mark.parametrize(
    ("tz", "note"),
    [
        pytest.param(
            None, "Your Slack profile has no time zone, so this was read as UTC.", id="none"
        ),
        pytest.param("", "Your Slack profile has no time zone", id="empty"),
        pytest.param(
            "Mars/Olympus", "Your Slack time zone 'Mars/Olympus' is unknown", id="unknown"
        ),
        pytest.param("../../etc/passwd", "is unknown here", id="path"),
    ],
)
def test_missing_sender_zone_reads_utc_and_says_so(tz: str | None, note: str) -> None:
    when = parse_at("tomorrow 9am", tz=tz, now=NOW)

    assert when.utc == utc("2026-11-21 09:00")
    assert when.zone_note is not None and note in when.zone_note
    assert when.notes == (when.zone_note,)


def test_zone_in_text_needs_no_sender_zone() -> None:
    when = parse_at("tomorrow 9am Europe/Berlin", tz=None, now=NOW)

    assert when.utc == utc("2026-11-21 08:00")
    assert when.zone_note is None


def test_parse_when_takes_either_option() -> None:
    assert parse_when(tz=BERLIN, now=NOW) is None
    assert parse_when(at="11:00", tz=BERLIN, now=NOW) == parse_at("11:00", tz=BERLIN, now=NOW)
    assert parse_when(in_="10m", now=NOW).utc == NOW + timedelta(minutes=10)  # type: ignore[union-attr]
    with pytest.raises(TimeParseError, match="Use --at or --in, not both"):
        parse_when(at="11:00", in_="10m", tz=BERLIN, now=NOW)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware") as raised:
        parse_at("09:00", tz=BERLIN, now=datetime(2026, 11, 20, 9))
    assert not isinstance(raised.value, TimeParseError)


def test_now_defaults_to_the_clock() -> None:
    before = datetime.now(UTC)
    when = parse_in("1h")
    assert before + timedelta(hours=1) <= when.utc <= datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("tz", "day", "kind"),
    [
        pytest.param(BERLIN, "2027-03-28", "does not exist", id="berlin-spring"),
        pytest.param(BERLIN, "2026-10-25", "happens twice", id="berlin-autumn"),
        pytest.param(NEW_YORK, "2027-03-14", "does not exist", id="new-york-spring"),
        pytest.param(NEW_YORK, "2026-11-01", "happens twice", id="new-york-autumn"),
        pytest.param(AUCKLAND, "2026-09-27", "does not exist", id="auckland-spring"),
        pytest.param(AUCKLAND, "2027-04-04", "happens twice", id="auckland-autumn"),
    ],
)
def test_every_minute_of_a_clock_change_day(tz: str, day: str, kind: str) -> None:
    """Each of the 60 skipped minutes lands on the change; each doubled one on its first."""
    zone = ZoneInfo(tz)
    now = utc(f"{day} 00:00") - timedelta(days=3)
    adjusted = 0
    for minute in range(24 * 60):
        wall = datetime.fromisoformat(f"{day} {minute // 60:02}:{minute % 60:02}")
        when = parse_at(f"{wall:%Y-%m-%d %H:%M}", tz=tz, now=now)
        shown = when.local.replace(tzinfo=None)
        if when.adjusted is None:
            assert shown == wall
            continue
        adjusted += 1
        assert kind in when.adjusted
        if kind == "does not exist":  # the first valid minute: the one before is before `wall`
            assert shown > wall
            assert (when.utc - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None) < wall
        else:  # the first occurrence: the same wall time comes again an hour later
            assert shown == wall
            assert (when.utc + timedelta(hours=1)).astimezone(zone).replace(tzinfo=None) == wall
    assert adjusted == 60


# --- properties ------------------------------------------------------------------------

ZONES = st.sampled_from([BERLIN, NEW_YORK, KOLKATA, AUCKLAND, "UTC", None, "Mars/Olympus"])
NOWS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
WORDS = st.sampled_from(
    ["", "today ", "tomorrow ", "monday ", "next sun ", "1 Dec ", "2027-03-28 ", "on Mar 14 "]
)
ZONE_SUFFIXES = st.sampled_from(
    ["", " UTC", " Europe/Berlin", " America/New_York", " Pacific/Auckland", "+05:30", "Z"]
)


def assert_in_window(when: ScheduledTime, now: datetime) -> None:
    assert when.utc.utcoffset() == timedelta(0)
    assert now < when.utc <= now + MAX_AHEAD
    assert when.local == when.utc


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40), tz=ZONES, now=NOWS)
def test_any_text_schedules_within_the_window_or_is_refused(
    text: str, tz: str | None, now: datetime
) -> None:
    for parse in (partial(parse_at, text, tz=tz, now=now), partial(parse_in, text, now=now)):
        try:
            when = parse()
        except TimeParseError as refused:
            assert str(refused)
        else:
            assert_in_window(when, now)


@settings(max_examples=300, deadline=None)
@given(
    day=WORDS,
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    zone=ZONE_SUFFIXES,
    tz=ZONES,
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
)
def test_grammar_keeps_the_wall_time_unless_it_says_why(
    day: str, hour: int, minute: int, zone: str, tz: str | None, now: datetime
) -> None:
    try:
        when = parse_at(f"{day}{hour:02}:{minute:02}{zone}", tz=tz, now=now)
    except TimeParseError as refused:
        assert "has passed" in str(refused) or "more than 30 days" in str(refused)
        return
    assert_in_window(when, now)
    if when.adjusted is None:
        assert (when.local.hour, when.local.minute) == (hour, minute)
    else:
        assert "does not exist" in when.adjusted or "happens twice" in when.adjusted


@given(minutes=st.integers(-10, 50_000), now=NOWS)
def test_delay_is_exact_or_refused(minutes: int, now: datetime) -> None:
    try:
        when = parse_in(f"{minutes}m", now=now)
    except TimeParseError:
        assert minutes <= 0 or minutes > 30 * 24 * 60
    else:
        assert when.utc == now + timedelta(minutes=minutes)
