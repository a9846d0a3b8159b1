"""What DeepCall said lately of each credential, and how many new ones an address may try.

Limits keyed by a credential mean nothing to a client that invents a new one
per request, so they are backed by a limit keyed by the client's address.
Addresses are kept in memory only, never logged nor used as metric labels.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, NamedTuple

from cachetools import LRUCache

from gateway.errors import (
    GatewayError,
    KnownInvalidCredentialError,
    NewCredentialsLimitedError,
    RateLimitedError,
)
from gateway.fleet import INVALID, NEW_LIMITED, OK, RATE_LIMITED, FleetLimits, new_reservation
from gateway.limits import RATE_MESSAGE
from gateway.upstream.addresses import NEW_MESSAGE, AddressBudget

INVALID_TOKEN: Final = 1014
INVALID_PARAMETERS: Final = 1000
PERMISSION_DENIED: Final = 1015
#: Seconds a new credential's call waits for its trial's verdict before going on anyway.
TRIAL_WAIT: Final = 1.0
#: Seconds between two looks at the fleet's held tokens, when all of an address's are held.
HELD_POLL: Final = 0.05


class Ticket(NamedTuple):
    """What a new credential's trial call holds: its address's token, and the verdict's future."""

    address: str
    #: Done when the trial's verdict is recorded; its result is what the waiting calls raise.
    verdict: asyncio.Future[RateLimitedError | None]
    #: The fleet's name for the token held (its rate token taken too); None: this process's.
    reservation: str | None = None


class CredentialLedger:
    """What DeepCall said lately of each credential, and how many new ones an address may try.

    How it is divided between callers: per client address, and per credential.

    - A credential DeepCall answered with a count (or with 1015, which proves it
      genuine) is *known*: this rule never refuses it. The last ``max_known``
      such are remembered.
    - A credential DeepCall answered with 1014 is refused here, without a call,
      for ``invalid_ttl`` seconds (``KnownInvalidCredentialError``).
    - Any other credential is *new*. Its first call is its trial, which holds
      one of its address's tokens (``AddressBudget``) until DeepCall's verdict;
      only a rejection (1014, 1000) spends it. The credential's other calls
      hold none: they wait for the trial's verdict (``trial_wait`` seconds at
      most), then go on free if DeepCall accepted it or said nothing yet, and
      are refused if it rejected the credential or the trial was refused.
      DeepCall answers a made-up credential at once, so however many aliases
      one asks for, DeepCall hears it once; a slow DeepCall delays a real new
      caller's other calls by ``trial_wait`` at most, and never spends a
      neighbour's budget.

    ``new_per_minute`` 0 turns the address limit off. Credentials are their HMAC digests.
    """

    def __init__(
        self,
        new_per_minute: float = 30.0,
        invalid_ttl: float = 10.0,
        *,
        max_known: int = 100_000,
        max_addresses: int = 100_000,
        trial_wait: float = TRIAL_WAIT,
        reserve_wait: float = 10.0,
        fleet: FleetLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limited = new_per_minute > 0 or fleet is not None
        self._reserve_wait = reserve_wait
        self._fleet = fleet
        self._writes: set[asyncio.Task[None]] = set()
        self._invalid_ttl = invalid_ttl
        self._trial_wait = trial_wait
        self._max_known = max_known
        self._clock = clock
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._invalid: LRUCache[bytes, float] = LRUCache(maxsize=max_known)
        # credential -> its trial's verdict, done when recorded (one trial per credential)
        self._trials: dict[bytes, asyncio.Future[RateLimitedError | None]] = {}
        self._capacity = new_per_minute
        self.addresses = AddressBudget(
            new_per_minute, wait=reserve_wait, max_addresses=max_addresses, clock=clock
        )

    def knows(self, principal: bytes) -> bool:
        """Whether DeepCall accepted ``principal`` lately (``admit`` would return None at once)."""
        return principal in self._known

    async def admit(self, principal: bytes, address: str) -> Ticket | None:
        """Let a call by ``principal`` from ``address`` go on, or raise a refusal (no call).

        Returns the trial's ticket, for ``settle``; None for a call that holds nothing.
        """
        if principal in self._known:
            return None
        self._refuse_if_invalid(principal)
        if not self._limited:
            return None
        trial = self._trials.get(principal)
        if trial is not None:
            # asyncio.wait, not wait_for: a waiter that gives up or goes away leaves it be.
            await asyncio.wait((trial,), timeout=self._trial_wait)
            self._refuse_if_invalid(principal)
            refused = trial.result() if trial.done() else None
            if refused is not None:
                raise type(refused)(refused.message, retry_after=refused.retry_after)
            return None
        verdict = self._trials[principal] = asyncio.get_running_loop().create_future()
        try:
            reservation = await self._reserve(principal, address)
        except BaseException as exc:
            del self._trials[principal]
            verdict.set_result(exc if isinstance(exc, RateLimitedError) else None)
            raise
        return Ticket(address, verdict, reservation)

    async def _reserve(self, principal: bytes, address: str) -> str | None:
        """Hold a token of ``address`` for ``principal``'s trial: the fleet's, else ours.

        The fleet also checks the credential against every replica's verdicts and
        takes its rate token, in the same round trip; its name for the token is
        returned. None: this process's token is held.
        """
        fleet = self._fleet
        if fleet is not None:
            loop = asyncio.get_running_loop()
            give_up_at = loop.time() + self._reserve_wait
            reservation = new_reservation()
            while (
                grant := await fleet.admit(principal, address, trial=True, reservation=reservation)
            ) is not None:
                if grant.status == OK:
                    return reservation
                if grant.status == INVALID:
                    self._invalid[principal] = self._clock() + grant.wait
                    self._refuse_if_invalid(principal)
                if grant.status == RATE_LIMITED:
                    raise RateLimitedError(RATE_MESSAGE, retry_after=grant.wait)
                if grant.status == NEW_LIMITED or loop.time() >= give_up_at:
                    raise NewCredentialsLimitedError(NEW_MESSAGE, retry_after=max(1, grant.wait))
                await asyncio.sleep(HELD_POLL)  # every token held by trials in flight
        if self._capacity > 0:
            await self.addresses.reserve(address)
        return None

    def _refuse_if_invalid(self, principal: bytes) -> None:
        invalid_until = self._invalid.get(principal)
        if invalid_until is None:
            return
        if self._clock() < invalid_until:
            raise KnownInvalidCredentialError(
                "DeepCall rejected these credentials moments ago: invalid or expired token",
                upstream_code=INVALID_TOKEN,
            )
        del self._invalid[principal]

    def settle(
        self, principal: bytes, taken: Ticket | None, error: BaseException | None
    ) -> asyncio.Task[None] | None:
        """What came of a call ``admit`` let through (``taken``: what it returned).

        ``error`` is None when DeepCall answered with a count. Returns the write of
        the verdict to the fleet, if there is one, for a caller that may wait for it.
        """
        if error is None and taken is None and principal in self._known:
            return None  # the usual case: a known credential, known still
        code = error.upstream_code if isinstance(error, GatewayError) else None
        rejected = code in (INVALID_TOKEN, INVALID_PARAMETERS)
        if error is None or code == PERMISSION_DENIED:
            self._known[principal] = None
            self._known.move_to_end(principal)
            if len(self._known) > self._max_known:
                self._known.popitem(last=False)
        elif code == INVALID_TOKEN:
            self._known.pop(principal, None)  # revoked or expired since
            self._invalid[principal] = self._clock() + self._invalid_ttl
        write = None
        if taken is not None and taken.reservation is not None:
            write = self._tell_fleet(principal, taken.address, taken.reservation, rejected, code)
        elif code == INVALID_TOKEN:
            write = self._tell_fleet(principal, taken.address if taken else "", "", False, code)
        if taken is None:
            return write
        if taken.reservation is None and self._capacity > 0:
            if rejected:
                self.addresses.spend(taken.address)
            else:
                self.addresses.release(taken.address)
        del self._trials[principal]
        taken.verdict.set_result(None)  # the waiting calls read the verdict recorded above
        return write

    def _tell_fleet(
        self, principal: bytes, address: str, reservation: str, spend: bool, code: int | None
    ) -> asyncio.Task[None] | None:
        """Write a verdict to the fleet in a task of its own: a call cancelled meanwhile
        must not leave the fleet's token held."""
        fleet = self._fleet
        if fleet is None or not (reservation or fleet.up):
            return None
        write = asyncio.get_running_loop().create_task(
            fleet.settle(
                principal, address, reservation, spend=spend, invalid=code == INVALID_TOKEN
            )
        )
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return write
