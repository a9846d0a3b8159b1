"""Calendar buckets for ``callCountSeries``: hours, days, weeks, months in a time zone.

Edges fall where a wall clock in that zone shows the start of an hour, a day, a
Monday or a month's first, so a day across a daylight-saving change lasts 23 or
25 hours. Each bucket is a closed range of whole seconds, like the upstream's.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from zoneinfo import ZoneInfo

_SECOND = dt.timedelta(seconds=1)


class Interval(enum.Enum):
    """The width of a bucket."""

    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


def buckets(
    start: dt.datetime, end: dt.datetime, interval: Interval, zone: ZoneInfo
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The buckets covering ``[start, end]`` (aware instants), as aware datetimes in ``zone``.

    All arithmetic and comparison happens in UTC: Python compares and subtracts
    two datetimes of the same tzinfo by their wall clocks, which is wrong in
    the hour a clock repeats.
    """
    first, last = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    edge = _floor(start.astimezone(zone), interval, zone)
    while edge <= last:
        following = _next(edge, interval, zone)
        yield (
            max(edge, first).astimezone(zone),
            min(following - _SECOND, last).astimezone(zone),
        )
        edge = following


def count_buckets(
    start: dt.datetime, end: dt.datetime, interval: Interval, zone: ZoneInfo, limit: int
) -> int:
    """How many buckets ``buckets`` would give, counting no further than ``limit + 1``."""
    count = 0
    for _ in buckets(start, end, interval, zone):
        count += 1
        if count > limit:
            break
    return count


def _floor(moment: dt.datetime, interval: Interval, zone: ZoneInfo) -> dt.datetime:
    """The start (in UTC) of the bucket holding ``moment`` (aware, in ``zone``)."""
    if interval is Interval.HOUR:
        # Count back the minutes shown, in real time: the local hour began that long ago.
        into_hour = dt.timedelta(
            minutes=moment.minute, seconds=moment.second, microseconds=moment.microsecond
        )
        return moment.astimezone(dt.UTC) - into_hour
    day = moment.date()
    if interval is Interval.WEEK:
        day -= dt.timedelta(days=day.weekday())
    elif interval is Interval.MONTH:
        day = day.replace(day=1)
    return _midnight(day, zone)


def _next(edge: dt.datetime, interval: Interval, zone: ZoneInfo) -> dt.datetime:
    """The start (in UTC) of the bucket after the one starting at ``edge`` (UTC)."""
    if interval is Interval.HOUR:
        return edge + dt.timedelta(hours=1)  # every hour is 3,600 real seconds
    day = edge.astimezone(zone).date()
    if interval is Interval.DAY:
        day += dt.timedelta(days=1)
    elif interval is Interval.WEEK:
        day += dt.timedelta(days=7)
    else:
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return _midnight(day, zone)


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The first instant (in UTC) of ``day`` in ``zone``; a skipped midnight moves forward."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
