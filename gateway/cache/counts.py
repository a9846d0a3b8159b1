"""The bounded cache of counts: a TTL per entry, single flight, stale-on-error.

Only successes are stored, under keys that hold no credential in clear.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

from gateway.cache.redis_tier import Entry, SharedTier, shared_name
from gateway.errors import UpstreamFailure
from gateway.model import CountQuery

T = TypeVar("T")


class CacheKey(NamedTuple):
    """Who asks (an HMAC-SHA256 of the whole credential) and what (the question's digest).

    Two users never share an entry, and a right user id with a wrong token
    never hits. Neither the credential nor the filter is held in clear: a key
    costs the same 48 bytes however long the filter a caller sends.
    """

    principal: bytes
    question: bytes

    @classmethod
    def of(cls, principal: bytes, query: CountQuery) -> CacheKey:
        """The key for the caller with HMAC ``principal`` asking ``query``."""
        return cls(principal, query.digest)


class Counted(NamedTuple):
    """A count, where it came from, and its age in seconds when served stale."""

    value: int
    stale_age: float | None = None
    #: hit (fresh entry), miss (started the upstream call), join (shared one), stale.
    source: str = "hit"


class CountCache:
    """A bounded cache of counts, each with its own TTL; single flight; stale-on-error.

    Concurrent identical misses share one upstream call, from one request or
    many; it runs in its own task, so a caller that goes away does not cancel
    it for the others, and its failure reaches its waiters but is not kept. An
    entry is fresh for its TTL, then kept ``stale`` seconds more: when a refresh
    fails transiently, the old value is served with its age instead.

    Entries are kept in least-recently-used order (an ``OrderedDict``: every
    operation O(1) in C) and checked for age when read; one read past its
    stale window, or the least recently used beyond ``maxsize``, goes. This
    replaced cachetools' ``TLRUCache``, whose expiry heap cost 6 us per insert
    into a full cache, on every upstream call.
    """

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        *,
        stale: float = 0.0,
        timer: Callable[[], float] = time.monotonic,
        observe: Callable[[str], None] = lambda source: None,
        shared: SharedTier | None = None,
    ) -> None:
        self._maxsize = maxsize
        self._ttl = ttl
        self._stale = stale
        self._timer = timer
        self._shared = shared
        # Told each lookup's source as it is decided: hit, miss, join; and stale when served.
        self._observe = observe
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._flights: dict[CacheKey, asyncio.Task[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop, once known

    def __len__(self) -> int:
        """Entries held: at most ``maxsize``, some perhaps dead until read or evicted."""
        return len(self._entries)

    def get(self, key: CacheKey, max_age: float | None = None) -> int | None:
        """The fresh cached count for ``key``, if any (and, with ``max_age``, no older)."""
        entry = self._entry(key)
        if entry is None or not entry.fresh(self._timer(), max_age):
            return None
        return entry.value

    def get_or_start(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[int]],
        ttl: float | None,
        then: Callable[[Counted], T],
        max_age: float | None = None,
    ) -> T | asyncio.Future[T]:
        """``then`` of ``key``'s count: at once if fresh, else a future (shared fetch, or stale).

        A future rather than a coroutine: graphql-core awaits a resolver's
        future as it is, but wraps each coroutine in a task of its own.
        ``then`` shapes the result where it lands, without a second future. A
        fetched count is kept ``ttl`` seconds (the cache's default when None).
        Cancelling the future leaves the shared call running for the others.
        With ``max_age`` (a live poller's refresh), a count older than that is
        not fresh enough, here or in the Redis tier, whatever its TTL.
        """
        fresh = self.get(key, max_age)
        if fresh is not None:
            self._observe("hit")
            return then(Counted(fresh))
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        source = "join"
        if flight is None:
            ttl = self._ttl if ttl is None else ttl
            flight = loop.create_task(self._fly(key, fetch, ttl, max_age))
            self._flights[key] = flight
            source = "miss"
        self._observe(source)
        landed: asyncio.Future[T] = loop.create_future()
        flight.add_done_callback(functools.partial(self._land, key, source, then, landed))
        return landed

    def _land(
        self,
        key: CacheKey,
        source: str,
        then: Callable[[Counted], T],
        landed: asyncio.Future[T],
        flight: asyncio.Task[int],
    ) -> None:
        """Pass the shared call's outcome to one caller: its count, a stale one, or its error."""
        if flight.cancelled():
            landed.cancel()
            return
        # Retrieved even when this caller went away, so asyncio never reports it unretrieved.
        error = flight.exception()
        if landed.done():
            return
        if error is None:
            landed.set_result(then(Counted(flight.result(), source=source)))
            return
        entry = self._entry(key) if isinstance(error, UpstreamFailure) and error.retryable else None
        if entry is None:
            landed.set_exception(error)
            return
        self._observe("stale")
        landed.set_result(then(Counted(entry.value, self._timer() - entry.fetched_at, "stale")))

    def _entry(self, key: CacheKey) -> Entry | None:
        """``key``'s entry while fresh or stale (marked recently used); forgets a dead one."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._timer() - entry.fetched_at >= entry.ttl + self._stale:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _keep(self, key: CacheKey, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)

    @property
    def in_flight(self) -> int:
        """How many distinct upstream calls are under way."""
        return len(self._flights)

    async def _fly(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[int]],
        ttl: float,
        max_age: float | None,
    ) -> int:
        try:
            if self._shared is None or not self._shared.up:
                entry = Entry(await fetch(), self._timer(), ttl)
            else:
                entry = await self._through_shared(self._shared, key, fetch, ttl, max_age)
            if entry.ttl > 0:
                self._keep(key, entry)
            return entry.value
        finally:
            del self._flights[key]

    async def _through_shared(
        self,
        shared: SharedTier,
        key: CacheKey,
        fetch: Callable[[], Awaitable[int]],
        ttl: float,
        max_age: float | None,
    ) -> Entry:
        name = shared_name(*key)
        held = await shared.read(name)
        if held is not None:
            if held.fresh(self._timer(), max_age):
                self._observe("shared")
                return held
            if key not in self._entries:
                # Another replica's count, past its TTL: what to serve if the refresh fails.
                self._keep(key, held)
        return await shared.lead_or_wait(name, fetch, ttl)
