"""Settings, read once from the environment and validated at start-up.

``Settings.from_environ(mapping)`` takes any mapping, so tests pass plain dicts
and never touch ``os.environ``. Every bad value is reported on a line of its
own in one ``SettingsError``; the service does not start with any of them.
Each field's docstring is its entry in the generated reference (``docs/settings.md``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import Secret

from gateway.config import reading
from gateway.config.manifest import load_manifest
from gateway.config.reading import EMBEDDED
from gateway.config.together import check_together, follow_given


class SettingsError(ValueError):
    """One or more settings are invalid; ``str()`` has one line per problem."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told from its environment: ``GATEWAY_<FIELD>``."""

    upstream_url: str = EMBEDDED
    """Base URL of the DeepCall host (the gateway appends `/api/v2/CallReport/reportCount`);
    `embedded` runs the built-in simulator with demo data.
    """
    upstream_tz: str = "Asia/Kolkata"
    """The upstream's time zone (IANA name)."""
    upstream_timeout: float = 5.0
    """Seconds for one try, as a whole (waiting for a pooled connection, connecting, sending,
    reading); by default at most `GATEWAY_UPSTREAM_DEADLINE`.
    """
    upstream_deadline: float = 12.0
    """Seconds for one field's upstream call, retries included; by default at least
    `GATEWAY_UPSTREAM_TIMEOUT`.
    """
    upstream_retries: int = 2
    """Extra tries for transient failures (1009, 1010, connection errors, timeouts), full-jitter
    backoff, within a retry budget of 20% of first tries (one caller may spend at most half of
    its reserve).
    """
    upstream_max_connections: int = 100
    """Connection pool size towards the upstream; by default at least
    `GATEWAY_UPSTREAM_CONCURRENCY`.
    """
    upstream_keepalive: float = 60.0
    """Seconds an idle upstream connection is kept for reuse (less when the upstream's
    `Keep-Alive: timeout=N` says so: N - 1); `0` opens one per call.
    """
    upstream_concurrency: int = 100
    """Upstream calls in flight at once, whole process: at most
    `GATEWAY_UPSTREAM_MAX_CONNECTIONS`, so that no call queues for a connection (by default
    100 within that, raised to `GATEWAY_UPSTREAM_CALLER_CONCURRENCY` when that is set higher).
    """
    upstream_caller_concurrency: int = 64
    """Upstream calls one credential may have in flight at once; below the whole process's, so
    that one caller's calls that hang cannot hold every slot (by default 64, and at most two
    thirds of `GATEWAY_UPSTREAM_CONCURRENCY`).
    """
    upstream_queue: int = 256
    """Calls that may wait for a slot, all callers together; each caller waits in its own queue
    and free slots go round the queues; when it is full, a newcomer displaces the newest
    waiter of the longest queue, or is refused (`UPSTREAM_UNAVAILABLE`).
    """
    upstream_queue_timeout: float = 1.0
    """Seconds a call may wait for a slot."""
    upstream_proxy: Secret | None = None
    """`http://[user:password@]host:port`: a forward proxy for every upstream call; the
    environment's `HTTP(S)_PROXY` are never read. Hidden in logs and settings errors.
    """
    upstream_ca_file: str = ""
    """A PEM file of the certificate authorities to trust for an https upstream, instead of
    certifi's (a private CA).
    """
    breaker_failure_rate: float = 0.5
    """Share of calls failing (timeouts, 1009, 1010, unreachable; a call with its retries counts
    once) that opens a circuit.
    """
    breaker_min_calls: int = 20
    """Calls within the window before a circuit may open: for one caller's own circuit, that
    caller's; for the upstream's, all callers' but the one with the most failures.
    """
    breaker_window: float = 10.0
    """Seconds of calls a circuit judges."""
    breaker_cooldown: float = 10.0
    """Seconds an open circuit fails fast before letting one probe through."""
    cache_ttl: float = 15.0
    """Seconds a successful count is served from cache."""
    cache_settle: float = 3600.0
    """Seconds after which a window's end counts as settled."""
    cache_ttl_settled: float = 86_400.0
    """Seconds a settled window's count is cached."""
    cache_stale: float = 300.0
    """Seconds past the TTL an entry is kept to be served, with a `STALE_DATA` warning, when the
    upstream fails transiently.
    """
    cache_maxsize: int = 10_000
    """Entries in the cache at most."""
    cache_key_secret: Secret | None = None
    """HMAC key for cache keys (default: random per process); the same on every replica that
    shares Redis.
    """
    redis_url: str = ""
    """`redis://host:6379/0`: the shared second cache tier."""
    rate_limit: float = 50.0
    """Upstream calls per second per credential (cache hits and shared calls are free); `0` =
    unlimited.
    """
    rate_burst: float = 100.0
    """Calls a credential may make at once before the rate applies."""
    new_credentials_per_minute: float = 30.0
    """Credentials DeepCall rejects (1014, 1000) that one client address may try per minute; past
    it, new credentials from that address are `RATE_LIMITED` without a call; `0` turns it off.
    """
    invalid_credential_ttl: float = 10.0
    """Seconds a credential DeepCall answered 1014 is refused without asking again."""
    trusted_proxies: tuple[str, ...] = ()
    """Comma-separated addresses or CIDRs of proxies in front of the gateway: from them, the
    client's address is the right-most untrusted entry of `X-Forwarded-For`; otherwise the TCP
    peer's.
    """
    max_aliases: int = 50
    """Aliases per document, counted through fragment spreads."""
    max_depth: int = 15
    """Selection depth, through fragments."""
    max_tokens: int = 2_000
    """Lexical tokens per document."""
    max_directives: int = 50
    """Directives per document (and at most 4 on one selection)."""
    max_header_bytes: int = 64 * 1024
    """Size of a request's head (request line and headers): a larger one is answered 431."""
    header_timeout: float = 10.0
    """Seconds a request's head may take to arrive; past them it is answered 408."""
    body_timeout: float = 30.0
    """Seconds a request's body may take to arrive; past them it is answered 408."""
    max_body_bytes: int = 256 * 1024
    """Request body size, enforced while it streams in (413 past it)."""
    max_batch: int = 10
    """Operations in one JSON array (Apollo BatchHttpLink)."""
    max_fanout: int = 100
    """Upstream calls one HTTP request may cause, all operations of a batch together."""
    max_buckets: int = 400
    """Buckets in one `callCountSeries`."""
    document_cache: int = 512
    """Parsed and validated documents remembered by their text, and as many document shapes (a
    document with its literal values set aside).
    """
    apq_cache: int = 1000
    """Documents registered by automatic persisted queries, kept at most (each at most 32 KiB)."""
    persisted_documents: str = ""
    """Path of the trusted documents (Apollo manifest or `{id: body}` map); listed ones run by
    id.
    """
    persisted_only: bool = False
    """Run listed documents only (needs `GATEWAY_PERSISTED_DOCUMENTS`): the safelist production
    frontends use.
    """
    response_cache: int = 4096
    """Whole answers remembered for replay while every count in them is fresh."""
    request_concurrency: int = 16
    """Upstream calls one HTTP request may have in flight at once."""
    allow_get: bool = False
    """Execute queries sent as `GET /graphql?query=…` (off: CSRF, and filters in access logs)."""
    graphiql: bool = True
    """Serve GraphiQL on `GET /graphql`."""
    introspection: bool = True
    """Allow introspection (off also turns off field suggestions)."""
    compiled_plans: bool = True
    """Run operations of `callCount` fields as compiled plans, without graphql-core's executor
    (the same answers; off: every operation runs through graphql-core).
    """
    cors_origins: tuple[str, ...] = ()
    """Comma-separated origins allowed by CORS, e.g. `https://dash.example.com`; preflights are
    cached 10 minutes.
    """
    live_min_every: float = 5.0
    """Seconds: the shortest `every` a `watch` subscription may ask; a shorter one is raised to
    it.
    """
    live_heartbeat: float = 15.0
    """Seconds between heartbeats on a quiet stream: an SSE comment, a multipart `{}`, a
    WebSocket ping (`deepcall-gateway serve`).
    """
    live_max_lifetime: float = 3600.0
    """Seconds a stream lives (over a WebSocket: the connection) before the gateway ends it, so
    that the client subscribes again with its current credentials.
    """
    live_streams: int = 10_000
    """Open streams in the process, every transport and caller together."""
    live_streams_per_credential: int = 100
    """Open streams of one credential (at most `GATEWAY_LIVE_STREAMS`)."""
    live_streams_per_connection: int = 50
    """Subscriptions open at once on one WebSocket."""
    live_pollers: int = 10_000
    """Distinct questions polled at once in the process (one poller per credential and
    question, however many streams ask it).
    """
    live_pollers_per_credential: int = 500
    """Distinct questions one credential's streams may have polled at once."""
    live_poll_rate: float | None = None
    """Upstream polls per second one credential's pollers may cause together (a poller every
    10 s counts 0.1); a stream that would pass it is `RATE_LIMITED`. Default half of
    `GATEWAY_RATE_LIMIT` (the other half stays for its queries); unlimited when that is `0`.
    """
    log_level: str = "INFO"
    """`DEBUG`, `INFO`, `WARNING`, `ERROR`."""
    log_format: str = "text"
    """`text`, or `json` for one JSON object per line."""
    metrics: bool = True
    """Serve Prometheus metrics on `/metrics`."""
    otel: bool = False
    """Export OpenTelemetry traces over OTLP/HTTP, configured by the standard `OTEL_*` variables
    (needs the `otel` extra).
    """
    workers: int = 1
    """Server processes (uvicorn workers); each has its own caches and limits."""
    env: str = "development"
    """`production` refuses to start on the embedded simulator unless
    `GATEWAY_UPSTREAM_URL=embedded` is set explicitly.
    """
    shutdown_timeout: int = 20
    """Seconds in-flight requests get to finish on shutdown."""
    drain_seconds: float = 0.0
    """On SIGTERM, seconds to keep serving with `/readyz` at 503 before refusing new connections."""

    @property
    def embedded(self) -> bool:
        """True when the built-in simulator stands in for the upstream."""
        return self.upstream_url == EMBEDDED

    @property
    def zone(self) -> ZoneInfo:
        """The upstream's time zone."""
        return ZoneInfo(self.upstream_tz)

    @functools.cached_property
    def listed_documents(self) -> dict[str, str]:
        """The trusted documents of ``persisted_documents`` by id, read once; ValueError if bad."""
        return load_manifest(self.persisted_documents) if self.persisted_documents else {}

    @property
    def live_poll_budget(self) -> float:
        """Upstream polls per second one credential's pollers may cause; 0 for unlimited."""
        if self.live_poll_rate is not None:
            return self.live_poll_rate
        return self.rate_limit / 2

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``GATEWAY_*`` keys from ``environ``; raise SettingsError listing every bad one."""
        reader = reading.Reader(environ)
        default = cls()
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = f"GATEWAY_{field.name.upper()}"
            fallback = getattr(default, field.name)
            if field.name in RANGES:
                low, high = RANGES[field.name]
                values[field.name] = reader.number(key, type(fallback), fallback, low, high)
            else:
                cast = _CASTS.get(field.name, type(fallback))
                values[field.name] = reader.get(key, cast, fallback, hidden=field.name in _HIDDEN)
        reader.check("GATEWAY_UPSTREAM_URL", reading.upstream_url, values["upstream_url"])
        reader.check("GATEWAY_UPSTREAM_TZ", ZoneInfo, values["upstream_tz"])
        reader.check("GATEWAY_REDIS_URL", reading.redis_url, values["redis_url"])
        reader.check("GATEWAY_UPSTREAM_CA_FILE", reading.ca_file, values["upstream_ca_file"])
        if values["persisted_only"] and not values["persisted_documents"]:
            reader.fail(
                "GATEWAY_PERSISTED_ONLY needs GATEWAY_PERSISTED_DOCUMENTS: the file of the "
                "documents that may run"
            )
        if not reader.problems:
            given = {
                f.name for f in dataclasses.fields(cls) if f"GATEWAY_{f.name.upper()}" in environ
            }
            check_together(reader, values, follow_given(values, given))
        for old, new in _REPLACED.items():
            if old in environ:
                reader.fail(f"{old} is no longer read: {new}")
        if (
            values["env"] == "production"
            and values["upstream_url"] == EMBEDDED
            and "GATEWAY_UPSTREAM_URL" not in environ
        ):
            reader.fail(
                "GATEWAY_UPSTREAM_URL is not set and GATEWAY_ENV is production: set the "
                "upstream's base URL (or 'embedded' to serve demo data on purpose)"
            )
        settings = cls(**values)
        if settings.persisted_documents:
            reader.check(
                "GATEWAY_PERSISTED_DOCUMENTS",
                lambda _: settings.listed_documents,
                settings.persisted_documents,
            )
        if reader.problems:
            raise SettingsError("\n".join(reader.problems))
        return settings


# Numeric settings and their allowed ranges (inclusive).
RANGES: dict[str, tuple[float, float]] = {
    "upstream_timeout": (0.01, 300),
    "upstream_deadline": (0.01, 900),
    "upstream_retries": (0, 5),
    "upstream_max_connections": (1, 10_000),
    "upstream_keepalive": (0, 3600),
    "upstream_concurrency": (1, 10_000),
    "upstream_caller_concurrency": (1, 10_000),
    "upstream_queue": (0, 100_000),
    "upstream_queue_timeout": (0, 60),
    "breaker_failure_rate": (0.01, 1),
    "breaker_min_calls": (1, 100_000),
    "breaker_window": (1, 3600),
    "breaker_cooldown": (0.1, 3600),
    "cache_ttl": (0, 86_400),
    "cache_settle": (0, 30 * 86_400),
    "cache_ttl_settled": (0, 30 * 86_400),
    "cache_stale": (0, 86_400),
    "cache_maxsize": (1, 10_000_000),
    "rate_limit": (0, 1_000_000),
    "rate_burst": (1, 1_000_000),
    "new_credentials_per_minute": (0, 1_000_000),
    "invalid_credential_ttl": (0, 3600),
    "max_aliases": (1, 1000),
    "max_depth": (1, 100),
    "max_tokens": (10, 100_000),
    "max_directives": (0, 1000),
    "max_body_bytes": (1024, 16 * 1024 * 1024),
    "max_header_bytes": (4 * 1024, 1024 * 1024),
    "header_timeout": (0.1, 300),
    "body_timeout": (0.1, 3600),
    "max_batch": (1, 100),
    "max_fanout": (1, 10_000),
    "max_buckets": (1, 10_000),
    "document_cache": (1, 100_000),
    "apq_cache": (1, 1_000_000),
    "response_cache": (1, 1_000_000),
    "request_concurrency": (1, 1000),
    "shutdown_timeout": (0, 3600),
    "drain_seconds": (0, 600),
    "workers": (1, 64),
    "live_min_every": (1, 3600),
    "live_heartbeat": (0.1, 300),
    "live_max_lifetime": (1, 7 * 86_400),
    "live_streams": (1, 1_000_000),
    "live_streams_per_credential": (1, 1_000_000),
    "live_streams_per_connection": (1, 10_000),
    "live_pollers": (1, 1_000_000),
    "live_pollers_per_credential": (1, 1_000_000),
}


# Settings whose values a problem line must not repeat.
_HIDDEN = frozenset({"cache_key_secret", "upstream_proxy"})


# Settings that once existed, and what replaced them: set, they stop start-up.
_REPLACED: dict[str, str] = {
    "GATEWAY_BREAKER_THRESHOLD": (
        "the breaker now opens on a failure rate, see GATEWAY_BREAKER_FAILURE_RATE, "
        "GATEWAY_BREAKER_MIN_CALLS and GATEWAY_BREAKER_WINDOW"
    ),
}


# Settings whose values need more than their default's type to read.
_CASTS: dict[str, Callable[[Any], Any]] = {
    "cache_key_secret": Secret,
    "upstream_proxy": reading.proxy,
    "cors_origins": reading.origins,
    "trusted_proxies": reading.networks,
    "log_level": reading.log_level,
    "log_format": reading.log_format,
    "env": reading.lower,
    "live_poll_rate": float,
}
