"""callCountSeries end to end: bucket edges upstream, partial failure, settled-window caching."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from zoneinfo import ZoneInfo

import httpx
from conftest import ACME, Gateway, headers_for
from support.clock import FakeClock

from gateway.simulator import Simulator

SERIES = """
query($f: CallFilterInput!, $i: Interval!, $tz: String) {
  series: callCountSeries(filter: $f, interval: $i, timeZone: $tz) { from to count }
}
"""
KOLKATA = ZoneInfo("Asia/Kolkata")


def test_berlin_days_across_dst_ask_the_upstream_for_local_midnights(
    gateway: Gateway, sim: Simulator
) -> None:
    """Each Berlin day's bounds reach the upstream converted to its zone, the 25-hour day too."""
    variables = {
        "f": {"from": "2026-10-24T00:00:00", "to": "2026-10-26T23:59:59", "statuses": ["answered"]},
        "i": "DAY",
        "tz": "Europe/Berlin",
    }
    body = gateway.query(SERIES, headers_for(ACME), variables)
    assert "errors" not in body
    series = body["data"]["series"]
    assert [(b["from"], b["to"]) for b in series] == [
        ("2026-10-24T00:00:00+02:00", "2026-10-24T23:59:59+02:00"),
        ("2026-10-25T00:00:00+02:00", "2026-10-25T23:59:59+01:00"),
        ("2026-10-26T00:00:00+01:00", "2026-10-26T23:59:59+01:00"),
    ]
    sent = sorted((r["filter"]["dtGte"], r["filter"]["dtLte"]) for r in sim.requests)
    assert sent == [
        ("2026-10-24 03:30:00", "2026-10-25 03:29:59"),
        ("2026-10-25 03:30:00", "2026-10-26 04:29:59"),
        ("2026-10-26 04:30:00", "2026-10-27 04:29:59"),
    ]
    assert all(r["filter"]["st"] == ["answered"] for r in sim.requests)
    for bucket, (gte, lte) in zip(series, sent, strict=True):
        assert bucket["count"] == sim.count(
            "acme", {"dtGte": gte, "dtLte": lte, "st": ["answered"]}
        )


def test_new_york_hours_across_spring_forward_skip_the_missing_hour(
    gateway: Gateway, sim: Simulator
) -> None:
    """Hourly buckets over New York's spring change: 01:00 is followed by 03:00 local."""
    variables = {
        "f": {"from": "2026-03-08T00:00:00", "to": "2026-03-08T03:59:59"},
        "i": "HOUR",
        "tz": "America/New_York",
    }
    series = gateway.query(SERIES, headers_for(ACME), variables)["data"]["series"]
    assert [b["from"] for b in series] == [
        "2026-03-08T00:00:00-05:00",
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
    ]
    assert sim.request_count == 3


class FailingDay(httpx.AsyncBaseTransport):
    """Passes requests to the simulator, but answers 1009 for the bucket starting ``day``."""

    def __init__(self, day: str) -> None:
        self.day = day
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("filter", {}).get("dtGte", "").startswith(self.day):
            return httpx.Response(200, json={"status": "error", "message": "x", "code": 1009})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_failing_middle_bucket_leaves_the_others_their_counts(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """The middle day fails: its count is null with its own path, the days around it count."""
    gateway = start_gateway(transport=FailingDay("2026-11-02"), upstream_retries=0)
    variables = {"f": {"from": "2026-11-01 00:00:00", "to": "2026-11-03 23:59:59"}, "i": "DAY"}
    body = gateway.query(SERIES, headers_for(ACME), variables)
    counts = [b["count"] for b in body["data"]["series"]]
    assert counts[1] is None
    assert counts[0] == sim.count(
        "acme", {"dtGte": "2026-11-01 00:00:00", "dtLte": "2026-11-01 23:59:59"}
    )
    assert counts[2] == sim.count(
        "acme", {"dtGte": "2026-11-03 00:00:00", "dtLte": "2026-11-03 23:59:59"}
    )
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["series", 1, "count"], "UPSTREAM_ERROR")
    ]


def test_a_repeated_30_day_series_refetches_only_today(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Ten minutes later, the same daily series costs one upstream call: today's bucket."""
    now = dt.datetime(2026, 11, 20, 15, 0, tzinfo=KOLKATA)
    clock = FakeClock()
    clock.now = now.timestamp()
    gateway = start_gateway(clock=clock)
    variables = {
        "f": {
            "from": (now - dt.timedelta(days=29)).date().isoformat() + " 00:00:00",
            "to": now.isoformat(),
        },
        "i": "DAY",
    }
    first = gateway.query(SERIES, headers_for(ACME), variables)
    assert len(first["data"]["series"]) == 30
    assert sim.request_count == 30
    clock.advance(600)
    second = gateway.query(SERIES, headers_for(ACME), variables)
    assert sim.request_count == 31
    assert sim.requests[-1]["filter"]["dtGte"] == "2026-11-20 00:00:00"
    assert second["data"] == first["data"]


def test_series_limits_are_checked_before_any_call(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Too many buckets, a bad zone, missing bounds or too little fan-out budget: no call."""
    gateway = start_gateway(max_buckets=48, max_fanout=20)
    cases = [
        (
            {"f": {"from": "2026-11-01 00:00:00", "to": "2026-11-03 00:00:00"}, "i": "HOUR"},
            "more than 48",
        ),
        (
            {"f": {"from": "2026-11-01 00:00:00", "to": "2026-11-02 00:00:00"}, "i": "HOUR"},
            "upstream calls",
        ),
        (
            {
                "f": {"from": "2026-11-01 00:00:00", "to": "2026-11-02 00:00:00"},
                "i": "DAY",
                "tz": "Mars/Base",
            },
            "IANA",
        ),
        ({"f": {"from": "2026-11-01 00:00:00"}, "i": "DAY"}, "filter.from and filter.to"),
        ({"f": {"from": "2026-11-02 00:00:00", "to": "2026-11-01 00:00:00"}, "i": "DAY"}, "after"),
        ({"f": {"from": "0001-01-01 00:00:00", "to": "0001-01-01 05:00:00"}, "i": "DAY"}, "year"),
    ]
    for variables, says in cases:
        body = gateway.query(SERIES, headers_for(ACME), variables)
        assert body["data"] == {"series": None}, variables
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert says in error["message"]
    assert sim.request_count == 0
