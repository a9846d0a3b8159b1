"""Unit tests for the upstream slots: bounded, queued, fair between callers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from gateway.errors import OverloadedError, UpstreamUnavailableError
from gateway.limits import ConcurrencyLimiter


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop (never sleeping) until ``condition()`` holds."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# ConcurrencyLimiter


class Holder:
    """A task that holds a limiter slot (as ``caller``) until told to let go."""

    def __init__(self, limiter: ConcurrencyLimiter, caller: bytes = b"") -> None:
        self.limiter = limiter
        self.caller = caller
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.limiter.slot(self.caller):
            self.entered.set()
            await self.release.wait()


A, B, C = b"tenant-a", b"tenant-b", b"tenant-c"


async def test_the_limiter_lets_limit_callers_in_and_queues_the_rest() -> None:
    """With limit 2 and five callers, two hold slots, three wait, and all finish in turn."""
    limiter = ConcurrencyLimiter(limit=2, max_waiting=10, wait_timeout=60.0)
    holders = [Holder(limiter) for _ in range(5)]
    await until(lambda: limiter.waiting == 3)

    assert limiter.in_use == 2
    assert [h.entered.is_set() for h in holders] == [True, True, False, False, False]

    holders[0].release.set()
    await holders[2].entered.wait()
    assert limiter.in_use == 2
    assert limiter.waiting == 2
    assert not holders[3].entered.is_set()

    for holder in holders:
        holder.release.set()
    await asyncio.gather(*(h.task for h in holders))
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_an_unbounded_wait_sets_no_timer_and_still_gets_its_turn() -> None:
    """wait_timeout=inf: the waiter schedules nothing on the loop and gets the freed slot."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=1, wait_timeout=math.inf)
    first = Holder(limiter)
    await first.entered.wait()
    loop = asyncio.get_running_loop()
    timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
    second = Holder(limiter)
    await until(lambda: limiter.waiting == 1)
    assert len(loop._scheduled) == timers_before  # type: ignore[attr-defined]

    first.release.set()
    await second.entered.wait()
    assert (limiter.in_use, limiter.waiting) == (1, 0)
    second.release.set()
    await asyncio.gather(first.task, second.task)
    assert limiter.in_use == 0


async def test_waiters_get_slots_in_arrival_order() -> None:
    """A released slot goes to the longest waiter."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=10, wait_timeout=60.0)
    first = Holder(limiter)
    await first.entered.wait()
    second = Holder(limiter)
    await until(lambda: limiter.waiting == 1)
    third = Holder(limiter)
    await until(lambda: limiter.waiting == 2)

    first.release.set()
    await second.entered.wait()

    assert not third.entered.is_set()
    second.release.set()
    third.release.set()
    await asyncio.gather(first.task, second.task, third.task)


async def test_a_full_queue_refuses_at_once() -> None:
    """With max_waiting callers already waiting, the next gets OverloadedError without waiting."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=1, wait_timeout=60.0)
    holder = Holder(limiter)
    await holder.entered.wait()
    waiter = Holder(limiter)
    await until(lambda: limiter.waiting == 1)

    with pytest.raises(OverloadedError) as raised:
        async with limiter.slot():
            pytest.fail("the slot must not be granted")

    assert raised.value.message == "The gateway is at its upstream concurrency limit; retry shortly"
    assert isinstance(raised.value, UpstreamUnavailableError)
    assert (limiter.in_use, limiter.waiting) == (1, 1)
    holder.release.set()
    waiter.release.set()
    await asyncio.gather(holder.task, waiter.task)
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_no_queue_means_refuse_when_full() -> None:
    """max_waiting=0 refuses every caller beyond the limit."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=0, wait_timeout=60.0)

    async with limiter.slot():
        with pytest.raises(OverloadedError):
            async with limiter.slot():
                pytest.fail("the slot must not be granted")
    assert limiter.in_use == 0


async def test_a_wait_longer_than_wait_timeout_is_refused() -> None:
    """A waiter whose turn doesn't come within wait_timeout gets OverloadedError and leaves."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=5, wait_timeout=0.01)  # 10 ms real time
    holder = Holder(limiter)
    await holder.entered.wait()

    with pytest.raises(OverloadedError):
        async with limiter.slot():
            pytest.fail("the slot must not be granted")

    assert (limiter.in_use, limiter.waiting) == (1, 0)
    holder.release.set()
    await holder.task
    assert limiter.in_use == 0


async def test_a_cancelled_waiter_leaks_nothing() -> None:
    """Cancelling a queued caller removes it from the queue and the slot goes to the next."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=5, wait_timeout=60.0)
    holder = Holder(limiter)
    await holder.entered.wait()
    cancelled = Holder(limiter)
    await until(lambda: limiter.waiting == 1)
    after = Holder(limiter)
    await until(lambda: limiter.waiting == 2)

    cancelled.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled.task
    assert (limiter.in_use, limiter.waiting) == (1, 1)

    holder.release.set()
    await after.entered.wait()
    after.release.set()
    await asyncio.gather(holder.task, after.task)
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_a_waiter_cancelled_as_its_slot_arrives_passes_it_on() -> None:
    """A slot handed to a waiter that is cancelled before it resumes is released, not lost."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=5, wait_timeout=60.0)
    waiter: Holder | None = None
    async with limiter.slot():
        waiter = Holder(limiter)
        await until(lambda: limiter.waiting == 1)
    # The slot was handed to the waiter on exit; it is cancelled before it can run.
    waiter.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter.task

    assert not waiter.entered.is_set()
    assert (limiter.in_use, limiter.waiting) == (0, 0)
    async with limiter.slot():
        assert limiter.in_use == 1


async def test_a_body_that_raises_releases_its_slot() -> None:
    """An exception inside the slot frees it."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=0, wait_timeout=1.0)

    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("boom")

    assert limiter.in_use == 0


# ConcurrencyLimiter: fair between callers


async def test_no_caller_holds_more_than_its_cap() -> None:
    """per_caller 2 of limit 4: A's third call waits while B still gets a slot at once."""
    limiter = ConcurrencyLimiter(limit=4, max_waiting=10, wait_timeout=60.0, per_caller=2)
    a_calls = [Holder(limiter, A) for _ in range(3)]
    await until(lambda: limiter.waiting == 1)

    b_call = Holder(limiter, B)
    await b_call.entered.wait()

    assert [h.entered.is_set() for h in a_calls] == [True, True, False]
    assert (limiter.held_by(A), limiter.held_by(B), limiter.in_use) == (2, 1, 3)
    a_calls[0].release.set()
    await a_calls[2].entered.wait()
    for holder in [*a_calls, b_call]:
        holder.release.set()
    await asyncio.gather(*(h.task for h in [*a_calls, b_call]))
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_freed_slots_go_round_the_callers_queues() -> None:
    """A queues 5 calls, then B and C one each: slots go A, B, C, A, A...; B waited one turn."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=100, wait_timeout=60.0)
    order: list[bytes] = []

    async def one_call(caller: bytes) -> None:
        async with limiter.slot(caller):
            order.append(caller)
            await asyncio.sleep(0)  # hold the slot across a turn of the loop

    first = Holder(limiter, A)
    await first.entered.wait()
    calls = [asyncio.create_task(one_call(A)) for _ in range(5)]
    await until(lambda: limiter.waiting == 5)
    calls += [asyncio.create_task(one_call(B)), asyncio.create_task(one_call(C))]
    await until(lambda: limiter.waiting == 7)

    first.release.set()
    await asyncio.gather(first.task, *calls)

    assert order == [A, B, C, A, A, A, A]
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_a_full_queue_makes_room_by_refusing_the_longest_queues_newest() -> None:
    """The queue holds 3, all A's: B's call takes the place of A's newest, which is refused."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=3, wait_timeout=60.0)
    holder = Holder(limiter, A)
    await holder.entered.wait()
    a_waiting = [Holder(limiter, A) for _ in range(3)]
    await until(lambda: limiter.waiting == 3)

    b_waiting = Holder(limiter, B)
    with pytest.raises(OverloadedError):
        await a_waiting[2].task

    assert limiter.waiting == 3
    assert not b_waiting.task.done()
    holder.release.set()
    await a_waiting[0].entered.wait()  # A's queue was first in the round
    a_waiting[0].release.set()
    await b_waiting.entered.wait()  # then B's, before A's second
    assert not a_waiting[1].entered.is_set()
    for h in [b_waiting, a_waiting[1]]:
        h.release.set()
    await asyncio.gather(holder.task, b_waiting.task, *(h.task for h in a_waiting[:2]))
    assert (limiter.in_use, limiter.waiting) == (0, 0)


async def test_a_full_queue_refuses_the_newcomer_whose_own_queue_is_as_long() -> None:
    """Queue of 2: A and B one each; B's second is refused (its queue would be as long as A's)."""
    limiter = ConcurrencyLimiter(limit=1, max_waiting=2, wait_timeout=60.0)
    holder = Holder(limiter, C)
    await holder.entered.wait()
    a_waiting, b_waiting = Holder(limiter, A), Holder(limiter, B)
    await until(lambda: limiter.waiting == 2)

    with pytest.raises(OverloadedError):
        await limiter.acquire(caller=B)

    assert not a_waiting.task.done()
    assert not b_waiting.task.done()
    for h in (holder, a_waiting, b_waiting):
        h.release.set()
    await asyncio.gather(holder.task, a_waiting.task, b_waiting.task)


async def test_a_caller_at_its_cap_does_not_block_the_queue_behind_it() -> None:
    """A at its cap with calls waiting: a slot B frees goes to C's waiter, not to A's."""
    limiter = ConcurrencyLimiter(limit=3, max_waiting=10, wait_timeout=60.0, per_caller=2)
    a_holding = [Holder(limiter, A) for _ in range(2)]
    b_holding = Holder(limiter, B)
    await until(lambda: limiter.in_use == 3)
    a_waiting = Holder(limiter, A)
    c_waiting = Holder(limiter, C)
    await until(lambda: limiter.waiting == 2)

    b_holding.release.set()
    await c_waiting.entered.wait()

    assert not a_waiting.entered.is_set()
    for h in [*a_holding, a_waiting, c_waiting]:
        h.release.set()
    await asyncio.gather(b_holding.task, *(h.task for h in [*a_holding, a_waiting, c_waiting]))
    assert (limiter.in_use, limiter.waiting) == (0, 0)


def test_the_limiter_refuses_a_cap_above_its_limit() -> None:
    """per_caller must lie between 1 and limit."""
    with pytest.raises(ValueError, match="per_caller"):
        ConcurrencyLimiter(limit=2, max_waiting=1, wait_timeout=1.0, per_caller=3)
