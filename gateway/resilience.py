"""Asyncio primitives that keep the upstream call path from making a bad day worse.

Each is small and pure: time, jitter and sleeping are injected (``clock``,
``random``, ``sleep``), so tests are deterministic and never wait for real.

- ``RetryBudget``: retries may add at most ``ratio`` of the first tries (Finagle's budget).
- ``RetryPolicy``: how many retries, and full-jitter exponential backoff between them.
- ``CircuitBreaker``: stop calling an upstream that keeps failing; probe it once in a while.
- ``call_with_retries``: the one place that composes the budget, the policy and the breaker.

Refusals of our own are distinguishable subclasses of ``UpstreamUnavailableError``
(``CircuitOpenError``, ``OverloadedError`` from ``gateway.throttle``): clients see
``UPSTREAM_UNAVAILABLE``, but ``is_transient`` says no, so the gateway never
retries its own refusal.
"""

from __future__ import annotations

import asyncio
import logging
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

logger = logging.getLogger("gateway.resilience")

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

# The upstream code that means "something went wrong, try again" (1010 is already
# an UpstreamUnavailableError); every other upstream code is an answer, not a fault.
TRANSIENT_UPSTREAM_CODE: Final = 1009

_OPEN_MESSAGE: Final = "DeepCall is failing; the gateway is not calling it for a while"
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


class CircuitBreaker:
    """Stops calling an upstream after ``threshold`` consecutive transient failures.

    Closed: calls pass; ``record_failure`` counts consecutive failures and
    ``record_success`` resets the count; at ``threshold`` the breaker opens.
    Open: ``before_call`` raises ``CircuitOpenError`` until ``cooldown`` seconds
    have passed; then the next ``before_call`` turns it half open and lets that
    one call through as the probe, while every other call still fails fast.
    The probe's success closes the breaker; its failure opens it for another
    cooldown. Outcomes reported while open (calls that started before it
    opened) change nothing: the cooldown runs its course.

    The owner of a call that ends neither in success nor in a transient failure
    (cancelled, or a fault that says nothing about the upstream's health) calls
    ``record_neutral``: the consecutive count is left as it is and, if that call
    was the probe, the half-open slot is freed so that the next call probes.
    """

    def __init__(
        self, threshold: int = 5, cooldown: float = 10.0, clock: Clock = time.monotonic
    ) -> None:
        if threshold < 1 or cooldown < 0:
            raise ValueError("CircuitBreaker needs threshold >= 1 and cooldown >= 0")
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._state: str = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.opened_total = 0
        """How many times the breaker has opened (for metrics)."""

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``; open stays open until a call asks."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Transient failures since the last success (while closed)."""
        return self._failures

    def before_call(self) -> None:
        """Let a call through, or raise ``CircuitOpenError`` without making it."""
        if self._state == CLOSED:
            return
        if self._state == OPEN:
            if self._clock() - self._opened_at < self._cooldown:
                raise CircuitOpenError(_OPEN_MESSAGE)
            self._state = HALF_OPEN
        if self._probing:
            raise CircuitOpenError(_OPEN_MESSAGE)
        self._probing = True

    def record_success(self) -> None:
        """The upstream answered: reset the count, and close if this was the probe."""
        if self._state == OPEN:
            return
        if self._state == HALF_OPEN:
            logger.info("circuit closed: DeepCall answered the probe")
        self._state = CLOSED
        self._failures = 0
        self._probing = False

    def record_failure(self) -> None:
        """A transient failure: count it, and open at ``threshold`` or if the probe failed."""
        if self._state == OPEN:
            return
        self._failures += 1
        if self._state == HALF_OPEN or self._failures >= self._threshold:
            self._open()

    def record_neutral(self) -> None:
        """Neither success nor failure (cancelled, or not the upstream's fault): free the probe."""
        self._probing = False

    def _open(self) -> None:
        logger.warning("circuit opened after %d consecutive failures", self._failures)
        self._state = OPEN
        self._opened_at = self._clock()
        self._probing = False
        self.opened_total += 1


async def call_with_retries(
    call: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    budget: RetryBudget,
    breaker: CircuitBreaker,
    deadline: float,
    try_timeout: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    random: Random = random.random,
    bounded: bool = False,
) -> T:
    """``await call(timeout)``, retrying transient failures within ``deadline`` seconds.

    Each try asks the breaker first and gets ``min(try_timeout, time left)``,
    which ``call`` applies to its own HTTP call; unless ``call`` is
    ``bounded`` (keeps to that limit as a whole, raising a timeout of its own)
    the same timeout also guards the try here, and its expiry becomes
    ``UpstreamTimeoutError``. A transient
    failure (``is_transient``) counts against the breaker and is retried after
    a full-jitter backoff while retries remain, the budget has a token, the
    breaker is not open, and the wait leaves time before the deadline;
    otherwise the last error is raised, or ``UpstreamTimeoutError`` once the
    deadline itself has passed.

    Anything else is raised at once. An error carrying an ``upstream_code``
    (1000, 1014, 1015, 1047, unknown codes) proves the upstream alive and
    answering, so it counts as a breaker success; other errors (a bad response,
    a refusal of ours, a bug) and cancellation are neutral: they count neither
    way but free the breaker's probe slot. The budget earns one deposit per call.
    """
    give_up_at = clock() + deadline
    budget.deposit()
    attempt = 0
    while True:
        remaining = give_up_at - clock()
        if remaining <= 0:
            raise UpstreamTimeoutError(_DEADLINE_MESSAGE)
        breaker.before_call()
        timeout = min(try_timeout, remaining)
        try:
            result = await (call(timeout) if bounded else _guarded(call, timeout))
        except BaseException as exc:
            if not is_transient(exc):
                if isinstance(exc, GatewayError) and exc.upstream_code is not None:
                    breaker.record_success()
                else:
                    breaker.record_neutral()
                raise
            breaker.record_failure()
            error = exc
        else:
            breaker.record_success()
            return result

        if attempt >= policy.max_retries or breaker.state == OPEN:
            raise error
        remaining = give_up_at - clock()
        if remaining <= 0:
            raise UpstreamTimeoutError(_DEADLINE_MESSAGE) from error
        delay = policy.backoff(attempt, random)
        if delay >= remaining or not budget.try_withdraw():
            raise error
        await sleep(delay)
        attempt += 1


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
