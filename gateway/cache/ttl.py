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
        if query.until is None:
            return self._ttl
        try:
            end = dt.datetime.fromisoformat(query.until).replace(tzinfo=self._zone)
        except ValueError:
            return self._ttl
        settled = end.timestamp() < self._clock() - self._settle
        return self._settled if settled else self._ttl
