"""Bytes per cached key in the gateway's count cache, at 100,000 distinct keys.

Run by run.py in a fresh interpreter, twice: once under tracemalloc (every
Python allocation the cache holds: keys, HMAC digests, filter strings, values,
the TTLCache's links and dict), once without it for the resident-set growth
(what the allocator really took). The keys are made the way the gateway makes
them (``CacheKey.of`` the credential's HMAC by ``Callers.principal`` and
``CountQuery.build`` of a filter), and entered the way it enters them
(``CountCache.get_or_start``), so the
numbers follow whatever the cache code is at the time. Prints one JSON object.

    python tests/benchmarks/memory_per_key.py [--keys 100000] [--mode tracemalloc|rss]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tracemalloc
from pathlib import Path

from gateway.cache import CacheKey, CountCache
from gateway.http import Callers
from gateway.model import CountQuery, Credential

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_SIZE


async def fill(cache: CountCache, keys: Callers, n: int) -> None:
    """Enter ``n`` distinct successful counts, as ``n`` misses of one caller."""
    principal = keys.principal(Credential(ssid="bench-ssid"))
    for i in range(n):
        key = CacheKey.of(principal, CountQuery.build({"campId": 1_000_000 + i}, None))

        async def fetch(value: int = 100_000 + i) -> int:
            return value

        started = cache.get_or_start(key, fetch, None, lambda counted: counted)
        if isinstance(started, asyncio.Future):
            await started


def main() -> None:
    """Measure and print ``{"keys", "mode", "bytes_per_key", "entries"}``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--mode", choices=["tracemalloc", "rss"], default="tracemalloc")
    args = parser.parse_args()

    # The gateway's defaults (TTL 15 s, stale window 300 s), bounded well above the keys.
    cache = CountCache(maxsize=2 * args.keys, ttl=15.0, stale=300.0)
    keys = Callers(os.urandom(32))
    loop = asyncio.new_event_loop()
    # Warm the loop, the JSON encoder and the HMAC path so that one-time costs stay out.
    loop.run_until_complete(fill(CountCache(maxsize=16, ttl=15.0), keys, 16))
    gc.collect()
    if args.mode == "tracemalloc":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss_bytes()
    loop.run_until_complete(fill(cache, keys, args.keys))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if args.mode == "tracemalloc" else rss_bytes()
    entries = len(cache)
    print(
        json.dumps(
            {
                "keys": args.keys,
                "mode": args.mode,
                "entries": entries,
                "bytes_per_key": (after - before) / max(1, entries),
            }
        )
    )


if __name__ == "__main__":
    main()
