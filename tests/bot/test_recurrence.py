"""The rule of a series: its occurrences on the sender's wall clock, and the words refused."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.recurrence import RecurrenceError, Rule, parse_every

BERLIN = ZoneInfo("Europe/Berlin")
# A Tuesday in October 2026; Berlin leaves summer time on Sunday 25 October.
NOW = datetime(2026, 10, 13, 10, 0, tzinfo=UTC)


def _wall(moments: list[datetime], zone: ZoneInfo = BERLIN) -> list[str]:
    return [m.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") for m in moments]


def test_every_monday_at_nine_keeps_nine_across_the_clock_change():
    series = parse_every("monday", at="09:00", tz="Europe/Berlin", now=NOW)

    upcoming = series.upcoming(3)

    assert _wall(upcoming) == [
        "Mon 2026-10-19 09:00 CEST",
        "Mon 2026-10-26 09:00 CET",
        "Mon 2026-11-02 09:00 CET",
    ]
    assert [m.hour for m in upcoming] == [7, 8, 8]  # UTC moves, the wall clock does not
    assert series.describe() == "every Monday at 09:00 (Europe/Berlin)"


def test_a_wall_time_the_clock_passes_twice_comes_once_and_the_series_goes_on():
    # 02:30 happens twice in Berlin on Sunday 25 October 2026 (CEST, then CET).
    series = parse_every("day", at="02:30", tz="Europe/Berlin", now=NOW)

    upcoming = series.upcoming(15)

    assert _wall(upcoming)[-5:] == [
        "Sat 2026-10-24 02:30 CEST",
        "Sun 2026-10-25 02:30 CEST",
        "Mon 2026-10-26 02:30 CET",
        "Tue 2026-10-27 02:30 CET",
        "Wed 2026-10-28 02:30 CET",
    ]
    assert upcoming == sorted(set(upcoming))


def test_a_wall_time_the_clock_skips_comes_an_hour_later_that_day_only():
    # 02:30 does not happen in Berlin on Sunday 28 March 2027 (CET jumps to CEST at 02:00).
    march = datetime(2027, 3, 25, 12, 0, tzinfo=UTC)
    series = parse_every("day", at="02:30", tz="Europe/Berlin", now=march)

    assert _wall(series.upcoming(4)) == [
        "Fri 2027-03-26 02:30 CET",
        "Sat 2027-03-27 02:30 CET",
        "Sun 2027-03-28 03:30 CEST",
        "Mon 2027-03-29 02:30 CEST",
    ]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("clock", ["00:30", "01:30", "02:30", "03:30"])
def test_a_daily_series_comes_once_a_day_through_a_year_of_clock_changes(zone, clock):
    series = parse_every("day", at=clock, tz=zone, now=NOW)

    days = [m.astimezone(ZoneInfo(zone)).date() for m in series.upcoming(400)]

    assert days == sorted(set(days)) and len(days) == 400
    assert (days[-1] - days[0]).days == 399


def test_the_rule_survives_its_json_and_goes_on_from_any_occurrence():
    series = parse_every("weekday", at="08:30", tz="Europe/Berlin", now=NOW)
    rule = Rule.from_json(series.rule.to_json())

    friday = datetime(2026, 10, 16, 6, 30, tzinfo=UTC)
    assert _wall([rule.next_after(friday)]) == ["Mon 2026-10-19 08:30 CEST"]
    assert _wall([rule.first_from(datetime(2026, 10, 24, 12, tzinfo=UTC))]) == [
        "Mon 2026-10-26 08:30 CET"
    ]


@pytest.mark.parametrize(
    ("every", "at", "expected"),
    [
        ("day", "18:00", ["Tue 2026-10-13 18:00 CEST", "Wed 2026-10-14 18:00 CEST"]),
        ("week", "thursday 10:00", ["Thu 2026-10-15 10:00 CEST", "Thu 2026-10-22 10:00 CEST"]),
        ("month", "2026-10-20 09:00", ["Tue 2026-10-20 09:00 CEST", "Fri 2026-11-20 09:00 CET"]),
        ("6h", None, ["Tue 2026-10-13 18:00 CEST", "Wed 2026-10-14 00:00 CEST"]),
        ("1d", "2026-10-24 12:00", ["Sat 2026-10-24 12:00 CEST", "Sun 2026-10-25 11:00 CET"]),
    ],
)
def test_each_kind_of_rule(every, at, expected):
    series = parse_every(every, at=at, tz="Europe/Berlin", now=NOW)

    assert _wall(series.upcoming(2)) == expected


def test_times_and_until_end_a_series():
    assert len(parse_every("day", at="09:00", times="3", tz="UTC", now=NOW).upcoming(10)) == 3
    until = parse_every("day", at="09:00", until="2026-10-16", tz="Europe/Berlin", now=NOW)
    assert _wall(until.upcoming(10))[-1] == "Fri 2026-10-16 09:00 CEST"
    assert until.describe().endswith(", until 2026-10-16")


@pytest.mark.parametrize(
    ("every", "options", "words"),
    [
        ("30m", {}, "at most every hour"),
        ("59 minutes", {}, "at most every hour"),
        ("fortnightly", {}, "I can't read --every"),
        ("monday", {}, "needs --at"),
        ("day", {"at": "09:00", "until": "2026-10-20", "times": "2"}, "not both"),
        ("day", {"at": "09:00", "until": "next week"}, "needs a date like"),
        ("day", {"at": "09:00", "until": "2026-10-01"}, "before the first occurrence"),
        ("day", {"at": "09:00", "times": "0"}, "whole number from 1"),
        ("day", {"at": "25:00"}, "--at:"),
    ],
)
def test_words_that_make_no_series_are_refused_saying_why(every, options, words):
    with pytest.raises(RecurrenceError, match=words):
        parse_every(every, tz="Europe/Berlin", now=NOW, **options)
