"""Unit tests for the token buckets and the per-client rate limiter."""

from __future__ import annotations

import pytest
from support.clock import FakeClock

from gateway.errors import RateLimitedError
from gateway.limits import RateLimiter

# RateLimiter

KEY_A = b"\x01" * 32
KEY_B = b"\x02" * 32


def test_a_burst_passes_then_the_next_call_is_refused_with_the_wait() -> None:
    """burst calls pass at once; the next is refused with retry_after = 1 / rate."""
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3.0, clock=clock)

    for _ in range(3):
        limiter.take(KEY_A)
    with pytest.raises(RateLimitedError) as raised:
        limiter.take(KEY_A)

    assert raised.value.retry_after == pytest.approx(0.5)
    assert raised.value.code == "RATE_LIMITED"
    assert raised.value.message == (
        "Too many upstream calls for these credentials; retry after the hinted delay"
    )


def test_retry_after_counts_the_partly_refilled_token() -> None:
    """Half a token refilled leaves half the wait."""
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=1.0, clock=clock)
    limiter.take(KEY_A)
    clock.advance(0.25)

    with pytest.raises(RateLimitedError) as raised:
        limiter.take(KEY_A)

    assert raised.value.retry_after == pytest.approx(0.25)


def test_tokens_refill_at_rate_up_to_burst() -> None:
    """After 1/rate seconds one more call passes; a long rest refills only to burst."""
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3.0, clock=clock)
    for _ in range(3):
        limiter.take(KEY_A)

    clock.advance(0.5)
    limiter.take(KEY_A)
    with pytest.raises(RateLimitedError):
        limiter.take(KEY_A)

    clock.advance(1000.0)
    for _ in range(3):
        limiter.take(KEY_A)
    with pytest.raises(RateLimitedError):
        limiter.take(KEY_A)


def test_a_refused_call_costs_nothing() -> None:
    """Refusals don't spend tokens: the wait stays what it was."""
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1.0, clock=clock)
    limiter.take(KEY_A)

    for _ in range(5):
        with pytest.raises(RateLimitedError):
            limiter.take(KEY_A)
    clock.advance(1.0)

    limiter.take(KEY_A)


def test_cost_spends_several_tokens() -> None:
    """take(cost=2) spends two tokens, and its retry_after counts what is missing of two."""
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=3.0, clock=clock)

    limiter.take(KEY_A, cost=2.0)
    with pytest.raises(RateLimitedError) as raised:
        limiter.take(KEY_A, cost=2.0)

    assert raised.value.retry_after == pytest.approx(1.0)
    with pytest.raises(ValueError, match="exceeds burst"):
        limiter.take(KEY_A, cost=4.0)


def test_clients_have_independent_buckets() -> None:
    """One client's empty bucket does not limit another."""
    limiter = RateLimiter(rate=1.0, burst=2.0, clock=FakeClock())
    limiter.take(KEY_A)
    limiter.take(KEY_A)
    with pytest.raises(RateLimitedError):
        limiter.take(KEY_A)

    limiter.take(KEY_B)
    limiter.take(KEY_B)


def test_the_number_of_buckets_is_bounded_and_the_least_recent_goes_first() -> None:
    """With max_clients=2 a third client evicts the least recently used bucket."""
    limiter = RateLimiter(rate=1.0, burst=1.0, max_clients=2, clock=FakeClock())
    key_c = b"\x03" * 32
    limiter.take(KEY_A)
    limiter.take(KEY_B)
    with pytest.raises(RateLimitedError):
        limiter.take(KEY_A)  # A is now the most recently used

    limiter.take(key_c)

    assert len(limiter) == 2
    with pytest.raises(RateLimitedError):
        limiter.take(KEY_A)  # still remembered
    limiter.take(KEY_B)  # forgotten, so full again


def test_the_bound_holds_under_many_clients() -> None:
    """A thousand clients never hold more than max_clients buckets."""
    limiter = RateLimiter(rate=1.0, burst=5.0, max_clients=100, clock=FakeClock())

    for n in range(1000):
        limiter.take(n.to_bytes(32, "big"))

    assert len(limiter) == 100


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_of_zero_or_less_is_unlimited(rate: float) -> None:
    """rate <= 0 never refuses and keeps no buckets."""
    limiter = RateLimiter(rate=rate, burst=0.0, clock=FakeClock())

    for _ in range(10_000):
        limiter.take(KEY_A)

    assert len(limiter) == 0
