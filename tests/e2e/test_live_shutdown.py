"""SIGTERM with 100 open streams: each ends as its protocol says, the process exits within
GATEWAY_SHUTDOWN_TIMEOUT, and every client subscribes again on a second instance."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import httpx
import pytest
from conftest import ACME, headers_for
from support.live import HTTPStream, body, multipart, socket, sse
from test_shutdown import running

from gateway.simulator import Simulator

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT = 5
STREAMS = 100
WAIT = 30.0
QUERY = "subscription Board { watch(every: 1) { n: callCount(filter: {campaignId: 9201}) } }"


def live_env(upstream_url: str) -> dict[str, str]:
    """A gateway whose streams poll every second, with room for 100 streams of one caller."""
    return {
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_LIVE_MIN_EVERY": "1",
        "GATEWAY_LIVE_STREAMS_PER_CREDENTIAL": "300",
        "GATEWAY_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        "GATEWAY_RATE_LIMIT": "0",
    }


class Clients:
    """100 subscribers: each reads its first event, waits for its stream to end, then
    subscribes on the other instance and reads an event there."""

    def __init__(self, first: str, second: str) -> None:
        self.first, self.second = first, second
        self.subscribed = 0
        self.all_subscribed = asyncio.Event()
        self.endings: Counter[str] = Counter()
        self.again: Counter[str] = Counter()
        self.http = httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_connections=400))

    def _got_first(self) -> None:
        self.subscribed += 1
        if self.subscribed == STREAMS:
            self.all_subscribed.set()

    async def websocket(self) -> None:
        async with socket(self.first) as ws:
            await ws.init(headers_for(ACME))
            await ws.subscribe("1", QUERY)
            assert (await ws.receive())["type"] == "next"
            self._got_first()
            code, _ = await ws.closed()
        self.endings[f"websocket {code}"] += 1
        async with socket(self.second) as ws:
            await ws.init(headers_for(ACME))
            await ws.subscribe("1", QUERY)
            if (await ws.receive())["type"] == "next":
                self.again["websocket"] += 1

    async def over_http(self, kind: str) -> None:
        opened = sse if kind == "sse" else multipart
        url = f"{self.first}/graphql"
        async with opened(self.http, url, body(QUERY), headers_for(ACME)) as stream:
            assert (await stream.next_event()).event == "next"
            self._got_first()
            self.endings[f"{kind} {await _ending(stream)}"] += 1
        url = f"{self.second}/graphql"
        async with opened(self.http, url, body(QUERY), headers_for(ACME)) as stream:
            if (await stream.next_event()).event == "next":
                self.again[kind] += 1


async def _ending(stream: HTTPStream) -> str:
    """How an HTTP stream ended: ``end`` (no complete), ``complete``, or the error's code."""
    try:
        part = await stream.next_event()
    except StopAsyncIteration:
        return "end"
    if part.event == "next" and part.data.get("payload", "") is None:
        return str(part.data["errors"][0]["extensions"]["code"])
    return part.event


async def test_sigterm_ends_100_streams_and_clients_resubscribe_elsewhere(
    sim: Simulator, upstream_url: str
) -> None:
    """WebSockets close 1012, SSE streams end without complete, multipart streams get a
    STREAM_ENDED error; the process exits 0 within the shutdown timeout; all 100 clients
    get their count from the second instance."""
    async with (
        running("serve", env=live_env(upstream_url)) as first,
        running("serve", env=live_env(upstream_url)) as second,
    ):
        clients = Clients(first.url, second.url)
        kinds = ["websocket", "sse", "multipart"]
        plan = [kinds[n % 3] for n in range(STREAMS)]
        async with asyncio.TaskGroup() as group:
            for kind in plan:
                group.create_task(
                    clients.websocket() if kind == "websocket" else clients.over_http(kind)
                )
            async with asyncio.timeout(WAIT):
                await clients.all_subscribed.wait()
            first.signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert await first.exit_status(within=SHUTDOWN_TIMEOUT + 5) == 0
            exited = time.monotonic() - signalled
        await clients.http.aclose()
    assert exited < SHUTDOWN_TIMEOUT
    counted = Counter(plan)
    assert clients.endings == {
        "websocket 1012": counted["websocket"],
        "sse end": counted["sse"],
        "multipart STREAM_ENDED": counted["multipart"],
    }
    assert clients.again == counted
