"""Calendar buckets: edges where the zone's wall clock turns, across daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from gateway.api.series import Interval, buckets, count_buckets

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
SANTIAGO = ZoneInfo("America/Santiago")


def spans(start: dt.datetime, end: dt.datetime, interval: Interval, zone: ZoneInfo) -> list[str]:
    """Each bucket as 'first .. last' in ISO form with offsets."""
    return [f"{a.isoformat()} .. {b.isoformat()}" for a, b in buckets(start, end, interval, zone)]


def real_hours(a: dt.datetime, b: dt.datetime) -> float:
    """Elapsed hours from ``a`` to one second after ``b``."""
    return (
        b.astimezone(dt.UTC) - a.astimezone(dt.UTC) + dt.timedelta(seconds=1)
    ).total_seconds() / 3600


def test_days_across_berlins_autumn_change_last_23_24_25_hours() -> None:
    """The day the clocks go back in Berlin lasts 25 hours; its edges are local midnights."""
    got = list(
        buckets(
            dt.datetime(2026, 10, 24, tzinfo=BERLIN),
            dt.datetime(2026, 10, 26, 23, 59, 59, tzinfo=BERLIN),
            Interval.DAY,
            BERLIN,
        )
    )
    assert [a.isoformat() for a, _ in got] == [
        "2026-10-24T00:00:00+02:00",
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    ]
    assert [real_hours(a, b) for a, b in got] == [24, 25, 24]


def test_days_across_new_yorks_spring_change() -> None:
    """The day the clocks go forward in New York lasts 23 hours."""
    got = list(
        buckets(
            dt.datetime(2026, 3, 7, tzinfo=NEW_YORK),
            dt.datetime(2026, 3, 9, 23, 59, 59, tzinfo=NEW_YORK),
            Interval.DAY,
            NEW_YORK,
        )
    )
    assert spans(got[0][0], got[-1][1], Interval.DAY, NEW_YORK) == [
        "2026-03-07T00:00:00-05:00 .. 2026-03-07T23:59:59-05:00",
        "2026-03-08T00:00:00-05:00 .. 2026-03-08T23:59:59-04:00",
        "2026-03-09T00:00:00-04:00 .. 2026-03-09T23:59:59-04:00",
    ]
    assert [real_hours(a, b) for a, b in got] == [24, 23, 24]


def test_hours_across_the_repeated_hour_are_four_real_hours() -> None:
    """In Berlin's repeated 02:00 hour, HOUR buckets follow real time: 02:00 appears twice."""
    got = spans(
        dt.datetime(2026, 10, 25, 1, tzinfo=BERLIN),
        dt.datetime(2026, 10, 25, 3, 59, 59, tzinfo=BERLIN),
        Interval.HOUR,
        BERLIN,
    )
    assert got == [
        "2026-10-25T01:00:00+02:00 .. 2026-10-25T01:59:59+02:00",
        "2026-10-25T02:00:00+02:00 .. 2026-10-25T02:59:59+02:00",
        "2026-10-25T02:00:00+01:00 .. 2026-10-25T02:59:59+01:00",
        "2026-10-25T03:00:00+01:00 .. 2026-10-25T03:59:59+01:00",
    ]


def test_hours_in_a_half_hour_zone_start_at_local_hours() -> None:
    """In Asia/Kolkata (+05:30) hour edges fall on local hours, and partial ends are kept."""
    got = spans(
        dt.datetime(2026, 1, 15, 10, 20, tzinfo=KOLKATA),
        dt.datetime(2026, 1, 15, 12, 5, tzinfo=KOLKATA),
        Interval.HOUR,
        KOLKATA,
    )
    assert got == [
        "2026-01-15T10:20:00+05:30 .. 2026-01-15T10:59:59+05:30",
        "2026-01-15T11:00:00+05:30 .. 2026-01-15T11:59:59+05:30",
        "2026-01-15T12:00:00+05:30 .. 2026-01-15T12:05:00+05:30",
    ]


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    """WEEK edges are Mondays at midnight; MONTH edges the 1st, across a DST change."""
    weeks = spans(
        dt.datetime(2026, 3, 4, 12, tzinfo=NEW_YORK),
        dt.datetime(2026, 3, 17, tzinfo=NEW_YORK),
        Interval.WEEK,
        NEW_YORK,
    )
    assert weeks == [
        "2026-03-04T12:00:00-05:00 .. 2026-03-08T23:59:59-04:00",
        "2026-03-09T00:00:00-04:00 .. 2026-03-15T23:59:59-04:00",
        "2026-03-16T00:00:00-04:00 .. 2026-03-17T00:00:00-04:00",
    ]
    months = spans(
        dt.datetime(2026, 1, 15, tzinfo=BERLIN),
        dt.datetime(2026, 4, 2, tzinfo=BERLIN),
        Interval.MONTH,
        BERLIN,
    )
    assert months == [
        "2026-01-15T00:00:00+01:00 .. 2026-01-31T23:59:59+01:00",
        "2026-02-01T00:00:00+01:00 .. 2026-02-28T23:59:59+01:00",
        "2026-03-01T00:00:00+01:00 .. 2026-03-31T23:59:59+02:00",
        "2026-04-01T00:00:00+02:00 .. 2026-04-02T00:00:00+02:00",
    ]


def test_a_skipped_midnight_starts_the_day_when_it_begins() -> None:
    """In Santiago, where midnight is skipped in September, the day starts at 01:00."""
    got = spans(
        dt.datetime(2026, 9, 5, tzinfo=SANTIAGO),
        dt.datetime(2026, 9, 6, 23, tzinfo=SANTIAGO),
        Interval.DAY,
        SANTIAGO,
    )
    assert got[1].startswith("2026-09-06T01:00:00-03:00")


def test_buckets_tile_the_range_without_gaps_or_overlap() -> None:
    """Consecutive buckets meet one second apart, from the first instant to the last."""
    start = dt.datetime(2026, 1, 1, 7, 13, tzinfo=BERLIN)
    end = dt.datetime(2026, 12, 31, 22, tzinfo=BERLIN)
    for interval in Interval:
        got = list(buckets(start, end, interval, BERLIN))
        assert got[0][0] == start
        assert got[-1][1] == end
        for (_, last), (first, _) in itertools.pairwise(got):
            assert first.astimezone(dt.UTC) - last.astimezone(dt.UTC) == dt.timedelta(seconds=1)


@pytest.mark.parametrize(("interval", "expected"), [(Interval.DAY, 31), (Interval.HOUR, 744)])
def test_count_buckets_stops_past_the_limit(interval: Interval, expected: int) -> None:
    """count_buckets counts exactly up to limit + 1, so a huge range costs nothing more."""
    start = dt.datetime(2026, 1, 1, tzinfo=BERLIN)
    assert (
        count_buckets(start, dt.datetime(2026, 1, 31, 23, tzinfo=BERLIN), interval, BERLIN, 10_000)
        == expected
    )
    assert count_buckets(start, dt.datetime(9000, 1, 1, tzinfo=BERLIN), interval, BERLIN, 50) == 51
