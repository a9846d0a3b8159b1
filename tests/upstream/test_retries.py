"""Unit tests for the retry budgets and policy, and call_with_retries with the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from support.clock import FakeClock

from gateway.errors import (
    BadUserInputError,
    CircuitOpenError,
    GatewayError,
    OverloadedError,
    RateLimitedError,
    UpstreamBadResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    from_upstream_code,
)
from gateway.upstream.breaker import CLOSED, OPEN, CircuitBreaker, Outcome
from gateway.upstream.retries import (
    RetryBudget,
    RetryBudgets,
    RetryPolicy,
    call_with_retries,
    is_transient,
)

A, B = b"tenant-a", b"tenant-b"


class FakeSleep:
    """An ``asyncio.sleep`` stand-in that advances the fake clock and records each delay."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


class Hang:
    """A scripted outcome: the call uses its whole timeout, then times out as the client would."""


HANG = Hang()
Scripted = int | BaseException | Hang


class FakeCall:
    """An upstream call that plays a script of outcomes and records the timeouts it was given."""

    def __init__(self, clock: FakeClock, script: list[Scripted], took: float = 0.0) -> None:
        self.clock = clock
        self.script = list(script)
        self.took = took
        self.timeouts: list[float] = []

    @property
    def calls(self) -> int:
        """How many times the call was made."""
        return len(self.timeouts)

    async def __call__(self, seconds: float) -> int:
        self.timeouts.append(seconds)
        # The last outcome repeats forever.
        outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(outcome, Hang):
            self.clock.advance(seconds)
            raise UpstreamTimeoutError("DeepCall did not answer in time")
        self.clock.advance(self.took)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Harness:
    """One fake clock and sleep, and the pieces call_with_retries composes, with test defaults."""

    def __init__(self, *, min_calls: int = 10**9, cooldown: float = 10.0) -> None:
        self.clock = FakeClock()
        self.sleep = FakeSleep(self.clock)
        self.policy = RetryPolicy()
        self.budget = RetryBudgets()
        self.breaker = CircuitBreaker(min_calls=min_calls, cooldown=cooldown, clock=self.clock)

    async def run(
        self,
        call: Callable[[float], Awaitable[int]],
        *,
        caller: bytes = A,
        deadline: float = 30.0,
        try_timeout: float = 5.0,
        random: Callable[[], float] = lambda: 0.5,
    ) -> int:
        """call_with_retries with this harness's pieces."""
        return await call_with_retries(
            call,
            caller=caller,
            policy=self.policy,
            budget=self.budget,
            breaker=self.breaker,
            deadline=deadline,
            try_timeout=try_timeout,
            clock=self.clock,
            sleep=self.sleep,
            random=random,
        )


def transient_errors() -> list[GatewayError]:
    """One of each kind of failure the gateway retries."""
    return [
        UpstreamTimeoutError("DeepCall did not answer in time"),
        UpstreamUnavailableError("DeepCall could not be reached"),
        from_upstream_code(1010),
        from_upstream_code(1009),
    ]


TRANSIENT_IDS = ["timeout", "unreachable", "1010", "1009"]


def permanent_errors() -> list[GatewayError]:
    """One of each kind of failure the gateway raises at once."""
    return [
        from_upstream_code(1000),
        from_upstream_code(1047),
        from_upstream_code(1014),
        from_upstream_code(1015),
        from_upstream_code(4242),
        UpstreamBadResponseError("DeepCall's answer was not JSON"),
        BadUserInputError("bad input"),
        CircuitOpenError("open"),
        OverloadedError("overloaded"),
    ]


PERMANENT_IDS = ["1000", "1047", "1014", "1015", "unknown", "bad-response", "ours", "open", "busy"]


# RetryPolicy


def test_backoff_is_the_random_fraction_of_the_exponential_ceiling() -> None:
    """Full jitter: backoff(n) is random() times base_delay * 2**n."""
    policy = RetryPolicy(base_delay=0.05, max_delay=1.0)

    assert policy.backoff(0, lambda: 0.5) == pytest.approx(0.025)
    assert policy.backoff(1, lambda: 0.5) == pytest.approx(0.05)
    assert policy.backoff(2, lambda: 0.25) == pytest.approx(0.05)
    assert policy.backoff(3, lambda: 0.0) == 0.0


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 10, 100, 10_000])
def test_backoff_stays_within_zero_and_the_capped_ceiling(attempt: int) -> None:
    """For any random() in [0, 1) the delay lies in [0, min(max_delay, base * 2**attempt))."""
    policy = RetryPolicy(base_delay=0.05, max_delay=1.0)
    ceiling = min(1.0, 0.05 * 2.0 ** min(attempt, 100))

    assert policy.backoff(attempt, lambda: 0.0) == 0.0
    assert 0.0 <= policy.backoff(attempt, lambda: 0.999999) < ceiling
    assert policy.backoff(attempt, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)


def test_backoff_is_capped_at_max_delay() -> None:
    """Past the point where base * 2**n exceeds max_delay, the ceiling is max_delay."""
    policy = RetryPolicy(base_delay=0.05, max_delay=1.0)

    assert policy.backoff(5, lambda: 0.5) == pytest.approx(0.5)
    assert policy.backoff(50, lambda: 0.5) == pytest.approx(0.5)


def test_retry_policy_rejects_negative_values() -> None:
    """A negative retry count or delay is a programming error caught at construction."""
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-0.1)


# RetryBudget


def test_the_budget_starts_full_and_allows_cap_retries() -> None:
    """A fresh budget holds cap tokens: cap retries pass, the next is refused."""
    budget = RetryBudget(ratio=0.2, cap=3.0)

    assert [budget.try_withdraw() for _ in range(4)] == [True, True, True, False]
    assert budget.balance == pytest.approx(0.0)


def test_five_first_tries_at_ratio_one_fifth_buy_one_retry() -> None:
    """Each first try deposits ratio tokens; a retry needs one whole token."""
    budget = RetryBudget(ratio=0.2, cap=10.0)
    while budget.try_withdraw():
        pass

    for _ in range(4):
        budget.deposit()
    assert budget.try_withdraw() is False
    budget.deposit()
    assert budget.try_withdraw() is True
    assert budget.try_withdraw() is False


def test_deposits_never_exceed_the_cap() -> None:
    """However many first tries, the balance stops at cap."""
    budget = RetryBudget(ratio=0.5, cap=2.0)

    for _ in range(100):
        budget.deposit()

    assert budget.balance == 2.0
    assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]


def test_a_refused_withdrawal_takes_nothing() -> None:
    """try_withdraw without a whole token leaves the balance as it was."""
    budget = RetryBudget(ratio=0.2, cap=1.0)
    budget.try_withdraw()
    budget.deposit()
    budget.deposit()

    assert budget.try_withdraw() is False
    assert budget.balance == pytest.approx(0.4)


# RetryBudgets: the budget shared fairly


def test_a_caller_may_take_at_most_half_the_gateways_reserve_beyond_its_earnings() -> None:
    """A caller failing without end withdraws its own 5 tokens; the other 5 stay for B."""
    budgets = RetryBudgets(ratio=0.2, cap=10.0)

    taken = sum(budgets.try_withdraw(A) for _ in range(100))

    assert taken == 5
    assert budgets.gateway.balance == pytest.approx(5.0)
    assert [budgets.try_withdraw(B) for _ in range(6)] == [True] * 5 + [False]


def test_a_caller_keeps_retrying_at_the_rate_its_own_first_tries_earn() -> None:
    """After its reserve, 100 more first tries by A buy A 20 retries, and leave B's share whole."""
    budgets = RetryBudgets(ratio=0.2, cap=10.0)
    while budgets.try_withdraw(A):
        pass

    retries = 0
    for _ in range(100):
        budgets.deposit(A)
        retries += budgets.try_withdraw(A)

    assert retries == 20
    assert budgets.balance(B) == pytest.approx(5.0)


def test_both_buckets_must_hold_a_token_and_a_refusal_takes_from_neither() -> None:
    """With the gateway's bucket empty a caller's full bucket buys nothing, and keeps its tokens."""
    budgets = RetryBudgets(ratio=0.2, cap=2.0, caller_cap=2.0)
    assert budgets.try_withdraw(A)
    assert budgets.try_withdraw(B)

    assert budgets.try_withdraw(A) is False
    assert budgets.balance(A) == 0.0  # the gateway's is empty
    budgets.deposit(B)
    budgets.deposit(B)
    budgets.deposit(B)
    budgets.deposit(B)
    budgets.deposit(B)
    assert budgets.try_withdraw(A) is True  # A still had its own token; B's deposits paid


def test_the_gateways_bound_holds_however_many_callers_fail() -> None:
    """1,000 callers making one failing call each: retries <= 0.2 * calls + cap, not per caller."""
    budgets = RetryBudgets(ratio=0.2, cap=10.0)
    retries = 0
    callers = [f"caller-{n}".encode() for n in range(1000)]
    for caller in callers:
        budgets.deposit(caller)
        while budgets.try_withdraw(caller):
            retries += 1

    assert retries <= 0.2 * 1000 + 10


async def test_a_dead_upstream_sees_at_most_ratio_more_calls_than_the_clients_make() -> None:
    """Over 1000 calls to an always-failing upstream, attempts <= 1.2 * 1000 + cap."""
    harness = Harness()
    call = FakeCall(harness.clock, [from_upstream_code(1009)])

    for _ in range(1000):
        with pytest.raises(GatewayError):
            await harness.run(call)

    assert call.calls <= 1.2 * 1000 + 10
    # The budget is what stops retrying: without it there would be 3000 attempts.
    assert call.calls >= 1.2 * 1000 - 1


# call_with_retries: what is retried


@pytest.mark.parametrize("error", transient_errors(), ids=TRANSIENT_IDS)
async def test_a_transient_failure_is_retried(error: GatewayError) -> None:
    """Timeouts, unavailability, 1010 and 1009 are tried again, and the retry's answer returned."""
    harness = Harness()
    call = FakeCall(harness.clock, [error, 7])

    assert await harness.run(call) == 7
    assert call.calls == 2
    assert len(harness.sleep.delays) == 1


@pytest.mark.parametrize("error", permanent_errors(), ids=PERMANENT_IDS)
async def test_a_permanent_failure_is_raised_at_once(error: GatewayError) -> None:
    """Input, credential, permission, unknown-code, bad-response and our own refusals: no retry."""
    harness = Harness()
    call = FakeCall(harness.clock, [error, 7])

    with pytest.raises(type(error)) as raised:
        await harness.run(call)

    assert raised.value is error
    assert call.calls == 1
    assert harness.sleep.delays == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [(e, True) for e in transient_errors()]
    + [(e, False) for e in permanent_errors()]
    + [(RateLimitedError("slow down", retry_after=1), False), (ValueError("bug"), False)],
    ids=[*TRANSIENT_IDS, *PERMANENT_IDS, "rate-limited", "bug"],
)
def test_is_transient_classifies_each_kind(error: Exception, expected: bool) -> None:
    """is_transient is true exactly for timeouts, unavailability and 1009 from the upstream."""
    assert is_transient(error) is expected


async def test_at_most_two_retries_then_the_last_error() -> None:
    """With the default policy an always-failing call is made three times; the last error wins."""
    harness = Harness()
    errors = [from_upstream_code(1009), from_upstream_code(1010), from_upstream_code(1009)]
    call = FakeCall(harness.clock, [*errors, 7])

    with pytest.raises(GatewayError) as raised:
        await harness.run(call)

    assert raised.value is errors[2]
    assert call.calls == 3
    assert len(harness.sleep.delays) == 2


async def test_retries_wait_the_policys_backoff() -> None:
    """The waits before retries 1 and 2 are the policy's backoff for attempts 0 and 1."""
    harness = Harness()
    call = FakeCall(harness.clock, [from_upstream_code(1009), from_upstream_code(1009), 7])

    assert await harness.run(call, random=lambda: 0.5) == 7
    assert harness.sleep.delays == pytest.approx([0.025, 0.05])


async def test_max_retries_zero_tries_once() -> None:
    """A policy with max_retries=0 never retries."""
    harness = Harness()
    harness.policy = RetryPolicy(max_retries=0)
    call = FakeCall(harness.clock, [from_upstream_code(1009), 7])

    with pytest.raises(GatewayError):
        await harness.run(call)
    assert call.calls == 1


async def test_an_empty_budget_stops_retrying() -> None:
    """When the budget has no whole token the first failure is final."""
    harness = Harness()
    harness.budget = RetryBudgets(ratio=0.0, cap=0.0)
    error = from_upstream_code(1009)
    call = FakeCall(harness.clock, [error, 7])

    with pytest.raises(GatewayError) as raised:
        await harness.run(call)
    assert raised.value is error
    assert call.calls == 1


async def test_each_call_deposits_once_and_each_retry_withdraws_once() -> None:
    """A call with two retries moves the caller's and the gateway's balances by +ratio, then -2."""
    harness = Harness()
    harness.budget = RetryBudgets(ratio=0.2, cap=10.0, caller_cap=10.0)
    while harness.budget.try_withdraw(A):
        pass
    for _ in range(15):
        harness.budget.deposit(A)  # 3.0 tokens in each bucket
    call = FakeCall(harness.clock, [from_upstream_code(1009), from_upstream_code(1009), 7])

    assert await harness.run(call) == 7
    assert harness.budget.balance(A) == pytest.approx(3.0 + 0.2 - 2)
    assert harness.budget.gateway.balance == pytest.approx(3.0 + 0.2 - 2)


# call_with_retries: time


async def test_per_try_timeouts_shrink_to_the_time_left_and_the_deadline_holds() -> None:
    """Each try gets min(try_timeout, time left); no fake time passes beyond the deadline."""
    harness = Harness()
    start = harness.clock.now
    call = FakeCall(harness.clock, [HANG])

    with pytest.raises(UpstreamTimeoutError) as raised:
        await harness.run(call, deadline=1.0, try_timeout=0.6, random=lambda: 1.0)

    assert call.timeouts == pytest.approx([0.6, 0.35])
    assert harness.sleep.delays == pytest.approx([0.05])
    assert harness.clock.now - start <= 1.0 + 1e-9
    assert raised.value.message == "DeepCall did not answer within the deadline"


async def test_a_backoff_that_would_pass_the_deadline_is_not_waited() -> None:
    """If the wait leaves no time before the deadline the last error is raised instead."""
    harness = Harness()
    harness.policy = RetryPolicy(base_delay=0.5, max_delay=1.0)
    start = harness.clock.now
    error = from_upstream_code(1009)
    call = FakeCall(harness.clock, [error, 7], took=0.8)

    with pytest.raises(GatewayError) as raised:
        await harness.run(call, deadline=1.0, random=lambda: 0.9)

    assert raised.value is error
    assert call.calls == 1
    assert harness.sleep.delays == []
    assert harness.clock.now - start == pytest.approx(0.8)


async def test_a_zero_deadline_makes_no_call() -> None:
    """With no time at all the call is not made and the deadline error is raised."""
    harness = Harness()
    call = FakeCall(harness.clock, [7])

    with pytest.raises(UpstreamTimeoutError, match="within the deadline"):
        await harness.run(call, deadline=0.0)
    assert call.calls == 0


async def test_a_try_that_overruns_its_timeout_is_cut_off() -> None:
    """A call that ignores its timeout is stopped by the guard and reported as a timeout."""
    harness = Harness()
    harness.policy = RetryPolicy(max_retries=0)
    seen: list[float] = []

    async def ignores_timeout(seconds: float) -> int:
        seen.append(seconds)
        await asyncio.Event().wait()  # never set; the guard must end this (1 ms real time)
        return 7

    with pytest.raises(UpstreamTimeoutError, match="did not answer in time"):
        await harness.run(ignores_timeout, try_timeout=0.001)
    assert seen == [0.001]
    assert harness.breaker.counts(A) == (1, 1)


async def test_a_bounded_call_is_trusted_with_its_own_timeout() -> None:
    """bounded=True: no second timer around the try; the call's own limit is what counts."""
    harness = Harness()
    harness.policy = RetryPolicy(max_retries=0)
    late = asyncio.Event()

    async def overruns_then_answers(seconds: float) -> int:
        # Outlives its 1 ms limit by a loop iteration; only an outer guard would cut it.
        await asyncio.sleep(0.01)
        late.set()
        return 7

    result = await call_with_retries(
        overruns_then_answers,
        caller=A,
        policy=harness.policy,
        budget=harness.budget,
        breaker=harness.breaker,
        deadline=30.0,
        try_timeout=0.001,
        clock=harness.clock,
        sleep=harness.sleep,
        bounded=True,
    )
    assert (result, late.is_set()) == (7, True)


async def test_a_timeout_error_from_the_callee_itself_is_not_mistaken_for_ours() -> None:
    """A bare TimeoutError raised inside the call (a bug) propagates as it is, not retried."""
    harness = Harness()
    call = FakeCall(harness.clock, [TimeoutError(), 7])

    with pytest.raises(TimeoutError):
        await harness.run(call)
    assert call.calls == 1


# call_with_retries with the breaker


async def test_a_call_and_its_retries_count_once_for_the_breaker() -> None:
    """Two failed tries and a success are one logical call, and a success."""
    harness = Harness()
    call = FakeCall(harness.clock, [from_upstream_code(1009), from_upstream_code(1009), 7])

    assert await harness.run(call) == 7
    assert call.calls == 3
    assert harness.breaker.counts(A) == (1, 0)


async def test_a_call_failing_every_try_counts_as_one_failure() -> None:
    """Three failed tries are one failed call for the breaker."""
    harness = Harness()
    call = FakeCall(harness.clock, [from_upstream_code(1010)])

    with pytest.raises(GatewayError):
        await harness.run(call)

    assert call.calls == 3
    assert harness.breaker.counts(A) == (1, 1)
    assert harness.breaker.counts() == (1, 1)


async def test_an_upstream_answer_counts_as_a_breaker_success() -> None:
    """A 1014 proves the upstream alive: one success, no failure."""
    harness = Harness()

    with pytest.raises(GatewayError):
        await harness.run(FakeCall(harness.clock, [from_upstream_code(1014)]))

    assert harness.breaker.counts(A) == (1, 0)


async def test_a_bad_response_is_neutral_for_the_breaker() -> None:
    """A malformed answer counts neither way."""
    harness = Harness()

    with pytest.raises(UpstreamBadResponseError):
        await harness.run(FakeCall(harness.clock, [UpstreamBadResponseError("bad")]))

    assert harness.breaker.counts(A) == (0, 0)


async def test_two_failing_questions_do_not_stop_the_next_good_one() -> None:
    """With the default volume of 20, two failed calls then a good one: the good one is made."""
    harness = Harness(min_calls=20)
    for _ in range(2):
        with pytest.raises(GatewayError):
            await harness.run(FakeCall(harness.clock, [from_upstream_code(1009)]))

    good = FakeCall(harness.clock, [7])
    assert await harness.run(good) == 7
    assert good.calls == 1


async def test_a_circuit_opened_meanwhile_ends_the_retries() -> None:
    """When A's circuit opens while a call is trying, it is not retried; its error is raised."""
    harness = Harness(min_calls=2)
    harness.breaker.record(harness.breaker.admit(A), Outcome.FAILURE)
    error = from_upstream_code(1009)
    pending = harness.breaker.admit(A)  # another call of A's, in flight

    async def fails_while_the_other_fails(seconds: float) -> int:
        harness.breaker.record(pending, Outcome.FAILURE)  # the other call: A's circuit opens
        raise error

    with pytest.raises(GatewayError) as raised:
        await harness.run(fails_while_the_other_fails)

    assert raised.value is error
    assert harness.sleep.delays == []
    assert harness.breaker.caller_state(A) == OPEN


async def test_an_open_circuit_fails_fast_without_calling_or_depositing() -> None:
    """While A's circuit is open, call_with_retries raises at once: no try, no deposit."""
    harness = Harness(min_calls=1)
    harness.breaker.record(harness.breaker.admit(A), Outcome.FAILURE)
    balance = harness.budget.gateway.balance
    call = FakeCall(harness.clock, [7])

    with pytest.raises(CircuitOpenError):
        await harness.run(call)
    assert call.calls == 0
    assert harness.budget.gateway.balance == balance
    assert await harness.run(FakeCall(harness.clock, [7]), caller=B) == 7


async def test_a_probe_is_one_try() -> None:
    """The call that probes an open circuit is not retried: its failure reopens the circuit."""
    harness = Harness(min_calls=1, cooldown=10.0)
    harness.breaker.record(harness.breaker.admit(A), Outcome.FAILURE)
    harness.clock.advance(10.0)
    call = FakeCall(harness.clock, [from_upstream_code(1009), 7])

    with pytest.raises(GatewayError):
        await harness.run(call)

    assert call.calls == 1
    assert harness.breaker.caller_state(A) == OPEN


async def test_a_cancelled_probe_frees_the_half_open_place() -> None:
    """Cancelling the call that holds the probe lets the next call probe, and close the circuit."""
    harness = Harness(min_calls=1, cooldown=10.0)
    harness.breaker.record(harness.breaker.admit(A), Outcome.FAILURE)
    harness.clock.advance(10.0)
    started = asyncio.Event()

    async def hangs(seconds: float) -> int:
        started.set()
        await asyncio.Event().wait()
        return 7

    task = asyncio.create_task(harness.run(hangs))
    await started.wait()
    assert harness.breaker.caller_state(A) == "half_open"
    with pytest.raises(CircuitOpenError):
        harness.breaker.admit(A)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await harness.run(FakeCall(harness.clock, [7])) == 7
    assert harness.breaker.caller_state(A) == CLOSED
