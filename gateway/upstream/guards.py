"""Every guard between a caller and the upstream, in one order, each divided by caller."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.limits import ConcurrencyLimiter, RateLimiter
from gateway.model import CountQuery, Credential
from gateway.observe import Metrics
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.client import UpstreamClient
from gateway.upstream.ledger import CredentialLedger
from gateway.upstream.retries import RetryBudgets, RetryPolicy, call_with_retries


@dataclass(frozen=True)
class Guards:
    """What stands between the gateway and the upstream (one of each per process).

    Each is shared by every caller and divided fairly between them: see each
    class's docstring for how.
    """

    ledger: CredentialLedger
    rate_limiter: RateLimiter
    limiter: ConcurrencyLimiter
    breaker: CircuitBreaker
    budget: RetryBudgets
    policy: RetryPolicy
    deadline: float
    try_timeout: float
    clock: Callable[[], float] = time.monotonic


class GuardedClient:
    """``reportCount`` behind every guard, in this order, each keyed by the caller.

    The credential ledger (one call at a time for a credential DeepCall has not
    accepted yet, known-invalid ones refused, new ones limited per client
    address), the credential's rate limit, an upstream slot (the caller's fair
    share), then the circuit breaker and budgeted retries (``call_with_retries``).
    A refusal by any of them is raised without calling the upstream, and counted.
    """

    def __init__(
        self, client: UpstreamClient, guards: Guards, metrics: Metrics | None = None
    ) -> None:
        self._client = client
        self.guards = guards
        self._metrics = metrics

    async def report_count(
        self, credential: Credential, query: CountQuery, *, principal: bytes, address: str
    ) -> int:
        """Like ``UpstreamClient.report_count``, within the deadline and the guards.

        ``principal`` is the HMAC of ``credential`` (the key every guard divides
        by) and ``address`` the client's (``gateway.http.callers``).
        """
        guards = self.guards
        attempt = functools.partial(self._client.report_count, credential, query)
        try:
            ledger = guards.ledger
            taken = None if ledger.knows(principal) else await ledger.admit(principal, address)
            try:
                guards.rate_limiter.take(principal)
                # The slot is held across retries: waiting for one is not the upstream's
                # fault, so it must not run down a try's timeout and count against the breaker.
                async with guards.limiter.slot(principal):
                    count = await call_with_retries(
                        attempt,
                        caller=principal,
                        policy=guards.policy,
                        budget=guards.budget,
                        breaker=guards.breaker,
                        deadline=guards.deadline,
                        try_timeout=guards.try_timeout,
                        clock=guards.clock,
                        bounded=self._client.bounds_itself,
                    )
            except BaseException as exc:
                ledger.settle(principal, taken, exc)
                raise
        except GatewayError as exc:
            if exc.refusal is not None and self._metrics is not None:
                self._metrics.observe_refusal(exc)
            raise
        ledger.settle(principal, taken, None)
        return count
