"""Live streams, their shared feeds and pollers, with the real services over a fake upstream.

Intervals are whole seconds (``every`` is an Int), so these tests take a few
seconds each; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from support.waiting import eventually

from gateway.api import Asked, LiveCounts, Stream, StreamEnded, create_schema
from gateway.config import Settings
from gateway.documents import Documents
from gateway.errors import StreamEndedError, StreamLimitError
from gateway.http import Callers
from gateway.observe import Metrics
from gateway.server.services import serving

pytestmark = pytest.mark.slow

BASE = "http://upstream.test"
DEADLINE = 10.0
ONE = "subscription { watch(every: 1) { n: callCount(filter: {campaignId: 1}) } }"


class Upstream:
    """A fake reportCount: a count per (credential, filter), errors on demand, every call kept."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.error_code: int | None = None
        self.calls: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append(body)
        if self.error_code is not None:
            error = {"status": "error", "message": "no", "code": self.error_code}
            return httpx.Response(200, json=error)
        who = body.get("ssid") or body.get("userId")
        count = self.counts.get((who, json.dumps(body.get("filter", {}), sort_keys=True)), 0)
        return httpx.Response(200, json={"code": 200, "status": "success", "cnt": count})

    def set(self, who: str, filter: dict[str, Any], count: int) -> None:
        self.counts[(who, json.dumps(filter, sort_keys=True))] = count


@dataclasses.dataclass
class Harness:
    """The live counts of a process, and how to ask them for streams."""

    live: LiveCounts
    upstream: Upstream
    settings: Settings
    documents: Documents
    callers: Callers
    schema: Any

    def open(self, text: str = ONE, ssid: str = "alice", **variables: Any) -> Stream:
        caller = self.callers.identify({"X-DeepCall-SSID": ssid})
        prepared = self.documents.prepare(text)
        assert prepared.document is not None, prepared.errors
        asked = Asked(self.schema, prepared, text, None, variables or None, caller, "test", False)
        return self.live.open(asked, "sse")


@contextlib.asynccontextmanager
async def harness(**overrides: Any) -> AsyncIterator[Harness]:
    """The services of a process with ``overrides`` to its settings, over a fake upstream."""
    upstream = Upstream()
    changes = {"live_min_every": 1, "upstream_retries": 0, "rate_limit": 0, **overrides}
    settings = dataclasses.replace(Settings(upstream_url=BASE), **changes)
    transport = httpx.MockTransport(upstream.handle)
    async with serving(settings, transport, BASE, time.time, Metrics(), None) as services:
        assert services.live is not None
        schema = create_schema()
        documents = Documents.for_settings(schema._schema, settings)
        yield Harness(services.live, upstream, settings, documents, Callers(b"k" * 32), schema)


@pytest.fixture
async def live() -> AsyncIterator[Harness]:
    async with harness() as made:
        yield made


async def event(stream: Stream, heartbeat: float = DEADLINE) -> dict[str, Any]:
    """The stream's next event, parsed; fails if none comes in time."""
    got = await stream.next(heartbeat)
    assert got is not None, "no event within the heartbeat"
    parsed: dict[str, Any] = orjson.loads(got.payload)
    return parsed


async def test_first_event_at_once_then_only_changes(live: Harness) -> None:
    """The first event comes with the first poll; a poll that finds the same count sends
    nothing; a changed count is the next event."""
    live.upstream.set("alice", {"campId": 1}, 5)
    stream = live.open()
    started = time.monotonic()
    assert await event(stream) == {"data": {"watch": {"n": 5}}}
    assert time.monotonic() - started < 1
    calls = len(live.upstream.calls)
    assert await stream.next(heartbeat=2.5) is None  # two more polls, same count: quiet
    assert len(live.upstream.calls) >= calls + 2
    live.upstream.set("alice", {"campId": 1}, 6)
    assert await event(stream) == {"data": {"watch": {"n": 6}}}
    stream.close()


async def test_fifty_subscribers_of_one_question_cause_one_call_per_interval(
    live: Harness,
) -> None:
    """50 streams (two documents, one question) share one poller: about one call a second."""
    live.upstream.set("alice", {"campId": 1}, 3)
    other = "subscription { watch(every: 1) { m: callCount(filter: {campaignId: 1}) } }"
    streams = [live.open(ONE if n % 2 else other) for n in range(50)]
    for stream in streams:
        assert (await event(stream))["data"]["watch"] in ({"n": 3}, {"m": 3})
    assert live.live.feeds == 2
    assert len(live.live.pollers) == 1
    before, started = len(live.upstream.calls), time.monotonic()
    await asyncio.sleep(4)
    calls, seconds = len(live.upstream.calls) - before, time.monotonic() - started
    # Each poll waits its interval (1 s, jittered by up to 5%) after the last one landed:
    # in a window of ``seconds`` there are about that many, one fewer or more by phase.
    assert seconds / 1.05 - 1 <= calls <= seconds / 0.95 + 1
    for stream in streams:
        stream.close()


async def test_two_credentials_never_share_a_feed_or_a_count(live: Harness) -> None:
    """The same subscription from two credentials gets each one's own count, polled with it."""
    live.upstream.set("alice", {"campId": 1}, 11)
    live.upstream.set("bob", {"campId": 1}, 22)
    alice, bob = live.open(ssid="alice"), live.open(ssid="bob")
    assert await event(alice) == {"data": {"watch": {"n": 11}}}
    assert await event(bob) == {"data": {"watch": {"n": 22}}}
    assert live.live.feeds == 2
    assert {call["ssid"] for call in live.upstream.calls} == {"alice", "bob"}
    alice.close()
    bob.close()


async def test_a_slow_reader_skips_to_the_latest_event(live: Harness) -> None:
    """Events a stream did not read in time are not queued: it gets the latest, once."""
    live.upstream.set("alice", {"campId": 1}, 1)
    quick, slow = live.open(), live.open()
    await event(quick)
    await event(slow)
    for count in (2, 3, 4):
        live.upstream.set("alice", {"campId": 1}, count)
        assert await event(quick) == {"data": {"watch": {"n": count}}}
    assert await event(slow) == {"data": {"watch": {"n": 4}}}
    assert slow.events == 2
    quick.close()
    slow.close()


async def test_a_settled_window_sends_one_event_and_completes(live: Harness) -> None:
    """A window that ended long ago cannot change: one event, then the stream completes."""
    text = (
        'subscription { watch(every: 1) { old: callCount(filter: {from: "2020-01-01 00:00:00",'
        ' to: "2020-01-31 23:59:59"}) } }'
    )
    stream = live.open(text)
    assert await event(stream) == {"data": {"watch": {"old": 0}}}
    with pytest.raises(StreamEnded) as ended:
        await stream.next(DEADLINE)
    assert ended.value.reason == "complete"
    stream.close()
    assert live.live.feeds == 0


async def test_a_permanent_error_is_one_event_then_complete(live: Harness) -> None:
    """Upstream 1014: the event carries UNAUTHENTICATED with its path, then the stream ends."""
    live.upstream.error_code = 1014
    stream = live.open()
    first = await event(stream)
    assert first["data"] == {"watch": {"n": None}}
    assert [(e["path"], e["extensions"]["code"]) for e in first["errors"]] == [
        (["watch", "n"], "UNAUTHENTICATED")
    ]
    with pytest.raises(StreamEnded):
        await stream.next(DEADLINE)
    stream.close()


async def test_a_transient_failure_is_stale_then_null_then_fresh() -> None:
    """1010 keeps the stream: the last count marked STALE_DATA within the stale window, then
    null with UPSTREAM_UNAVAILABLE, then the fresh count once DeepCall is back."""
    async with harness(cache_ttl=1.0, cache_stale=2.0) as live:
        live.upstream.set("alice", {"campId": 1}, 8)
        stream = live.open()
        assert await event(stream) == {"data": {"watch": {"n": 8}}}
        live.upstream.error_code = 1010
        stale = await event(stream)
        assert stale["data"] == {"watch": {"n": 8}}
        [warning] = stale["extensions"]["warnings"]
        assert (warning["code"], warning["path"]) == ("STALE_DATA", ["watch", "n"])
        failed = await event(stream)
        assert failed["data"] == {"watch": {"n": None}}
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        live.upstream.error_code = None
        live.upstream.set("alice", {"campId": 1}, 9)
        assert await event(stream) == {"data": {"watch": {"n": 9}}}
        stream.close()


async def test_closing_every_stream_stops_its_pollers_with_no_task_left(live: Harness) -> None:
    """When the last streams go, the feeds stop at once and the pollers after their linger:
    no task, no poll remains."""
    before = asyncio.all_tasks()
    series = (
        "subscription { watch(every: 1) { s: callCountSeries(filter: {from: "
        '"2030-01-01 00:00:00", to: "2030-01-03 23:59:59"}, interval: DAY) { count } } }'
    )
    streams = [live.open(), live.open(), live.open(series)]
    for stream in streams:
        await event(stream)
    assert len(live.live.pollers) == 4
    for stream in streams:
        stream.close()
    assert live.live.feeds == 0
    await eventually(
        lambda: (
            not len(live.live.pollers)
            and not asyncio.all_tasks() - before - {asyncio.current_task()}
        )
    )
    calls = len(live.upstream.calls)
    await asyncio.sleep(1.5)
    assert len(live.upstream.calls) == calls


async def test_stream_limits_refuse_the_newcomer_only() -> None:
    """Past a credential's streams another credential is served; past the process's, nobody."""
    async with harness(live_streams_per_credential=2, live_streams=3) as live:
        streams = [live.open(), live.open()]
        with pytest.raises(StreamLimitError) as refused:
            live.open()
        assert refused.value.extensions()["code"] == "RATE_LIMITED"
        streams.append(live.open(ssid="bob"))
        with pytest.raises(StreamLimitError):
            live.open(ssid="carol")
        for stream in streams:
            await event(stream)
            stream.close()


async def test_events_come_no_more_often_than_the_floor() -> None:
    """every: 1 under GATEWAY_LIVE_MIN_EVERY=2: a count changing at every poll is sent at
    most every two seconds."""
    async with harness(live_min_every=2) as live:
        stream = live.open()
        await event(stream)
        times = []
        for count in range(1, 4):
            live.upstream.set("alice", {"campId": 1}, count)
            await event(stream)
            times.append(time.monotonic())
        assert min(b - a for a, b in itertools.pairwise(times)) >= 1.9
        stream.close()


async def test_shutdown_ends_every_stream_and_refuses_new_ones(live: Harness) -> None:
    """On shutdown each open stream ends (shutdown) and a new one is STREAM_ENDED."""
    stream = live.open()
    await event(stream)
    live.live.shutdown()
    with pytest.raises(StreamEnded) as ended:
        await stream.next(DEADLINE)
    assert ended.value.reason == "shutdown"
    with pytest.raises(StreamEndedError):
        live.open()
    stream.close()


async def test_a_stream_ends_when_it_has_lived_its_time() -> None:
    """GATEWAY_LIVE_MAX_LIFETIME ends a stream (lifetime), so its client subscribes again."""
    async with harness(live_max_lifetime=1.5) as live:
        stream = live.open()
        await event(stream)
        with pytest.raises(StreamEnded) as ended:
            await stream.next(DEADLINE)
        assert ended.value.reason == "lifetime"
        stream.close()
