"""Prometheus metrics: one registry per app, labels from closed sets only.

No label ever carries a credential, a filter value or a user id: request
outcomes are ``ok`` or one of the error codes, upstream results are the
documented upstream codes or a failure kind, cache results one of four words.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Final, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway.errors import (
    REFUSALS,
    GatewayError,
    UpstreamBadResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
DOCUMENTED_CODES: Final = frozenset({1000, 1009, 1010, 1014, 1015, 1047})
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BREAKER_STATES: Final = {"closed": 0, "half_open": 1}  # anything else: 2, open


class Breaker(Protocol):
    """What the metrics read of the circuit breaker (``gateway.upstream.CircuitBreaker``)."""

    @property
    def state(self) -> str: ...
    @property
    def callers_open(self) -> int: ...

    opened_total: int


class Slots(Protocol):
    """What the metrics read of the upstream slots (``gateway.limits.ConcurrencyLimiter``)."""

    @property
    def in_use(self) -> int: ...
    @property
    def waiting(self) -> int: ...


class Live(Protocol):
    """What the metrics read of the live streams (``gateway.api.live.LiveCounts``)."""

    @property
    def feeds(self) -> int: ...
    @property
    def pollers(self) -> Sized: ...
    @property
    def transports(self) -> tuple[str, ...]: ...
    @property
    def end_reasons(self) -> tuple[str, ...]: ...


def upstream_result(error: BaseException | None) -> str:
    """The ``result`` label of one upstream try: ``success``, an upstream code, or a kind."""
    if error is None:
        return "success"
    if isinstance(error, GatewayError) and error.upstream_code is not None:
        code = error.upstream_code
        return str(code) if code in DOCUMENTED_CODES else "unknown_code"
    if isinstance(error, UpstreamTimeoutError):
        return "timeout"
    if isinstance(error, UpstreamUnavailableError):
        return "unavailable"
    if isinstance(error, UpstreamBadResponseError):
        return "bad_response"
    return "cancelled"


class Metrics:
    """Everything the gateway counts, registered in its own ``CollectorRegistry``."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests",
            "HTTP requests to /graphql, by outcome (ok or the first error code)",
            ["outcome"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds",
            "Time to answer a /graphql request, by outcome",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "/graphql requests being answered", registry=registry
        )
        self.upstream_fields = Histogram(
            "gateway_request_upstream_fields",
            "callCount fields (aliases) per request, over all its operations",
            buckets=(0, 1, 2, 5, 10, 20, 50, 100),
            registry=registry,
        )
        self.upstream_calls = Counter(
            "gateway_upstream_calls",
            "Tries of the upstream reportCount, by result (success, upstream code, or failure)",
            ["result"],
            registry=registry,
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_duration_seconds",
            "Time of one upstream try, by result",
            ["result"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache = Counter(
            "gateway_cache_lookups",
            "Count lookups: hit, miss (started an upstream call), join (shared one in flight), "
            "shared (found fresh in the Redis tier)",
            ["result"],
            registry=registry,
        )
        self.stale_served = Counter(
            "gateway_cache_stale_served",
            "Stale counts served because a refresh failed transiently",
            registry=registry,
        )
        self.refusals = Counter(
            "gateway_upstream_refusals",
            "Upstream calls the gateway refused without making them, by reason: rate_limited "
            "(per credential), new_credentials (per client address), invalid_credential (a "
            "1014 remembered), overloaded (no upstream slot), circuit_open (the upstream's "
            "circuit), caller_circuit_open (one caller's circuit)",
            ["reason"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "gateway_breaker_state",
            "The upstream's circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=registry,
        )
        self.breaker_opened = Gauge(
            "gateway_breaker_opened",
            "Times the upstream's circuit breaker has opened",
            registry=registry,
        )
        self.caller_circuits_open = Gauge(
            "gateway_caller_circuits_open",
            "Callers whose own circuit is open now: their questions kept failing",
            registry=registry,
        )
        self.upstream_slots = Gauge(
            "gateway_upstream_slots_in_use",
            "Upstream calls in flight (holding one of GATEWAY_UPSTREAM_CONCURRENCY slots)",
            registry=registry,
        )
        self.upstream_waiting = Gauge(
            "gateway_upstream_waiting",
            "Upstream calls waiting for a slot, all callers' queues together",
            registry=registry,
        )
        self.shared_errors = Counter(
            "gateway_shared_cache_errors",
            "Redis failures (each switches the shared cache and the fleet's limits off for a "
            "few seconds)",
            registry=registry,
        )
        self.fleet_local = Counter(
            "gateway_fleet_limits_local",
            "Upstream calls whose fleet-wide limits were decided by this process alone, "
            "because Redis did not answer",
            registry=registry,
        )
        self._live(registry)
        # Exported at 0 from the start; kept, as labels() costs a lock and a lookup.
        self._cache_children = {
            result: self.cache.labels(result) for result in ("hit", "miss", "join", "shared")
        }
        self._refusal_children = {reason: self.refusals.labels(reason) for reason in REFUSALS}
        self._upstream_children = _LabelledPair(self.upstream_calls, self.upstream_seconds)
        self._request_children = _LabelledPair(self.requests, self.request_seconds)

    def _live(self, registry: CollectorRegistry) -> None:
        """The live counts' metrics: streams, feeds, pollers, polls, events, ends."""
        self.live_streams = Gauge(
            "gateway_live_streams",
            "Open live streams (subscriptions), by transport: websocket, sse, multipart",
            ["transport"],
            registry=registry,
        )
        self.live_feeds = Gauge(
            "gateway_live_feeds",
            "Distinct live subscriptions evaluated (one per credential, document and variables)",
            registry=registry,
        )
        self.live_pollers = Gauge(
            "gateway_live_pollers",
            "Questions polled for live streams (one poller per credential and question)",
            registry=registry,
        )
        self.live_polls = Counter(
            "gateway_live_polls",
            "Polls by live pollers (each a cache lookup; a miss is an upstream call)",
            registry=registry,
        )
        self.live_events = Counter(
            "gateway_live_events",
            "Events sent to live streams, by transport",
            ["transport"],
            registry=registry,
        )
        self.live_ended = Counter(
            "gateway_live_streams_ended",
            "Live streams ended, by transport and reason: complete, client, lifetime, shutdown, "
            "slow (a client that did not read), refused (a limit, a bad document, credentials)",
            ["transport", "reason"],
            registry=registry,
        )

    def observe_cache(self, source: str, lookups: int = 1) -> None:
        """Count cache lookups (hit, miss, join) or stale values served."""
        if source == "stale":
            self.stale_served.inc(lookups)
        else:
            self._cache_children[source].inc(lookups)

    def watch_breaker(self, breaker: Breaker) -> None:
        """Export ``breaker``'s state, read at scrape time."""
        self.breaker_state.set_function(lambda: _BREAKER_STATES.get(breaker.state, 2))
        self.breaker_opened.set_function(lambda: breaker.opened_total)
        self.caller_circuits_open.set_function(lambda: breaker.callers_open)

    def watch_limiter(self, limiter: Slots) -> None:
        """Export the upstream limiter's slots in use and calls waiting, read at scrape time."""
        self.upstream_slots.set_function(lambda: limiter.in_use)
        self.upstream_waiting.set_function(lambda: limiter.waiting)

    def watch_live(self, live: Live) -> None:
        """Export the live feeds and pollers, read at scrape time; streams by transport at 0."""
        self.live_feeds.set_function(lambda: live.feeds)
        self.live_pollers.set_function(lambda: len(live.pollers))
        for transport in live.transports:
            self.live_streams.labels(transport)
            self.live_events.labels(transport)
            for reason in live.end_reasons:
                self.live_ended.labels(transport, reason)

    def observe_refusal(self, error: BaseException) -> None:
        """Count ``error`` if it is one of the gateway's own refusals (see ``gateway.errors``)."""
        refusal = error.refusal if isinstance(error, GatewayError) else None
        if refusal is not None:
            self._refusal_children[refusal].inc()

    def observe_upstream(self, error: BaseException | None, seconds: float) -> None:
        """Count one upstream try and its duration."""
        self._upstream_children.observe(upstream_result(error), seconds)

    def observe_request(self, outcome: str, seconds: float, upstream_fields: int) -> None:
        """Count one answered /graphql request."""
        self._request_children.observe(outcome, seconds)
        self.upstream_fields.observe(upstream_fields)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _LabelledPair:
    """A counter and a histogram labelled alike, each label's children looked up once.

    ``labels()`` takes a lock and builds a key on every call; the label sets here
    are closed and small, so their children are kept.
    """

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        self._counter = counter
        self._histogram = histogram
        self._children: dict[str, tuple[Counter, Histogram]] = {}

    def observe(self, label: str, seconds: float) -> None:
        """Count one event under ``label`` and record its duration."""
        children = self._children.get(label)
        if children is None:
            children = (self._counter.labels(label), self._histogram.labels(label))
            self._children[label] = children
        children[0].inc()
        children[1].observe(seconds)
