"""What one HTTP request may spend upstream, shared by all its operations and fields."""

from __future__ import annotations

import math

from gateway.cache import CacheKey
from gateway.errors import FanoutExceededError
from gateway.limits import ConcurrencyLimiter


class RequestBudget:
    """The request's fan-out budget, its own upstream slots, and what its answer is made of."""

    def __init__(self, fanout: int, concurrency: int) -> None:
        self.fanout = fanout
        self.upstream_calls = 0
        self.cache_hits = 0
        # Never refuses (the fan-out budget bounds the waiters); waits as long as it takes.
        self.slots = ConcurrencyLimiter(concurrency, max_waiting=fanout, wait_timeout=math.inf)
        #: Every count the request's answer is made of, for the replay cache.
        self.served: list[tuple[CacheKey, int]] = []
        self.replayable = True

    def planned_beyond(self, planned: int) -> str | None:
        """Why ``planned`` upstream fields are more than the request may cause; None if not."""
        if planned > self.fanout:
            return f"The request may cause {planned} upstream calls; at most {self.fanout}"
        return None

    def ensure_room(self, calls: int) -> None:
        """Refuse, before any call, work that would need more than the budget left."""
        if self.upstream_calls + calls > self.fanout:
            raise FanoutExceededError(
                f"This needs up to {calls} upstream calls; the request may make "
                f"{self.fanout - self.upstream_calls} more"
            )

    def charge(self) -> None:
        """Count one upstream call of this request, or refuse it past the fan-out budget."""
        if self.upstream_calls >= self.fanout:
            raise FanoutExceededError(
                f"This request reached its budget of {self.fanout} upstream calls"
            )
        self.upstream_calls += 1
