"""Admission towards the upstream: how many calls at once, and how many per client.

- ``ConcurrencyLimiter``: bounded calls in flight, a bounded queue, a bounded wait.
- ``RateLimiter``: per-client token buckets keyed by an HMAC digest, bounded in memory.

Both refuse rather than queue without bound: a refusal is a coded error at once
(``OverloadedError`` is ``UPSTREAM_UNAVAILABLE``, ``RateLimitedError`` is
``RATE_LIMITED`` with a retry-after hint), never a pile-up of waiting tasks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from cachetools import LRUCache

from gateway.errors import OverloadedError, RateLimitedError

_OVERLOADED_MESSAGE: Final = "The gateway is at its upstream concurrency limit; retry shortly"
# Token arithmetic in floats: refills that sum to 0.99… must still pay for 1.
_EPSILON: Final = 1e-9


class ConcurrencyLimiter:
    """At most ``limit`` calls in flight, ``max_waiting`` queued, each queued ``wait_timeout``.

    A caller beyond the queue, or one whose turn doesn't come in time, gets
    ``OverloadedError`` rather than joining a pile-up (``wait_timeout`` may be
    ``math.inf``: wait as long as it takes). Slots pass to waiters in
    arrival order; a waiter cancelled or timed out just as a slot was handed to
    it passes the slot on, so nothing leaks.
    """

    def __init__(self, limit: int, max_waiting: int, wait_timeout: float) -> None:
        if limit < 1 or max_waiting < 0 or wait_timeout < 0:
            raise ValueError("ConcurrencyLimiter needs limit >= 1, max_waiting, wait_timeout >= 0")
        self._limit = limit
        self._max_waiting = max_waiting
        self._wait_timeout = wait_timeout
        self._in_use = 0
        # A waiter's future gets a result when a releasing caller hands it its slot.
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        """Slots held, including ones handed to waiters that haven't resumed yet."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        return len(self._waiters)

    def slot(self) -> _Slot:
        """Hold one slot for the body of ``async with``; raises ``OverloadedError``."""
        return _Slot(self)

    def try_acquire(self) -> bool:
        """Take a free slot now if there is one (then ``release`` it); never waits."""
        # While a slot is free nobody waits: every release hands over to a waiter first.
        if self._in_use < self._limit:
            self._in_use += 1
            return True
        return False

    async def acquire(self, wait_timeout: float | None = None) -> None:
        """Take a slot, queueing for at most ``wait_timeout`` (default the limiter's).

        Raises ``OverloadedError`` when the queue is full or the wait runs out.
        """
        if self.try_acquire():
            return
        if len(self._waiters) >= self._max_waiting:
            raise OverloadedError(_OVERLOADED_MESSAGE)
        wait = self._wait_timeout if wait_timeout is None else wait_timeout
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self._waiters.append(turn)
        # A plain timer rather than asyncio.timeout: under load many calls wait here.
        timer = loop.call_later(wait, _give_up, turn) if wait != math.inf else None
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                # The slot was handed over just as we were cancelled: pass it on.
                self.release()
            elif turn in self._waiters:
                self._waiters.remove(turn)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def release(self) -> None:
        """Give a slot back: to the longest waiter, else to the pool."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():  # a cancelled waiter's future is done
                turn.set_result(None)
                return
        self._in_use -= 1


def _give_up(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_exception(OverloadedError(_OVERLOADED_MESSAGE))


class RateLimiter:
    """Per-client token buckets: ``burst`` calls at once, then ``rate`` per second.

    Keys are HMAC digests of credentials, never credentials. At most
    ``max_clients`` buckets are kept; the least recently used is forgotten
    first, which is safe once it has refilled (after ``burst / rate`` seconds
    idle), so size ``max_clients`` above the clients active in that window.
    ``rate <= 0`` means unlimited: ``take`` never refuses and keeps nothing.
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
        self._rate = rate
        self._burst = burst
        self._clock = clock
        # key -> (tokens, when they were counted)
        self._buckets: LRUCache[bytes, tuple[float, float]] = LRUCache(maxsize=max_clients)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens of ``key``'s bucket, or raise ``RateLimitedError``."""
        if self._rate <= 0:
            return
        if cost > self._burst:
            raise ValueError("RateLimiter cost exceeds burst: it could never be paid")
        now = self._clock()
        tokens, counted = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - counted) * self._rate)
        if tokens < cost - _EPSILON:
            # Stored although unchanged, so a client being refused stays recently used
            # and cannot win a fresh burst by being evicted.
            self._buckets[key] = (tokens, now)
            raise RateLimitedError(
                "Too many upstream calls for these credentials; retry after the hinted delay",
                retry_after=(cost - tokens) / self._rate,
            )
        self._buckets[key] = (tokens - cost, now)


class _Slot:
    """``async with limiter.slot()``: a class rather than a generator, on every upstream call."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        limiter = self._limiter
        if not limiter.try_acquire():  # the usual case takes one without another coroutine
            await limiter.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release()
