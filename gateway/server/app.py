"""``create_app(settings)``: the Starlette application and the lifespan that owns its client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
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
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from gateway.api import create_schema
from gateway.config import Settings
from gateway.http import (
    ASSETS,
    ASSETS_PATH,
    CREDENTIAL_HEADERS,
    REQUEST_ID_HEADER,
    SSID_HEADER,
    Callers,
    GraphQLEndpoint,
    LiveSocket,
    PersistedDocuments,
    PostShortcut,
    TrustedProxies,
)
from gateway.observe import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.observe import Metrics, tracing
from gateway.server.services import serving

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
            async with serving(
                settings, upstream_transport, base_url, clock, metrics, tracer
            ) as services:
                app.state.services = dataclasses.replace(services, example_headers=example_headers)
                app.state.loop = asyncio.get_running_loop()
                app.state.ready = True
                try:
                    yield
                finally:
                    app.state.ready = False

    callers = _callers(settings)
    app = Starlette(
        routes=_routes(settings, callers), middleware=_middleware(settings), lifespan=lifespan
    )
    # Replay hits answered by the server itself (gateway.server.protocol), same as the app would.
    app.state.shortcut = PostShortcut(app.state, callers, cross_origin=bool(settings.cors_origins))
    app.state.ready = False
    app.state.metrics = metrics
    # Set by the server on SIGTERM/SIGINT, before the drain (begin_drain, gateway.server.runtime).
    app.state.draining = False
    return app


def begin_drain(app: Starlette) -> None:
    """Stop being ready (``/readyz`` 503) and end every live stream, so clients go elsewhere.

    Safe to call from a signal handler: the streams end on the serving loop.
    """
    app.state.draining = True
    services = getattr(app.state, "services", None)
    loop = getattr(app.state, "loop", None)
    if services is not None and services.live is not None and loop is not None:
        loop.call_soon_threadsafe(services.live.shutdown)


def _routes(settings: Settings, callers: Callers) -> list[BaseRoute]:
    """``/graphql``, GraphiQL's files, the probes and the metrics, as ``settings`` enable them."""
    endpoint = GraphQLEndpoint(create_schema(), settings, callers, _persisted(settings))
    socket = LiveSocket(settings, callers, endpoint.subscriptions)
    return [
        Route("/graphql", endpoint.handle, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", socket.handle),
        # GraphiQL's files, from the package itself (no CDN, no network).
        *([Mount(ASSETS_PATH, StaticFiles(directory=ASSETS))] if settings.graphiql else []),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *([Route("/metrics", metrics_endpoint, methods=["GET"])] if settings.metrics else []),
    ]


def _middleware(settings: Settings) -> list[Middleware]:
    """CORS for ``GATEWAY_CORS_ORIGINS``, if any."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["POST", "GET"],
            allow_headers=["Content-Type", REQUEST_ID_HEADER, *CREDENTIAL_HEADERS],
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
    ]


def _persisted(settings: Settings) -> PersistedDocuments:
    """The trusted documents of ``GATEWAY_PERSISTED_DOCUMENTS`` and the APQ store."""
    listed = settings.listed_documents
    if listed:
        logger.info(
            "%d persisted documents listed%s",
            len(listed),
            "; only they may run" if settings.persisted_only else "",
        )
    return PersistedDocuments(
        listed, persisted_only=settings.persisted_only, maxsize=settings.apq_cache
    )


def _callers(settings: Settings) -> Callers:
    """Who is calling: credentials keyed by the configured secret (or one of this process)."""
    secret = settings.cache_key_secret
    key = str(secret).encode() if secret else secrets.token_bytes(32)
    return Callers(key, TrustedProxies(settings.trusted_proxies))


def _embedded_simulator(
    owned: contextlib.ExitStack,
) -> tuple[httpx.AsyncBaseTransport, dict[str, str]]:
    from gateway.simulator import DEMO_CREDENTIALS, Simulator, create_simulator_app

    simulator = owned.enter_context(Simulator())
    logger.warning(
        "Serving DEMO DATA from the embedded simulator (GATEWAY_UPSTREAM_URL=embedded, "
        "the default): set it to DeepCall's base URL to serve real counts"
    )
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
