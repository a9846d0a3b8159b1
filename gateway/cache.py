"""Cache keys, the bounded TTL cache of counts, and single flight.

A key is (HMAC-SHA256 of the whole credential under a per-process secret,
canonical filter JSON, priorityFilter): two users never share an entry, a right
user id with a wrong token never hits, and no credential is held in clear.
Only successes are stored. Concurrent identical misses share one upstream call
(single flight) whether they come from one request or many; the shared call
runs in its own task, so a caller that goes away does not cancel it for the
others, and a failure reaches the callers that waited on it but is not kept:
the next caller starts a fresh call.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from cachetools import TTLCache

from gateway.upstream import CountQuery, Credential


class CacheKey(NamedTuple):
    """Who asks (as an HMAC digest) and what they ask."""

    principal: bytes
    filter_json: str
    priority_filter: str | None


class KeyMaker:
    """Derives cache keys with a secret that never leaves the process (or the Secret store)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def principal(self, credential: Credential) -> bytes:
        """HMAC-SHA256 of the whole credential."""
        return hmac.new(self._secret, credential.identity(), hashlib.sha256).digest()

    def key(self, credential: Credential, query: CountQuery) -> CacheKey:
        """The cache key for ``credential`` asking ``query``."""
        return CacheKey(self.principal(credential), query.filter_json, query.priority_filter)


class CountCache:
    """A bounded TTL cache of counts with single flight for misses."""

    def __init__(
        self, maxsize: int, ttl: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: TTLCache[CacheKey, int] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._flights: dict[CacheKey, asyncio.Task[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> int | None:
        """The fresh cached count for ``key``, if any."""
        return self._entries.get(key)

    async def get_or_fetch(self, key: CacheKey, fetch: Callable[[], Awaitable[int]]) -> int:
        """The cached count for ``key``, else the result of one shared ``fetch()``."""
        cached = self._entries.get(key)
        if cached is not None:
            return cached
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fly(key, fetch))
            self._flights[key] = flight
            flight.add_done_callback(_consume_exception)
        # shield: one caller's cancellation must not cancel the call the others share.
        return await asyncio.shield(flight)

    @property
    def in_flight(self) -> int:
        """How many distinct upstream calls are under way."""
        return len(self._flights)

    async def _fly(self, key: CacheKey, fetch: Callable[[], Awaitable[int]]) -> int:
        try:
            value = await fetch()
            self._entries[key] = value
            return value
        finally:
            del self._flights[key]


def _consume_exception(task: asyncio.Task[int]) -> None:
    # The waiters got the exception; nobody else should be told it was never retrieved.
    if not task.cancelled():
        task.exception()
