"""How many credentials one client address may try that DeepCall then rejects.

The budget exists to stop made-up credentials, so only a rejection spends it:
a new credential's trial *reserves* a token while DeepCall decides, and gives
it back when DeepCall accepts the credential (or says nothing about it).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from gateway.errors import NewCredentialsLimitedError
from gateway.limits import TokenBuckets

#: Trials one address may have waiting for a token at once; beyond, refused at once.
MAX_WAITING: Final = 1_000
NEW_MESSAGE: Final = (
    "Too many new credentials from this address that DeepCall did not accept; "
    "retry after the hinted delay"
)


class AddressBudget:
    """``per_minute`` rejected credentials per address: a bucket that refills at that rate.

    How it is divided between callers: by client address; within an address,
    every new credential's trial holds one token at most until DeepCall's
    verdict, however many calls that credential makes. When every token an
    address has left is held by a trial in flight, a new trial waits (at most
    ``wait`` seconds) for one to come back instead of being refused: a slow
    DeepCall delays an office of real new users, it does not refuse them. A
    trial is refused (``NewCredentialsLimitedError``, no call) only when
    rejections have spent the tokens, or when it waited its ``wait`` out.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        wait: float = 10.0,
        max_addresses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets: TokenBuckets[str] = TokenBuckets(
            per_minute, per_minute / 60.0, max_addresses, clock
        )
        self._wait = wait
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def held(self, address: str) -> int:
        """Tokens of ``address`` held by trials in flight."""
        return self._held.get(address, 0)

    async def reserve(self, address: str) -> None:
        """Hold one of ``address``'s tokens for a trial; raise the refusal when none may be had."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._wait
        while True:
            held = self._held.get(address, 0)
            if self._buckets.available(address) - held >= 1:
                self._held[address] = held + 1
                return
            remaining = give_up_at - loop.time()
            queue = self._waiting.setdefault(address, deque())
            if not held or remaining <= 0 or len(queue) >= MAX_WAITING:
                if not queue:
                    del self._waiting[address]
                raise self._refusal(address, held)
            turn = loop.create_future()
            queue.append(turn)
            try:
                await asyncio.wait((turn,), timeout=remaining)
            finally:
                if not turn.done():
                    turn.cancel()
                    queue = self._waiting.get(address, deque())
                    if turn in queue:
                        queue.remove(turn)
                    if not queue:
                        self._waiting.pop(address, None)

    def release(self, address: str) -> None:
        """A trial's token comes back: DeepCall accepted the credential, or said nothing of it."""
        self._let_go(address)

    def spend(self, address: str) -> None:
        """A trial's token is spent: DeepCall rejected the credential (1014, 1000)."""
        self._let_go(address)
        self._buckets.take(address)

    def _let_go(self, address: str) -> None:
        held = self._held.get(address, 0) - 1
        if held > 0:
            self._held[address] = held
        else:
            self._held.pop(address, None)
        # Everyone waiting looks again, in arrival order; who finds no token waits again.
        for turn in self._waiting.pop(address, ()):
            if not turn.done():
                turn.set_result(None)

    def _refusal(self, address: str, held: int) -> NewCredentialsLimitedError:
        wait = self._buckets.wait_for(address, held + 1)
        return NewCredentialsLimitedError(NEW_MESSAGE, retry_after=math.ceil(min(wait, 3600)))
