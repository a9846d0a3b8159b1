"""The shared services of one process, built around its one upstream transport."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from gateway.api import LiveCounts, Services
from gateway.cache import CountCache, ResponseCache, SharedTier, TtlPolicy
from gateway.config import Settings
from gateway.fleet import FleetLimits, RedisLink
from gateway.limits import ConcurrencyLimiter, RateLimiter
from gateway.observe import Metrics
from gateway.transport import transport_for
from gateway.upstream import (
    MAX_RESPONSE_BYTES,
    CircuitBreaker,
    CredentialLedger,
    GuardedClient,
    Guards,
    RetryBudgets,
    RetryPolicy,
    UpstreamClient,
)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    base_url: str,
    clock: Callable[[], float],
    metrics: Metrics,
    tracer: Any,
) -> AsyncIterator[Services]:
    """The services for ``settings``, open while the context is (the transport, Redis)."""
    if transport is None:
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
            keepalive_expiry=settings.upstream_keepalive,
        )
        proxy = settings.upstream_proxy
        transport = transport_for(
            limits,
            MAX_RESPONSE_BYTES,
            proxy=str(proxy) if proxy is not None else None,
            ca_file=settings.upstream_ca_file,
        )
    async with transport, contextlib.AsyncExitStack() as owned:
        shared = fleet = None
        if settings.redis_url:
            link = RedisLink.from_url(settings.redis_url, on_error=metrics.shared_errors.inc)
            owned.push_async_callback(link.aclose)
            shared = SharedTier(
                link,
                stale=settings.cache_stale,
                lock_seconds=settings.upstream_deadline + 1,
                timer=clock,
            )
            fleet = FleetLimits(
                link,
                rate=settings.rate_limit,
                burst=settings.rate_burst,
                new_per_minute=settings.new_credentials_per_minute,
                invalid_ttl=settings.invalid_credential_ttl,
                # A trial's held token outlives the trial by a second at most, if its replica dies.
                hold_seconds=settings.upstream_deadline + 1,
                on_local=metrics.fleet_local.inc,
            )
        guards = _guards(settings, clock, fleet)
        metrics.watch_breaker(guards.breaker)
        metrics.watch_limiter(guards.limiter)
        cache = CountCache(
            settings.cache_maxsize,
            settings.cache_ttl,
            stale=settings.cache_stale,
            timer=clock,
            observe=metrics.observe_cache,
            shared=shared,
        )
        client = UpstreamClient(transport, base_url, metrics, settings.upstream_timeout, tracer)
        services = Services(
            settings=settings,
            upstream=GuardedClient(client, guards, metrics),
            cache=cache,
            ttl=TtlPolicy(
                settings.cache_ttl,
                settle=settings.cache_settle,
                settled=settings.cache_ttl_settled,
                zone=settings.zone,
                clock=clock,
            ),
            metrics=metrics,
            responses=ResponseCache(cache, maxsize=settings.response_cache),
            tracer=tracer,
        )
        live = LiveCounts(services)
        owned.callback(live.close)
        yield dataclasses.replace(services, live=live)


def _guards(settings: Settings, clock: Callable[[], float], fleet: FleetLimits | None) -> Guards:
    """One of each guard towards the upstream, as ``settings`` size them."""
    return Guards(
        ledger=CredentialLedger(
            settings.new_credentials_per_minute,
            settings.invalid_credential_ttl,
            # A trial waits for a neighbour's held token no longer than its own call could take.
            reserve_wait=settings.upstream_deadline,
            fleet=fleet,
            clock=clock,
        ),
        rate_limiter=RateLimiter(settings.rate_limit, settings.rate_burst, clock=clock),
        fleet=fleet,
        limiter=ConcurrencyLimiter(
            settings.upstream_concurrency,
            settings.upstream_queue,
            settings.upstream_queue_timeout,
            per_caller=settings.upstream_caller_concurrency,
        ),
        breaker=CircuitBreaker(
            failure_rate=settings.breaker_failure_rate,
            min_calls=settings.breaker_min_calls,
            window=settings.breaker_window,
            cooldown=settings.breaker_cooldown,
            clock=clock,
        ),
        budget=RetryBudgets(),
        policy=RetryPolicy(max_retries=settings.upstream_retries),
        # The deadline stays on real time: it races real socket timeouts.
        deadline=settings.upstream_deadline,
        try_timeout=settings.upstream_timeout,
    )
