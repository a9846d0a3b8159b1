"""One operation's view of the gateway, handed to every resolver: who asks, what it may spend."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

from gateway.api.budget import RequestBudget
from gateway.api.services import Services
from gateway.cache import CacheKey, Counted
from gateway.errors import GatewayError
from gateway.model import Caller, CountQuery, Credential


@dataclass
class RequestContext:
    """One operation's view of the gateway, handed to every resolver."""

    services: Services
    request_id: str
    credential: Credential | GatewayError
    budget: RequestBudget
    #: HMAC of the whole credential (None without a usable one).
    principal: bytes | None = None
    #: The client's address, as the guards towards the upstream key it.
    address: str = ""
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(
        cls, services: Services, request_id: str, caller: Caller, budget: RequestBudget
    ) -> RequestContext:
        """A context for an operation of a request by ``caller``.

        Credential problems are kept and surface per field, so introspection
        works without credentials and each field's error has its path.
        """
        return cls(
            services, request_id, caller.credential, budget, caller.principal, caller.address
        )

    async def count(self, query: CountQuery, path: list[str | int]) -> int:
        """``count_soon``, awaited."""
        counted = self.count_soon(query, path)
        return counted if isinstance(counted, int) else await counted

    def count_soon(self, query: CountQuery, path: list[str | int]) -> int | asyncio.Future[int]:
        """The count for ``query`` with this request's credential: cached, shared, bounded.

        A fresh cached count comes at once; otherwise a future of it (see
        ``CountCache.get_or_start`` for why a future). Only a call that starts
        an upstream call pays for it, against the request's fan-out budget and
        the client's rate limit; joining a call in flight or a cache hit is
        free. A stale value adds a warning. The guards towards the upstream
        (``GuardedClient``) decide per call, by credential and client address.
        """
        credential = self.credential
        if isinstance(credential, GatewayError):
            # A fresh instance per field, so tracebacks don't pile up on one object.
            raise type(credential)(credential.message)
        services, budget, address = self.services, self.budget, self.address
        assert self.principal is not None
        key = CacheKey.of(self.principal, query)

        async def fetch() -> int:
            budget.charge()
            async with budget.slots.slot():
                return await services.upstream.report_count(
                    credential, query, principal=key.principal, address=address
                )

        served = functools.partial(self._served, key, path)
        return services.cache.get_or_start(key, fetch, services.ttl.ttl_for(query), served)

    def _served(self, key: CacheKey, path: list[str | int], counted: Counted) -> int:
        """Note where ``counted`` came from (for the log, replay and warnings); its value."""
        budget = self.budget
        if counted.source == "hit":
            budget.cache_hits += 1
        if counted.stale_age is None:
            budget.served.append((key, counted.value))
        else:
            budget.replayable = False
            self.warnings.append(stale_warning(path, counted.stale_age))
        return counted.value


def stale_warning(path: list[str | int], age: float) -> dict[str, Any]:
    """The ``STALE_DATA`` entry of ``extensions.warnings`` for a count ``age`` seconds old."""
    return {
        "path": path,
        "code": "STALE_DATA",
        "message": "DeepCall failed; this value is from the cache, past its TTL",
        "ageSeconds": round(age, 1),
    }
