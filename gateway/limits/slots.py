"""Slots: how many calls may be in flight at once, shared fairly between callers.

It refuses rather than queue without bound: a refusal is ``OverloadedError`` at
once, never a pile-up of waiting tasks.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from typing import Final

from gateway.errors import OverloadedError

_OVERLOADED_MESSAGE: Final = "The gateway is at its upstream concurrency limit; retry shortly"
#: The caller of limiters that serve one caller only (a request's own slots, the pool).
ANYONE: Final = b""


class ConcurrencyLimiter:
    """At most ``limit`` calls in flight, ``per_caller`` of one caller's; the rest wait, fairly.

    How it is divided between callers (keys such as a credential's HMAC): no
    caller holds more than ``per_caller`` slots (default ``limit``), so one
    caller's calls that hang leave the rest to others. A call that cannot start
    waits in its own caller's queue, at most ``wait_timeout`` seconds
    (``math.inf``: as long as it takes). A freed slot goes to the callers with
    calls waiting in turn (round robin), skipping any at its cap, so a caller
    with many calls waiting delays another's single call by one turn at most;
    within a caller, calls go in arrival order. At most ``max_waiting`` calls
    wait in all: a newcomer past that takes the place of the newest waiter of
    the caller with the most calls waiting, when that caller would still have
    more waiting than the newcomer's own, and is refused otherwise. So one
    caller can fill the queue only while nobody else needs it. Every refusal is
    ``OverloadedError``. A waiter cancelled or timed out just as a slot was
    handed to it passes the slot on, so nothing leaks.
    """

    def __init__(
        self,
        limit: int,
        max_waiting: int,
        wait_timeout: float,
        *,
        per_caller: int | None = None,
    ) -> None:
        per_caller = limit if per_caller is None else per_caller
        if limit < 1 or not 1 <= per_caller <= limit or max_waiting < 0 or wait_timeout < 0:
            raise ValueError(
                "ConcurrencyLimiter needs limit >= 1, 1 <= per_caller <= limit, "
                "max_waiting >= 0 and wait_timeout >= 0"
            )
        self._limit = limit
        self._per_caller = per_caller
        self._max_waiting = max_waiting
        self._wait_timeout = wait_timeout
        self._in_use = 0
        self._held: dict[bytes, int] = {}
        # Each caller's waiters, callers in the order they are next served. A waiter's
        # future gets a result when a releasing caller hands it a slot.
        self._queues: OrderedDict[bytes, deque[asyncio.Future[None]]] = OrderedDict()
        self._waiting = 0

    @property
    def in_use(self) -> int:
        """Slots held, including ones handed to waiters that haven't resumed yet."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        return self._waiting

    def held_by(self, caller: bytes) -> int:
        """Slots ``caller`` holds."""
        return self._held.get(caller, 0)

    def slot(self, caller: bytes = ANYONE) -> _Slot:
        """Hold a slot for ``caller`` over an ``async with`` body; raises ``OverloadedError``."""
        return _Slot(self, caller)

    def try_acquire(self, caller: bytes = ANYONE) -> bool:
        """Take a free slot now if ``caller`` may have one (then ``release`` it); never waits."""
        # While a slot is free, nobody who could use it waits: each release serves waiters first.
        held = self._held.get(caller, 0)
        if self._in_use < self._limit and held < self._per_caller and caller not in self._queues:
            self._in_use += 1
            self._held[caller] = held + 1
            return True
        return False

    async def acquire(self, wait_timeout: float | None = None, caller: bytes = ANYONE) -> None:
        """Take a slot for ``caller``, queueing at most ``wait_timeout`` (default the limiter's).

        Raises ``OverloadedError`` when the queue is full or the wait runs out.
        """
        if self.try_acquire(caller):
            return
        queue = self._queues.get(caller)
        if self._waiting >= self._max_waiting and not self._displace_for(
            len(queue) if queue else 0
        ):
            raise OverloadedError(_OVERLOADED_MESSAGE)
        if queue is None:
            queue = self._queues[caller] = deque()
        wait = self._wait_timeout if wait_timeout is None else wait_timeout
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        queue.append(turn)
        self._waiting += 1
        # A plain timer rather than asyncio.timeout: under load many calls wait here.
        timer = loop.call_later(wait, _give_up, turn) if wait != math.inf else None
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                # The slot was handed over just as we were cancelled: pass it on.
                self.release(caller)
            else:
                self._forget(caller, turn)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def release(self, caller: bytes = ANYONE) -> None:
        """Give ``caller``'s slot back, then hand free slots to waiters in turn."""
        held = self._held[caller] - 1
        if held:
            self._held[caller] = held
        else:
            del self._held[caller]
        self._in_use -= 1
        if self._queues:
            self._serve()

    def _serve(self) -> None:
        queues, held = self._queues, self._held
        while self._in_use < self._limit:
            caller = next((key for key in queues if held.get(key, 0) < self._per_caller), None)
            if caller is None:
                return  # everyone waiting is at their cap
            queue = queues[caller]
            turn = queue.popleft()
            self._waiting -= 1
            if queue:
                queues.move_to_end(caller)  # the next turn is someone else's
            else:
                del queues[caller]
            if turn.done():  # timed out or cancelled, not yet resumed to say so
                continue
            self._in_use += 1
            held[caller] = held.get(caller, 0) + 1
            turn.set_result(None)

    def _displace_for(self, own: int) -> bool:
        """Refuse the newest waiter of the longest queue, if longer than ``own`` + 1 would be."""
        longest = max(self._queues, key=lambda key: len(self._queues[key]), default=None)
        if longest is None or len(self._queues[longest]) <= own + 1:
            return False
        turn = self._queues[longest].pop()
        self._waiting -= 1
        if not self._queues[longest]:
            del self._queues[longest]
        _give_up(turn)
        return True

    def _forget(self, caller: bytes, turn: asyncio.Future[None]) -> None:
        queue = self._queues.get(caller)
        if queue is None or turn not in queue:
            return  # already taken off the queue (displaced, or served as it gave up)
        queue.remove(turn)
        self._waiting -= 1
        if not queue:
            del self._queues[caller]


def _give_up(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_exception(OverloadedError(_OVERLOADED_MESSAGE))


class _Slot:
    """``async with limiter.slot()``: a class rather than a generator, on every upstream call."""

    __slots__ = ("_caller", "_limiter")

    def __init__(self, limiter: ConcurrencyLimiter, caller: bytes) -> None:
        self._limiter = limiter
        self._caller = caller

    async def __aenter__(self) -> None:
        limiter = self._limiter
        if not limiter.try_acquire(self._caller):  # usually one is free: no other coroutine
            await limiter.acquire(caller=self._caller)

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter.release(self._caller)
