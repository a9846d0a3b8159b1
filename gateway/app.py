"""``create_app(settings)``: the Starlette application and the lifespan that owns its client."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway import tracing
from gateway.breaker import CircuitBreaker
from gateway.cache import CountCache, KeyMaker
from gateway.callers import CredentialLedger
from gateway.config import Settings
from gateway.context import CREDENTIAL_HEADERS, SSID_HEADER, Services
from gateway.egress import upstream_transport
from gateway.endpoint import GraphQLEndpoint
from gateway.ide import ASSETS as IDE_ASSETS
from gateway.ide import ASSETS_PATH as IDE_ASSETS_PATH
from gateway.logs import configure_logging
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.metrics import Metrics
from gateway.persisted import PersistedDocuments, load_manifest
from gateway.resilience import RetryBudgets, RetryPolicy
from gateway.responses import ResponseCache
from gateway.results import REQUEST_ID_HEADER
from gateway.schema import create_schema
from gateway.shared import SharedTier
from gateway.throttle import ConcurrencyLimiter, RateLimiter
from gateway.upstream import MAX_RESPONSE_BYTES, GuardedClient, Guards, UpstreamClient

logger = logging.getLogger("gateway")

EMBEDDED_BASE_URL = "http://simulator.embedded"


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    tracer_provider: Any = None,
) -> Starlette:
    """The gateway for ``settings``.

    ``transport`` replaces the network (tests hand in ``httpx.MockTransport``);
    ``clock`` (wall-clock seconds since the epoch) drives cache expiry and which
    windows count as settled, the breaker's cool-down and the rate limiter's
    refill (tests hand in a fake one); deadlines stay on real monotonic time.
    ``tracer_provider`` replaces the OTLP exporter when ``GATEWAY_OTEL`` is on.
    """

    metrics = Metrics()
    tracer = None
    if settings.otel:
        tracer = tracing.tracer_from(tracer_provider or tracing.default_provider())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with contextlib.ExitStack() as owned:
            base_url, example_headers, upstream_transport = settings.upstream_url, None, transport
            if settings.embedded and transport is None:
                upstream_transport, example_headers = _embedded_simulator(owned)
                base_url = EMBEDDED_BASE_URL
            async with _serving(
                settings, upstream_transport, base_url, clock, metrics, tracer
            ) as services:
                app.state.services = dataclasses.replace(services, example_headers=example_headers)
                app.state.ready = True
                try:
                    yield
                finally:
                    app.state.ready = False

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["POST", "GET"],
                allow_headers=["Content-Type", REQUEST_ID_HEADER, *CREDENTIAL_HEADERS],
                expose_headers=[REQUEST_ID_HEADER],
                max_age=600,
            )
        )
    app = Starlette(
        routes=[
            Route(
                "/graphql",
                GraphQLEndpoint(create_schema(), settings, _persisted(settings)).handle,
                methods=["GET", "POST"],
            ),
            # GraphiQL's files, from the package itself (no CDN, no network).
            *(
                [Mount(IDE_ASSETS_PATH, StaticFiles(directory=IDE_ASSETS))]
                if settings.graphiql
                else []
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *([Route("/metrics", metrics_endpoint, methods=["GET"])] if settings.metrics else []),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.ready = False
    app.state.metrics = metrics
    # Set by the server on SIGTERM/SIGINT, before the drain (see gateway.cli.GracefulServer).
    app.state.draining = False
    return app


def _persisted(settings: Settings) -> PersistedDocuments:
    """The trusted documents of ``GATEWAY_PERSISTED_DOCUMENTS`` and the APQ store."""
    listed = load_manifest(settings.persisted_documents) if settings.persisted_documents else {}
    if listed:
        logger.info(
            "%d persisted documents listed%s",
            len(listed),
            "; only they may run" if settings.persisted_only else "",
        )
    return PersistedDocuments(
        listed, persisted_only=settings.persisted_only, maxsize=settings.apq_cache
    )


@contextlib.asynccontextmanager
async def _serving(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    base_url: str,
    clock: Callable[[], float],
    metrics: Metrics,
    tracer: Any,
) -> AsyncIterator[Services]:
    """The shared services, around the one upstream transport of this process."""
    limits = httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_connections,
        keepalive_expiry=settings.upstream_keepalive,
    )
    if transport is None:
        # Our own pool, or httpx's through GATEWAY_UPSTREAM_PROXY (gateway.egress).
        transport = upstream_transport(settings, limits, MAX_RESPONSE_BYTES)
    async with transport:
        shared = (
            SharedTier.from_url(
                settings.redis_url,
                stale=settings.cache_stale,
                lock_seconds=settings.upstream_deadline + 1,
                timer=clock,
                on_error=metrics.shared_errors.inc,
            )
            if settings.redis_url
            else None
        )
        secret = settings.cache_key_secret
        guards = Guards(
            ledger=CredentialLedger(
                settings.new_credentials_per_minute, settings.invalid_credential_ttl, clock=clock
            ),
            rate_limiter=RateLimiter(settings.rate_limit, settings.rate_burst, clock=clock),
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
        metrics.watch_breaker(guards.breaker)
        metrics.watch_limiter(guards.limiter)
        try:
            cache = CountCache(
                settings.cache_maxsize,
                settings.cache_ttl,
                stale=settings.cache_stale,
                timer=clock,
                observe=metrics.observe_cache,
                shared=shared,
            )
            yield Services(
                settings=settings,
                upstream=GuardedClient(
                    UpstreamClient(transport, base_url, metrics, settings.upstream_timeout, tracer),
                    guards,
                    metrics,
                ),
                cache=cache,
                responses=ResponseCache(cache, maxsize=settings.response_cache),
                keys=KeyMaker(str(secret).encode() if secret else secrets.token_bytes(32)),
                metrics=metrics,
                clock=clock,
                tracer=tracer,
            )
        finally:
            if shared is not None:
                await shared.aclose()


def app_from_environ() -> Starlette:
    """The app for ``os.environ``: what each of several uvicorn workers builds."""
    from gateway.cli import tune_garbage_collection

    settings = Settings.from_environ(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    tune_garbage_collection()
    return create_app(settings)


def _embedded_simulator(
    owned: contextlib.ExitStack,
) -> tuple[httpx.AsyncBaseTransport, dict[str, str]]:
    from gateway.simulator import DEMO_CREDENTIALS, Simulator, create_simulator_app

    simulator = owned.enter_context(Simulator())
    logger.warning("GATEWAY_UPSTREAM_URL is not set: serving DEMO DATA from the embedded simulator")
    print(simulator.describe_credentials(), flush=True)
    ssid = next(c.ssid for c in DEMO_CREDENTIALS if c.ssid and c.can_list and not c.expired)
    transport = httpx.ASGITransport(app=create_simulator_app(simulator))
    return transport, {SSID_HEADER: ssid}


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition of this process's metrics."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers; never touches the upstream."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the lifespan has built the client and no shutdown signal has come.

    503 from the moment SIGTERM (or SIGINT) arrives, through the drain, so load
    balancers stop routing here while the process still serves what they send.
    """
    state: Any = request.app.state
    if state.ready and not state.draining:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, status_code=503)
