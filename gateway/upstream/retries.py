"""Retries that cannot make a bad day worse: a budget shared fairly, full-jitter backoff.

Time, jitter and sleeping are injected, so tests never wait for real. The
gateway's own refusals are never retried (``is_transient``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from gateway.errors import (
    CircuitOpenError,
    GatewayError,
    OverloadedError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.upstream.breaker import CircuitBreaker, Outcome

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]

# The upstream code that means "something went wrong, try again" (1010 is already
# an UpstreamUnavailableError); every other upstream code is an answer, not a fault.
TRANSIENT_UPSTREAM_CODE: Final = 1009

_DEADLINE_MESSAGE: Final = "DeepCall did not answer within the deadline"

# Token arithmetic in floats: 5 deposits of 0.2 must buy a retry even if they sum to 0.99…
_EPSILON: Final = 1e-9


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an upstream fault that may pass: worth a retry and a breaker failure.

    Timeouts, unavailability (refused, reset, 1010) and upstream code 1009 are.
    The gateway's own refusals (``CircuitOpenError``, ``OverloadedError``) are not,
    nor are upstream answers with any other code, including codes we don't know.
    """
    if isinstance(exc, CircuitOpenError | OverloadedError):
        return False
    if isinstance(exc, UpstreamTimeoutError | UpstreamUnavailableError):
        return True
    return isinstance(exc, UpstreamError) and exc.upstream_code == TRANSIENT_UPSTREAM_CODE


class RetryBudget:
    """A token bucket that lets retries add at most ``ratio`` to the upstream's load.

    Every first try deposits ``ratio`` tokens (the balance never exceeds ``cap``)
    and every retry must withdraw one whole token. The bucket starts full, so a
    freshly started gateway can ride out a blip at once; since the balance can
    never exceed ``cap``, over any run ``retries <= ratio * first_tries + cap``:
    against a dead upstream the gateway sends at most about ``1 + ratio`` times
    its clients' call rate. Deposits don't expire, so unlike Finagle's budget
    this one needs no clock: ``cap`` alone bounds what a quiet period can save.
    """

    def __init__(self, ratio: float = 0.2, cap: float = 10.0) -> None:
        if ratio < 0 or cap < 0:
            raise ValueError("RetryBudget ratio and cap must not be negative")
        self._ratio = ratio
        self._cap = cap
        self._balance = cap

    @property
    def balance(self) -> float:
        """The tokens left: how many retries may happen now."""
        return self._balance

    def deposit(self) -> None:
        """Record a first try: earns ``ratio`` of a retry, up to ``cap``."""
        self._balance = min(self._cap, self._balance + self._ratio)

    def try_withdraw(self) -> bool:
        """Take one token for a retry; ``False`` (taking nothing) if there isn't a whole one."""
        if self._balance < 1 - _EPSILON:
            return False
        self._balance -= 1
        return True


class RetryBudgets:
    """The gateway's retry budget, shared fairly: one bucket for all, and one per caller.

    A retry needs a token from its caller's bucket and from the gateway's, and
    every first try deposits ``ratio`` in both. A caller's bucket holds at most
    ``caller_cap`` (default half the gateway's ``cap``), so however its calls
    fail, one caller can take at most that much more than its own first tries
    earned: the rest of the gateway's reserve stays for the transient failures
    of everyone else. The gateway's bucket keeps the whole process within
    ``retries <= ratio * first tries + cap``, however many callers there are.
    Callers are keys (a credential's HMAC). Only buckets below their cap are
    kept (a caller not kept has a full one), at most ``max_callers``, the
    longest kept forgotten first.
    """

    def __init__(
        self,
        ratio: float = 0.2,
        cap: float = 10.0,
        caller_cap: float | None = None,
        max_callers: int = 100_000,
    ) -> None:
        caller_cap = cap / 2 if caller_cap is None else caller_cap
        if caller_cap < 0:
            raise ValueError("RetryBudgets caller_cap must not be negative")
        self._ratio = ratio
        self._caller_cap = caller_cap
        self._max_callers = max_callers
        self.gateway = RetryBudget(ratio, cap)
        """The bucket all callers share."""
        self._short: dict[bytes, float] = {}  # callers whose bucket is below its cap

    def balance(self, caller: bytes) -> float:
        """Retries ``caller`` may make now: the smaller of its own tokens and the gateway's."""
        return min(self._short.get(caller, self._caller_cap), self.gateway.balance)

    def deposit(self, caller: bytes) -> None:
        """Record a first try by ``caller``: earns ``ratio`` of a retry in both buckets."""
        self.gateway.deposit()
        own = self._short.get(caller)
        if own is None:
            return  # full already: the usual case
        own += self._ratio
        if own >= self._caller_cap - _EPSILON:
            del self._short[caller]
        else:
            self._short[caller] = own

    def try_withdraw(self, caller: bytes) -> bool:
        """Take a token from ``caller``'s bucket and the gateway's; ``False`` (taking none) else."""
        short = self._short
        own = short.get(caller, self._caller_cap)
        if own < 1 - _EPSILON or not self.gateway.try_withdraw():
            return False
        short[caller] = own - 1
        if len(short) > self._max_callers:
            del short[next(iter(short))]
        return True


@dataclass(frozen=True)
class RetryPolicy:
    """How often to retry a transient failure, and how long to wait before each retry."""

    max_retries: int = 2
    base_delay: float = 0.05
    max_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy values must not be negative")

    def backoff(self, attempt: int, random: Random) -> float:
        """Full jitter: uniform in ``[0, min(max_delay, base_delay * 2**attempt))``.

        ``attempt`` 0 is the wait before the first retry. The jitter spreads the
        retries of many clients that failed together, so they don't return together.
        """
        # 2.0**1024 overflows; long before that the ceiling is max_delay anyway.
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 1000))
        return random() * ceiling


async def call_with_retries(
    call: Callable[[float], Awaitable[T]],
    *,
    caller: bytes,
    policy: RetryPolicy,
    budget: RetryBudgets,
    breaker: CircuitBreaker,
    deadline: float,
    try_timeout: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    random: Random = random.random,
    bounded: bool = False,
) -> T:
    """``await call(timeout)`` for ``caller``, retrying transient failures within ``deadline``.

    The breaker is asked once, before the first try (``CircuitOpenError``
    raised there means no call at all), and told the outcome of the whole
    call once, at the end: a logical call, not its tries, is what it counts.
    Each try gets ``min(try_timeout, time left)``, which ``call`` applies to
    its own HTTP call; unless ``call`` is ``bounded`` (keeps to that limit as a
    whole, raising a timeout of its own) the same timeout also guards the try
    here, and its expiry becomes ``UpstreamTimeoutError``. A transient failure
    (``is_transient``) is retried after a full-jitter backoff while retries
    remain, ``caller``'s share of the budget has a token, no circuit that
    concerns ``caller`` is open, the call is not a circuit's probe (a probe is
    one try), and the wait leaves time before the deadline; otherwise the last
    error is raised (``UpstreamTimeoutError`` once the deadline itself has
    passed), and the breaker hears of a failure.

    Anything else is raised at once. An error carrying an ``upstream_code``
    (1000, 1014, 1015, 1047, unknown codes) proves the upstream alive and
    answering, so it counts as a success; other errors (a bad response, a
    refusal of ours, a bug) and cancellation are neutral. The budget earns one
    deposit per call.
    """
    give_up_at = clock() + deadline
    permit = breaker.admit(caller)
    outcome = Outcome.NEUTRAL
    try:
        budget.deposit(caller)
        probe = permit.probes_caller or permit.probes_upstream
        attempt = 0
        while True:
            remaining = give_up_at - clock()
            if remaining <= 0:
                if attempt:
                    outcome = Outcome.FAILURE
                raise UpstreamTimeoutError(_DEADLINE_MESSAGE)
            timeout = min(try_timeout, remaining)
            try:
                result = await (call(timeout) if bounded else _guarded(call, timeout))
            except Exception as exc:
                if not is_transient(exc):
                    if isinstance(exc, GatewayError) and exc.upstream_code is not None:
                        outcome = Outcome.SUCCESS
                    raise
                error = exc
            else:
                outcome = Outcome.SUCCESS
                return result

            outcome = Outcome.FAILURE
            if attempt >= policy.max_retries or probe or breaker.is_open(caller):
                raise error
            remaining = give_up_at - clock()
            if remaining <= 0:
                raise UpstreamTimeoutError(_DEADLINE_MESSAGE) from error
            delay = policy.backoff(attempt, random)
            if delay >= remaining or not budget.try_withdraw(caller):
                raise error
            outcome = Outcome.NEUTRAL  # cancelled while waiting: no verdict
            await sleep(delay)
            attempt += 1
    finally:
        breaker.record(permit, outcome)


async def _guarded(call: Callable[[float], Awaitable[T]], seconds: float) -> T:
    # httpx's timeouts bound each phase, not the whole call: this bounds the whole.
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await call(seconds)
    except TimeoutError:
        if scope.expired():
            raise UpstreamTimeoutError("DeepCall did not answer in time") from None
        raise
