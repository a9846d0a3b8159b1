"""How long a count is cached: briefly while its window may still change, long once settled."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from gateway.model import CountQuery


class TtlPolicy:
    """The TTL of each question's count, from the end of its window.

    A window whose end lies further back than ``settle`` seconds no longer
    changes in practice and is kept ``settled`` seconds; any other, ``ttl``.
    """

    def __init__(
        self,
        ttl: float,
        *,
        settle: float,
        settled: float,
        zone: ZoneInfo,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl
        self._settle = settle
        self._settled = settled
        self._zone = zone
        self._clock = clock

    def ttl_for(self, query: CountQuery) -> float:
        """Seconds to keep ``query``'s count."""
        return self._settled if self.settled(query) else self._ttl

    def settled(self, query: CountQuery) -> bool:
        """Whether ``query``'s window ended more than ``settle`` seconds ago: it won't change."""
        if query.until is None:
            return False
        try:
            end = dt.datetime.fromisoformat(query.until).replace(tzinfo=self._zone)
        except ValueError:
            return False
        return end.timestamp() < self._clock() - self._settle
