"""Two replicas sharing a real Redis: subscribers of one question on both cause about one
upstream call per interval in all, not one per replica."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from conftest import ACME, headers_for
from support.live import body, sse
from support.redis import needs_redis, redis_server, replicas

from gateway.simulator import Simulator

pytestmark = [pytest.mark.slow, needs_redis]

QUERY = "subscription { watch(every: 1) { n: callCount(filter: {campaignId: 9301}) } }"
SECONDS = 6.0


def calls_for(sim: Simulator, campaign: int) -> int:
    """Upstream calls the simulator received for ``campaign``."""
    return sum(1 for request in sim.requests if request.get("filter", {}).get("campId") == campaign)


async def test_two_replicas_poll_one_question_once_per_interval(
    sim: Simulator, upstream_url: str
) -> None:
    """A subscriber on each of two replicas: over six seconds, about six upstream calls."""
    with (
        redis_server() as (redis_url, _),
        replicas(upstream_url, redis_url, GATEWAY_LIVE_MIN_EVERY="1") as urls,
    ):
        async with (
            httpx.AsyncClient(timeout=30) as client,
            sse(client, f"{urls[0]}/graphql", body(QUERY), headers_for(ACME)) as one,
            sse(client, f"{urls[1]}/graphql", body(QUERY), headers_for(ACME)) as two,
        ):
            assert (await one.next_event()).data == {"data": {"watch": {"n": 0}}}
            assert (await two.next_event()).data == {"data": {"watch": {"n": 0}}}
            before, started = calls_for(sim, 9301), time.monotonic()
            await asyncio.sleep(SECONDS)
            calls = calls_for(sim, 9301) - before
            elapsed = time.monotonic() - started
    # One replica's poller, or the other's, asks each second (jittered by up to 5%, one
    # fewer or more by phase); not both.
    assert elapsed / 1.05 - 1 <= calls <= elapsed / 0.95 + 1.5
