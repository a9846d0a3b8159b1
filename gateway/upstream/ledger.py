"""What DeepCall said lately of each credential, and how many new ones an address may try.

Limits keyed by a credential mean nothing to a client that invents a new one
per request, so they are backed by a limit keyed by the client's address.
Addresses are kept in memory only, never logged nor used as metric labels.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, NamedTuple

from cachetools import LRUCache

from gateway.errors import (
    GatewayError,
    KnownInvalidCredentialError,
    NewCredentialsLimitedError,
)
from gateway.limits import TokenBuckets

INVALID_TOKEN: Final = 1014
INVALID_PARAMETERS: Final = 1000
PERMISSION_DENIED: Final = 1015
#: Seconds a new credential's call waits for its trial's verdict before going on anyway.
TRIAL_WAIT: Final = 1.0


class Ticket(NamedTuple):
    """What ``CredentialLedger.admit`` gave a new credential's call: a token, maybe the trial."""

    address: str
    #: Set for the credential's trial call: done when its verdict is recorded.
    verdict: asyncio.Future[None] | None = None


class CredentialLedger:
    """What DeepCall said lately of each credential, and how many new ones an address may try.

    How it is divided between callers: per client address, and per credential.

    - A credential DeepCall answered with a count (or with 1015, which proves it
      genuine) is *known*: this rule never refuses it. The last ``max_known``
      such are remembered.
    - A credential DeepCall answered with 1014 is refused here, without a call,
      for ``invalid_ttl`` seconds (``KnownInvalidCredentialError``).
    - Any other credential is *new*. Its first call is its trial; its other
      calls wait for the trial's verdict (``trial_wait`` seconds at most), then
      go on free if DeepCall accepted it, are refused if it answered 1014, and
      otherwise go on as new calls. DeepCall answers a made-up credential at
      once, so however many aliases one asks for, DeepCall hears it once; a
      slow or silent DeepCall delays a real new caller's other calls by
      ``trial_wait`` at most. Each call of a new credential takes one of its
      address's ``new_per_minute`` tokens (a bucket that refills at that many
      a minute) and gives it back unless DeepCall rejects the credential
      (1014, 1000): only rejected credentials spend an address's budget, and a
      backend serving many real users from one address keeps working. Past the
      budget, new credentials from that address are refused with
      ``NewCredentialsLimitedError`` (``RATE_LIMITED`` with the wait), and no
      call is made.

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = new_per_minute
        self._invalid_ttl = invalid_ttl
        self._trial_wait = trial_wait
        self._max_known = max_known
        self._clock = clock
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._invalid: LRUCache[bytes, float] = LRUCache(maxsize=max_known)
        # credential -> its trial's verdict, done when recorded (one trial per credential)
        self._trials: dict[bytes, asyncio.Future[None]] = {}
        self._addresses: TokenBuckets[str] = TokenBuckets(
            new_per_minute, new_per_minute / 60.0, max_addresses, clock
        )

    def knows(self, principal: bytes) -> bool:
        """Whether DeepCall accepted ``principal`` lately (``admit`` would return None at once)."""
        return principal in self._known

    async def admit(self, principal: bytes, address: str) -> Ticket | None:
        """Let a call by ``principal`` from ``address`` go on, or raise a refusal (no call).

        Returns what the call took (None: nothing, a known credential), for ``settle``.
        """
        if principal in self._known:
            return None
        self._refuse_if_invalid(principal)
        if self._capacity <= 0:
            return None
        trial = self._trials.get(principal)
        if trial is None:
            self._take(address)
            trial = self._trials[principal] = asyncio.get_running_loop().create_future()
            return Ticket(address, trial)
        # asyncio.wait, not wait_for: a waiter that gives up or goes away leaves the verdict be.
        await asyncio.wait((trial,), timeout=self._trial_wait)
        if principal in self._known:
            return None
        self._refuse_if_invalid(principal)
        self._take(address)
        return Ticket(address)

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

    def settle(self, principal: bytes, taken: Ticket | None, error: BaseException | None) -> None:
        """What came of a call ``admit`` let through (``taken``: what it returned).

        ``error`` is None when DeepCall answered with a count.
        """
        if error is None and taken is None and principal in self._known:
            return  # the usual case: a known credential, known still
        code = error.upstream_code if isinstance(error, GatewayError) else None
        spent = False
        if error is None or code == PERMISSION_DENIED:
            self._known[principal] = None
            self._known.move_to_end(principal)
            if len(self._known) > self._max_known:
                self._known.popitem(last=False)
        elif code == INVALID_TOKEN:
            self._known.pop(principal, None)  # revoked or expired since
            self._invalid[principal] = self._clock() + self._invalid_ttl
            spent = True
        elif code == INVALID_PARAMETERS:
            spent = True
        if taken is None:
            return
        if not spent:
            self._addresses.give_back(taken.address)
        if taken.verdict is not None:
            del self._trials[principal]
            taken.verdict.set_result(None)  # the waiting calls read the verdict recorded above

    def _take(self, address: str) -> None:
        wait = self._addresses.take(address)
        if wait:
            raise NewCredentialsLimitedError(
                "Too many new credentials from this address that DeepCall did not accept; "
                "retry after the hinted delay",
                retry_after=math.ceil(wait),
            )
