"""Unit tests for the circuit breaker: one circuit per caller, one for the upstream, on rates."""

from __future__ import annotations

import pytest
from support.clock import FakeClock

from gateway.errors import CallerCircuitOpenError, CircuitOpenError
from gateway.upstream.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, Outcome, Permit

A, B, C, D = b"tenant-a", b"tenant-b", b"tenant-c", b"tenant-d"


def breaker(clock: FakeClock, **options: float) -> CircuitBreaker:
    """A breaker on ``clock`` with small test volumes unless ``options`` say otherwise."""
    settings = {"failure_rate": 0.5, "min_calls": 4, "window": 10.0, "cooldown": 10.0}
    settings.update(options)
    return CircuitBreaker(clock=clock, **settings)  # type: ignore[arg-type]


def call(b: CircuitBreaker, caller: bytes, outcome: Outcome) -> Permit:
    """One logical call by ``caller``: admitted, then its outcome recorded."""
    permit = b.admit(caller)
    b.record(permit, outcome)
    return permit


def fail(b: CircuitBreaker, caller: bytes, times: int = 1) -> None:
    """``times`` failed calls by ``caller``."""
    for _ in range(times):
        call(b, caller, Outcome.FAILURE)


def succeed(b: CircuitBreaker, caller: bytes, times: int = 1) -> None:
    """``times`` successful calls by ``caller``."""
    for _ in range(times):
        call(b, caller, Outcome.SUCCESS)


# a caller's own circuit


def test_a_callers_circuit_opens_at_the_failure_rate_once_there_is_enough_volume() -> None:
    """min_calls - 1 failures keep it closed; the min_calls-th, all failed, opens it."""
    b = breaker(FakeClock())

    fail(b, A, 3)
    assert b.caller_state(A) == CLOSED
    fail(b, A)

    assert b.caller_state(A) == OPEN
    assert b.callers_open == 1
    assert b.state == CLOSED  # one caller's failures: the upstream's circuit stays closed


def test_a_failure_rate_below_the_threshold_keeps_a_caller_closed() -> None:
    """Two failures in five calls (40% < 50%) do not open it, however long it goes on."""
    b = breaker(FakeClock())

    for _ in range(10):
        succeed(b, A, 3)
        fail(b, A, 2)

    assert b.caller_state(A) == CLOSED
    assert b.counts(A) == (50, 20)


def test_an_open_callers_circuit_refuses_only_that_caller() -> None:
    """A's open circuit refuses A with CallerCircuitOpenError; B's calls pass."""
    b = breaker(FakeClock())
    fail(b, A, 4)

    with pytest.raises(CallerCircuitOpenError) as raised:
        b.admit(A)
    assert raised.value.code == "UPSTREAM_UNAVAILABLE"
    assert raised.value.refusal == "caller_circuit_open"
    assert b.admit(B) == Permit(B)


def test_failures_older_than_the_window_are_forgotten() -> None:
    """Three failures, eleven seconds, one more: only one is in the window, nothing opens."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, A, 3)

    clock.advance(11.0)
    fail(b, A)

    assert b.counts(A) == (1, 1)
    assert b.caller_state(A) == CLOSED


def test_neutral_outcomes_count_neither_way() -> None:
    """Cancelled calls and bad responses add nothing to the window."""
    b = breaker(FakeClock())

    for _ in range(10):
        call(b, A, Outcome.NEUTRAL)
    fail(b, A, 3)

    assert b.counts(A) == (3, 3)
    assert b.caller_state(A) == CLOSED


def test_a_callers_circuit_probes_after_the_cooldown_and_a_success_closes_it() -> None:
    """Refused until the cooldown, then one probe; its success closes and forgets the failures."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, A, 4)
    clock.advance(9.9)
    with pytest.raises(CallerCircuitOpenError):
        b.admit(A)

    clock.advance(0.1)
    probe = b.admit(A)
    assert probe.probes_caller is True
    assert b.caller_state(A) == HALF_OPEN
    with pytest.raises(CallerCircuitOpenError):
        b.admit(A)  # one probe at a time
    b.record(probe, Outcome.SUCCESS)

    assert b.caller_state(A) == CLOSED
    assert b.callers_open == 0
    assert b.counts(A) == (0, 0)
    fail(b, A, 3)
    assert b.caller_state(A) == CLOSED


def test_a_failed_probe_opens_the_callers_circuit_for_another_cooldown() -> None:
    """The probe's failure reopens at once, for a whole cooldown from then."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, A, 4)
    clock.advance(10.0)

    b.record(b.admit(A), Outcome.FAILURE)

    assert b.caller_state(A) == OPEN
    clock.advance(9.9)
    with pytest.raises(CallerCircuitOpenError):
        b.admit(A)
    clock.advance(0.1)
    assert b.admit(A).probes_caller is True


def test_a_neutral_probe_frees_the_place_for_the_next_probe() -> None:
    """A cancelled probe keeps the circuit half open and lets one more call probe."""
    clock = FakeClock()
    b = breaker(clock)
    fail(b, A, 4)
    clock.advance(10.0)

    b.record(b.admit(A), Outcome.NEUTRAL)

    assert b.caller_state(A) == HALF_OPEN
    assert b.admit(A).probes_caller is True
    with pytest.raises(CallerCircuitOpenError):
        b.admit(A)


def test_late_outcomes_while_open_change_nothing() -> None:
    """Calls admitted before the circuit opened don't close it, or open it again, when they end."""
    clock = FakeClock()
    b = breaker(clock)
    early = [b.admit(A) for _ in range(2)]
    fail(b, A, 4)
    clock.advance(5.0)

    b.record(early[0], Outcome.SUCCESS)
    b.record(early[1], Outcome.FAILURE)

    assert b.caller_state(A) == OPEN
    clock.advance(5.0)
    assert b.admit(A).probes_caller is True


def test_callers_remembered_are_bounded_and_the_least_recent_go_first() -> None:
    """With max_callers 2 a third caller makes the breaker forget the least recent, open or not."""
    b = breaker(FakeClock(), max_callers=2)
    fail(b, A, 4)
    succeed(b, B)

    succeed(b, C)

    assert b.caller_state(A) == CLOSED  # forgotten
    assert b.callers_open == 0
    assert b.counts(B) == (1, 0)


# the upstream's circuit


def test_one_callers_failures_however_many_never_open_the_upstreams_circuit() -> None:
    """A fails 1,000 calls while B succeeds a few: only A's own circuit opens."""
    b = breaker(FakeClock(), min_calls=20)
    succeed(b, B, 3)

    for _ in range(1000):
        try:
            permit = b.admit(A)
        except CallerCircuitOpenError:
            continue
        b.record(permit, Outcome.FAILURE)

    assert b.state == CLOSED
    assert b.caller_state(A) == OPEN
    succeed(b, B)


def test_one_caller_alone_failing_does_not_open_the_upstreams_circuit() -> None:
    """Nobody else is asking: A's failures still open only A's circuit, so C is served at once."""
    b = breaker(FakeClock(), min_calls=20)

    fail(b, A, 20)

    assert b.state == CLOSED
    assert b.admit(C) == Permit(C)


def test_failures_across_callers_with_nobody_served_open_the_upstreams_circuit() -> None:
    """A, B and C failing: it opens when the calls beside the worst caller's reach the volume."""
    b = breaker(FakeClock(), min_calls=20)

    for _ in range(9):
        for caller in (A, B, C):
            fail(b, caller)
    assert b.state == CLOSED  # 27 calls, 18 beside the worst caller's
    fail(b, A)
    fail(b, B)
    assert b.state == CLOSED  # 19 beside the worst caller's (A or B, 10 each)
    fail(b, C)

    assert b.state == OPEN
    assert b.opened_total == 1
    with pytest.raises(CircuitOpenError) as raised:
        b.admit(D)  # a caller never seen before is refused too
    assert type(raised.value) is CircuitOpenError
    assert raised.value.message == "DeepCall is failing; the gateway is not calling it for a while"


def test_a_partial_outage_for_everyone_opens_the_upstreams_circuit_at_the_rate() -> None:
    """Four callers each failing 3 calls in 5 (60%) open it; at 2 in 5 (40%) it stays closed."""
    failing, coping = breaker(FakeClock(), min_calls=20), breaker(FakeClock(), min_calls=20)

    for _ in range(4):
        for caller in (A, B, C, D):
            if failing.state == CLOSED:
                succeed(failing, caller, 2)
                fail(failing, caller, 3)
            succeed(coping, caller, 3)
            fail(coping, caller, 2)

    assert failing.state == OPEN
    assert coping.state == CLOSED
    assert coping.counts() == (80, 32)
    # no caller reached 20 calls of its own, so no caller's circuit opened
    assert failing.callers_open == coping.callers_open == 0


def test_one_failing_caller_among_several_served_does_not_open_it() -> None:
    """A fails everything, B, C and D fail a fifth: beside A the rate is 20%, below 50%."""
    b = breaker(FakeClock(), min_calls=20)

    for _ in range(5):
        fail(b, A, 4)
        for caller in (B, C, D):
            succeed(b, caller, 4)
            fail(b, caller)

    assert b.state == CLOSED
    assert b.caller_state(A) == OPEN


def test_the_upstreams_circuit_probes_after_the_cooldown_and_closes_for_everyone() -> None:
    """Open: everyone refused; after the cooldown one probe; its success lets everyone through."""
    clock = FakeClock()
    b = breaker(clock, min_calls=4)
    for _ in range(2):
        for caller in (A, B, C):
            fail(b, caller)
    assert b.state == OPEN  # 6 calls, 4 beside the worst caller's

    clock.advance(10.0)
    probe = b.admit(D)
    assert probe.probes_upstream is True
    assert b.state == HALF_OPEN
    with pytest.raises(CircuitOpenError):
        b.admit(B)
    b.record(probe, Outcome.SUCCESS)

    assert b.state == CLOSED
    assert b.counts() == (0, 0)  # the failures that opened it are forgotten
    assert b.admit(B) == Permit(B)


def test_a_failed_upstream_probe_opens_it_for_another_cooldown() -> None:
    """The probe's failure reopens the upstream's circuit; opened_total counts both openings."""
    clock = FakeClock()
    b = breaker(clock, min_calls=4)
    for _ in range(2):
        for caller in (A, B, C):
            fail(b, caller)
    clock.advance(10.0)

    b.record(b.admit(A), Outcome.FAILURE)

    assert b.state == OPEN
    assert b.opened_total == 2
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError):
        b.admit(B)


def test_a_caller_refused_by_the_upstreams_circuit_keeps_its_own_probe_place() -> None:
    """A's probe of its own circuit, refused by the open upstream, does not block A's next probe."""
    clock = FakeClock(0.0)
    b = breaker(clock, min_calls=4, cooldown=10.0)
    fail(b, A, 4)  # A's circuit opens at t=0
    clock.advance(5.0)
    for caller in (B, C, D, B):
        fail(b, caller)  # the upstream's opens at t=5: 4 calls beside A's
    assert b.state == OPEN
    clock.advance(5.0)  # A's cooldown is over, the upstream's is not

    with pytest.raises(CircuitOpenError):
        b.admit(A)

    clock.advance(5.0)
    permit = b.admit(A)
    assert (permit.probes_caller, permit.probes_upstream) == (True, True)


def test_the_breaker_refuses_nonsense_settings() -> None:
    """A failure rate outside (0, 1], no minimum volume or a window under a second is an error."""
    for options in (
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"min_calls": 0},
        {"window": 0.5},
    ):
        with pytest.raises(ValueError, match="CircuitBreaker needs"):
            CircuitBreaker(**options)  # type: ignore[arg-type]
