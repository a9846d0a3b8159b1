"""The Redis tier against a real redis-server: what anyone wrote there is not believed blindly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from support.clock import FakeClock
from support.redis import needs_redis, redis_server

from gateway.cache.redis_tier import Entry, SharedTier
from gateway.fleet import PREFIX, RedisLink

pytestmark = needs_redis
NAME = "principal:question"


@pytest.fixture
async def tier() -> AsyncIterator[tuple[SharedTier, redis.Redis, FakeClock]]:
    """A tier on a fresh redis-server, its clock at 1,000 s, and a raw client beside it."""
    clock = FakeClock(1000.0)
    with redis_server() as (url, _):
        raw = redis.Redis.from_url(url)
        link = RedisLink.from_url(url)
        shared = SharedTier(link, stale=60, lock_seconds=1, timer=clock)
        try:
            yield shared, raw, clock
        finally:
            await link.aclose()
            await raw.aclose()


@pytest.mark.parametrize(
    "stored",
    [
        b"[-5, 990, 15]",  # a count below zero
        b"[1099511627776, 990, 15]",  # 2**40: beyond GraphQL's Int
        b"[7.5, 990, 15]",  # not a whole count
        b"[true, 990, 15]",
        b"[7, Infinity, 15]",
        b"[7, 990, Infinity]",
        b"[7, 990, NaN]",
        b"[7, 990, -1]",
        b"[7, 99999999999, 15]",  # fetched in the future: fresh forever
        b'[7, "990", 15]',
        b"[7, 990]",
        b"{}",
        b"not json",
    ],
)
async def test_an_entry_that_is_not_a_count_is_ignored(
    tier: tuple[SharedTier, redis.Redis, FakeClock], stored: bytes
) -> None:
    """A stored value of the wrong shape or beyond its bounds reads as no entry at all."""
    shared, raw, _ = tier
    await raw.set(f"{PREFIX}:count:{NAME}", stored)

    assert await shared.read(NAME) is None
    assert shared.up  # not a Redis failure: the tier stays on


async def test_an_entry_this_gateway_writes_reads_back(
    tier: tuple[SharedTier, redis.Redis, FakeClock],
) -> None:
    """What the tier writes it reads, fresh within its TTL, within a few seconds of skew."""
    shared, raw, _ = tier

    async def fetch() -> int:
        return 42

    written = await shared.lead_or_wait(NAME, fetch, ttl=15)
    await raw.set(f"{PREFIX}:count:other", b"[3, 1004, 15]")  # a replica 4 s ahead

    assert await shared.read(NAME) == written == Entry(42, 1000.0, 15.0)
    assert await shared.read("other") == Entry(3, 1004.0, 15.0)
