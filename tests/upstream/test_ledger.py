"""Unit tests for the credential ledger: what DeepCall said of each credential, per address."""

from __future__ import annotations

import asyncio

import pytest
from support.clock import FakeClock

from gateway.errors import (
    KnownInvalidCredentialError,
    NewCredentialsLimitedError,
    UpstreamTimeoutError,
    from_upstream_code,
)
from gateway.upstream.ledger import CredentialLedger, Ticket

# CredentialLedger

ALICE, MALLORY = b"alice-hmac", b"mallory-hmac"
HOME, OFFICE = "198.51.100.1", "203.0.113.5"


async def test_new_credentials_spend_their_addresses_budget_only_when_rejected() -> None:
    """Three tokens: three rejected credentials spend them; the fourth is refused, no call."""
    ledger = CredentialLedger(new_per_minute=3, clock=FakeClock())
    for n in range(3):
        principal = f"made-up-{n}".encode()
        taken = await ledger.admit(principal, HOME)
        ledger.settle(principal, taken, from_upstream_code(1014))

    with pytest.raises(NewCredentialsLimitedError) as raised:
        await ledger.admit(b"made-up-3", HOME)

    assert raised.value.code == "RATE_LIMITED"
    assert raised.value.extensions()["retryAfter"] == 20  # 3 a minute: one every 20 s
    ticket = await ledger.admit(b"made-up-3", OFFICE)  # another address has its own
    assert ticket is not None
    assert ticket.address == OFFICE


async def test_an_accepted_credential_gives_its_token_back_and_is_never_limited_again() -> None:
    """Alice's first call takes a token and returns it; later calls take none, even at zero."""
    ledger = CredentialLedger(new_per_minute=1, clock=FakeClock())

    taken = await ledger.admit(ALICE, HOME)
    ledger.settle(ALICE, taken, None)
    spent = await ledger.admit(MALLORY, HOME)
    ledger.settle(MALLORY, spent, from_upstream_code(1000))

    for _ in range(10):
        assert await ledger.admit(ALICE, HOME) is None
    with pytest.raises(NewCredentialsLimitedError):
        await ledger.admit(b"someone-new", HOME)


async def test_a_new_credential_is_tried_by_one_call_while_its_others_wait() -> None:
    """Ten calls of a new credential: one goes (the trial); a 1014 refuses the nine, no call."""
    ledger = CredentialLedger(new_per_minute=30, clock=FakeClock())
    trial = await ledger.admit(MALLORY, HOME)
    waiting = [asyncio.create_task(ledger.admit(MALLORY, HOME)) for _ in range(9)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)

    ledger.settle(MALLORY, trial, from_upstream_code(1014))
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)

    assert trial is not None
    assert trial.address == HOME
    assert [type(outcome) for outcome in outcomes] == [KnownInvalidCredentialError] * 9


async def test_once_the_trial_succeeds_the_waiting_calls_go_on_free() -> None:
    """The trial's count makes the credential known: its waiting calls go, taking no token."""
    ledger = CredentialLedger(new_per_minute=1, clock=FakeClock())
    trial = await ledger.admit(ALICE, HOME)
    waiting = [asyncio.create_task(ledger.admit(ALICE, HOME)) for _ in range(5)]
    await asyncio.sleep(0)

    ledger.settle(ALICE, trial, None)

    assert await asyncio.gather(*waiting) == [None] * 5
    assert await ledger.admit(b"someone-new", HOME) is not None  # the token came back


async def test_after_an_inconclusive_trial_the_waiting_calls_go_on_each_with_a_token() -> None:
    """A timeout says nothing of the credential: its waiting calls go, each taking a token."""
    ledger = CredentialLedger(new_per_minute=3, clock=FakeClock())
    trial = await ledger.admit(MALLORY, HOME)
    waiting = [asyncio.create_task(ledger.admit(MALLORY, HOME)) for _ in range(2)]
    await asyncio.sleep(0)

    ledger.settle(MALLORY, trial, UpstreamTimeoutError("late"))  # its token comes back

    assert await asyncio.gather(*waiting) == [Ticket(HOME), Ticket(HOME)]
    ticket = await ledger.admit(b"someone-new", HOME)
    assert ticket is not None  # the third token
    with pytest.raises(NewCredentialsLimitedError):
        await ledger.admit(b"another", HOME)


async def test_a_waiting_call_goes_on_after_trial_wait_without_a_verdict() -> None:
    """The trial hangs: the other calls wait trial_wait, then go on as new calls."""
    ledger = CredentialLedger(new_per_minute=30, trial_wait=0.01, clock=FakeClock())
    trial = await ledger.admit(ALICE, HOME)

    ticket = await asyncio.wait_for(ledger.admit(ALICE, HOME), timeout=5.0)

    assert ticket == Ticket(HOME)
    assert trial is not None
    assert not trial.verdict.done()  # type: ignore[union-attr]


async def test_a_waiter_that_goes_away_does_not_cancel_the_verdict_for_the_others() -> None:
    """Cancelling one waiting call leaves the trial and the other waiters as they were."""
    ledger = CredentialLedger(new_per_minute=30, clock=FakeClock())
    trial = await ledger.admit(ALICE, HOME)
    leaving, staying = (asyncio.create_task(ledger.admit(ALICE, HOME)) for _ in range(2))
    await asyncio.sleep(0)

    leaving.cancel()
    await asyncio.sleep(0)
    ledger.settle(ALICE, trial, None)

    assert await staying is None
    assert leaving.cancelled()


async def test_a_1015_proves_a_credential_genuine() -> None:
    """Permission denied means the credential is real: known, not limited, token back."""
    ledger = CredentialLedger(new_per_minute=1, clock=FakeClock())

    ledger.settle(ALICE, await ledger.admit(ALICE, HOME), from_upstream_code(1015))

    assert await ledger.admit(ALICE, HOME) is None
    assert await ledger.admit(b"someone-new", HOME) is not None


async def test_the_budget_refills_at_its_rate_per_minute() -> None:
    """Spent at 6 a minute, one more token comes back every 10 s."""
    clock = FakeClock()
    ledger = CredentialLedger(new_per_minute=6, clock=clock)
    for n in range(6):
        principal = f"made-up-{n}".encode()
        ledger.settle(principal, await ledger.admit(principal, HOME), from_upstream_code(1014))
    with pytest.raises(NewCredentialsLimitedError):
        await ledger.admit(b"next", HOME)

    clock.advance(10.0)

    assert await ledger.admit(b"next", HOME) is not None
    with pytest.raises(NewCredentialsLimitedError):
        await ledger.admit(b"after", HOME)


async def test_a_1014_is_remembered_for_its_ttl_and_refused_without_a_call() -> None:
    """Within invalid_ttl the same credential is UNAUTHENTICATED at once, from any address."""
    clock = FakeClock()
    ledger = CredentialLedger(new_per_minute=100, invalid_ttl=10.0, clock=clock)
    ledger.settle(MALLORY, await ledger.admit(MALLORY, HOME), from_upstream_code(1014))

    with pytest.raises(KnownInvalidCredentialError) as raised:
        await ledger.admit(MALLORY, OFFICE)
    assert raised.value.extensions() == {
        "code": "UNAUTHENTICATED",
        "retryable": False,
        "upstreamCode": 1014,
    }

    clock.advance(10.0)
    again = await ledger.admit(MALLORY, OFFICE)  # asked again once the memory lapses
    assert again is not None
    assert again.address == OFFICE
    assert again.verdict is not None  # as a new credential's trial


async def test_a_known_credential_rejected_later_is_forgotten_as_known() -> None:
    """Alice's token expires: after her 1014 she is refused like any invalid credential."""
    ledger = CredentialLedger(new_per_minute=1, clock=FakeClock())
    ledger.settle(ALICE, await ledger.admit(ALICE, HOME), None)

    ledger.settle(ALICE, await ledger.admit(ALICE, HOME), from_upstream_code(1014))

    with pytest.raises(KnownInvalidCredentialError):
        await ledger.admit(ALICE, HOME)


async def test_a_budget_of_zero_turns_the_address_limit_off() -> None:
    """new_per_minute 0: no tokens taken, nothing refused for it; 1014s are still remembered."""
    ledger = CredentialLedger(new_per_minute=0, clock=FakeClock())

    for n in range(100):
        principal = f"made-up-{n}".encode()
        assert await ledger.admit(principal, HOME) is None
        ledger.settle(principal, None, from_upstream_code(1014))

    with pytest.raises(KnownInvalidCredentialError):
        await ledger.admit(b"made-up-0", HOME)


async def test_known_credentials_remembered_are_bounded() -> None:
    """With max_known 2 the least recent known credential is new again, and pays."""
    ledger = CredentialLedger(new_per_minute=10, max_known=2, clock=FakeClock())
    for principal in (b"one", b"two", b"three"):
        ledger.settle(principal, await ledger.admit(principal, HOME), None)

    assert await ledger.admit(b"three", HOME) is None
    assert await ledger.admit(b"one", HOME) is not None  # forgotten: new again
