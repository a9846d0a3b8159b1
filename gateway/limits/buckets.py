"""Token buckets per key: how many calls a caller (or an address) may make, and how fast.

Keys are HMAC digests of credentials or address keys, never credentials. At
most ``max_keys`` buckets are kept, the least recently used forgotten first,
which is safe once a bucket has refilled, so size it above the keys active
within ``capacity / rate`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

from cachetools import LRUCache

from gateway.errors import RateLimitedError

K = TypeVar("K", bound=Hashable)

# Token arithmetic in floats: refills that sum to 0.99… must still pay for 1.
_EPSILON: Final = 1e-9


class TokenBuckets(Generic[K]):
    """A bucket per key: ``capacity`` tokens at most, refilled at ``rate`` a second.

    How it is divided between callers: each key has its own bucket; no key's
    spending touches another's.
    """

    def __init__(
        self,
        capacity: float,
        rate: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._rate = rate
        self._clock = clock
        # key -> (tokens, when they were counted)
        self._buckets: LRUCache[K, tuple[float, float]] = LRUCache(maxsize=max_keys)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: K, cost: float = 1.0) -> float:
        """Spend ``cost`` of ``key``'s tokens: 0.0 when taken, else the seconds to wait for them."""
        now = self._clock()
        tokens, counted = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + max(0.0, now - counted) * self._rate)
        if tokens < cost - _EPSILON:
            # Stored although unchanged, so a key being refused stays recently used
            # and cannot win a fresh bucket by being evicted.
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self._rate if self._rate > 0 else float("inf")
        self._buckets[key] = (tokens - cost, now)
        return 0.0

    def give_back(self, key: K, cost: float = 1.0) -> None:
        """Return ``cost`` tokens that a call took but did not spend (never past capacity)."""
        held = self._buckets.get(key)
        if held is not None:
            self._buckets[key] = (min(self._capacity, held[0] + cost), held[1])


class RateLimiter:
    """Per-client limits: ``burst`` calls at once, then ``rate`` per second (``rate <= 0``: none).

    How it is divided between callers: a bucket per credential (its HMAC), so
    one caller spending its allowance leaves every other's whole.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate > 0 and burst <= 0:
            raise ValueError("RateLimiter burst must be positive when rate is")
        self._unlimited = rate <= 0
        self._burst = burst
        self._buckets: TokenBuckets[bytes] = TokenBuckets(burst, rate, max_clients, clock)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens of ``key``'s bucket, or raise ``RateLimitedError``."""
        if self._unlimited:
            return
        if cost > self._burst:
            raise ValueError("RateLimiter cost exceeds burst: it could never be paid")
        wait = self._buckets.take(key, cost)
        if wait:
            raise RateLimitedError(
                "Too many upstream calls for these credentials; retry after the hinted delay",
                retry_after=wait,
            )
