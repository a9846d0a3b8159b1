"""Per-request context: the caller's credential and the loader that counts for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.cache import CacheKey, CountCache, Counted, KeyMaker
from gateway.config import Settings
from gateway.errors import (
    BadUserInputError,
    GatewayError,
    UnauthenticatedError,
)
from gateway.metrics import Metrics
from gateway.responses import ResponseCache
from gateway.throttle import ConcurrencyLimiter
from gateway.upstream import CountQuery, Credential, GuardedClient

SSID_HEADER = "X-DeepCall-SSID"
USER_ID_HEADER = "X-DeepCall-User-Id"
TOKEN_HEADER = "X-DeepCall-Token"  # noqa: S105 (a header name)
CREDENTIAL_HEADERS = (SSID_HEADER, USER_ID_HEADER, TOKEN_HEADER)
MAX_CREDENTIAL_CHARS = 512


@dataclass(frozen=True)
class Services:
    """What the app's lifespan builds once and every request shares."""

    settings: Settings
    upstream: GuardedClient
    cache: CountCache
    keys: KeyMaker
    metrics: Metrics
    responses: ResponseCache
    #: Wall-clock seconds since the epoch (injected by tests).
    clock: Callable[[], float] = time.time
    #: An OpenTelemetry tracer when GATEWAY_OTEL is on.
    tracer: Any = None
    # Prefills GraphiQL's headers tab (the demo credential when serving demo data).
    example_headers: dict[str, str] | None = None


def credential_from_headers(headers: Mapping[str, str]) -> Credential:
    """The credential in ``headers``; raises the designed error for none, half or both forms."""
    ssid, user_id, token = (headers.get(name, "").strip() for name in CREDENTIAL_HEADERS)
    if not (ssid or user_id or token):
        raise UnauthenticatedError(
            f"No credentials: send {SSID_HEADER}, or {USER_ID_HEADER} with {TOKEN_HEADER}"
        )
    if ssid and (user_id or token):
        raise BadUserInputError(
            f"Send either {SSID_HEADER} or {USER_ID_HEADER} with {TOKEN_HEADER}, not both"
        )
    if not ssid and not (user_id and token):
        raise BadUserInputError(f"{USER_ID_HEADER} and {TOKEN_HEADER} must be sent together")
    if max(len(ssid), len(user_id), len(token)) > MAX_CREDENTIAL_CHARS:
        raise BadUserInputError(f"Credential headers are limited to {MAX_CREDENTIAL_CHARS} chars")
    if ssid:
        return Credential(ssid=ssid)
    return Credential(user_id=user_id, token=token)


@dataclass(frozen=True)
class Caller:
    """Who sent a request, worked out once: the credential (or why there is none), its HMAC,
    and the client's address (``gateway.callers``; never logged)."""

    credential: Credential | GatewayError
    principal: bytes | None = None
    address: str = ""

    @classmethod
    def identify(cls, keys: KeyMaker, headers: Mapping[str, str], address: str = "") -> Caller:
        """The caller behind ``headers``, on a request from ``address``."""
        try:
            credential = credential_from_headers(headers)
        except GatewayError as exc:
            return cls(exc, address=address)
        return cls(credential, keys.principal(credential), address)


class FanoutExceededError(BadUserInputError):
    """The request would cause more upstream calls than one request may."""


class RequestBudget:
    """What one HTTP request may spend, shared by all its operations and fields."""

    def __init__(self, fanout: int, concurrency: int) -> None:
        self.fanout = fanout
        self.upstream_calls = 0
        self.cache_hits = 0
        # Never refuses (the fan-out budget bounds the waiters); waits as long as it takes.
        self.slots = ConcurrencyLimiter(concurrency, max_waiting=fanout, wait_timeout=math.inf)
        #: Every count the request's answer is made of, for gateway.responses.
        self.served: list[tuple[CacheKey, int]] = []
        self.replayable = True

    def ensure_room(self, calls: int) -> None:
        """Refuse, before any call, work that would need more than the budget left."""
        if self.upstream_calls + calls > self.fanout:
            raise FanoutExceededError(
                f"This needs up to {calls} upstream calls; the request may make "
                f"{self.fanout - self.upstream_calls} more"
            )

    def charge(self) -> None:
        """Count one upstream call of this request, or refuse it past the fan-out budget."""
        if self.upstream_calls >= self.fanout:
            raise FanoutExceededError(
                f"This request reached its budget of {self.fanout} upstream calls"
            )
        self.upstream_calls += 1


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

    def ttl_for(self, query: CountQuery) -> float:
        """How long to cache ``query``'s count: long once its window ended an hour ago.

        A window whose end lies further back than ``GATEWAY_CACHE_SETTLE`` no
        longer changes in practice; one touching the present may.
        """
        settings = self.services.settings
        if query.until is None:
            return settings.cache_ttl
        try:
            end = dt.datetime.fromisoformat(query.until).replace(tzinfo=settings.zone)
        except ValueError:
            return settings.cache_ttl
        settled = end.timestamp() < self.services.clock() - settings.cache_settle
        return settings.cache_ttl_settled if settled else settings.cache_ttl

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
        return services.cache.get_or_start(key, fetch, self.ttl_for(query), served)

    def _served(self, key: CacheKey, path: list[str | int], counted: Counted) -> int:
        """Note where ``counted`` came from (for the log, replay and warnings); its value."""
        budget = self.budget
        if counted.source == "hit":
            budget.cache_hits += 1
        if counted.stale_age is None:
            budget.served.append((key, counted.value))
        else:
            budget.replayable = False
            self.warnings.append(
                {
                    "path": path,
                    "code": "STALE_DATA",
                    "message": "DeepCall failed; this value is from the cache, past its TTL",
                    "ageSeconds": round(counted.stale_age, 1),
                }
            )
        return counted.value
