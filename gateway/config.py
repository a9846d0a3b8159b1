"""Settings, read once from the environment and validated at start-up.

``Settings.from_environ(mapping)`` takes any mapping, so tests pass plain dicts
and never touch ``os.environ``. Every bad value is reported on a line of its
own in one ``SettingsError``; the service does not start with any of them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.config import Config
from starlette.datastructures import Secret

from gateway.persisted import load_manifest

EMBEDDED = "embedded"
T = TypeVar("T")


class SettingsError(ValueError):
    """One or more settings are invalid; ``str()`` has one line per problem."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told from its environment: ``GATEWAY_<FIELD>``."""

    upstream_url: str = EMBEDDED
    upstream_tz: str = "Asia/Kolkata"
    upstream_timeout: float = 5.0
    upstream_deadline: float = 12.0
    upstream_retries: int = 2
    upstream_max_connections: int = 100
    upstream_keepalive: float = 60.0
    upstream_concurrency: int = 100
    upstream_caller_concurrency: int = 64
    upstream_queue: int = 256
    upstream_queue_timeout: float = 1.0
    upstream_proxy: Secret | None = None
    upstream_ca_file: str = ""
    breaker_failure_rate: float = 0.5
    breaker_min_calls: int = 20
    breaker_window: float = 10.0
    breaker_cooldown: float = 10.0
    cache_ttl: float = 15.0
    cache_settle: float = 3600.0
    cache_ttl_settled: float = 86_400.0
    cache_stale: float = 300.0
    cache_maxsize: int = 10_000
    cache_key_secret: Secret | None = None
    redis_url: str = ""
    rate_limit: float = 50.0
    rate_burst: float = 100.0
    new_credentials_per_minute: float = 30.0
    invalid_credential_ttl: float = 10.0
    trusted_proxies: tuple[str, ...] = ()
    max_aliases: int = 50
    max_depth: int = 15
    max_tokens: int = 2_000
    max_directives: int = 50
    max_body_bytes: int = 256 * 1024
    max_batch: int = 10
    max_fanout: int = 100
    max_buckets: int = 400
    document_cache: int = 512
    apq_cache: int = 1000
    persisted_documents: str = ""
    persisted_only: bool = False
    response_cache: int = 4096
    request_concurrency: int = 16
    allow_get: bool = False
    graphiql: bool = True
    introspection: bool = True
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_format: str = "text"
    metrics: bool = True
    otel: bool = False
    workers: int = 1
    env: str = "development"
    shutdown_timeout: int = 20
    drain_seconds: float = 0.0

    @property
    def embedded(self) -> bool:
        """True when the built-in simulator stands in for the upstream."""
        return self.upstream_url == EMBEDDED

    @property
    def zone(self) -> ZoneInfo:
        """The upstream's time zone."""
        return ZoneInfo(self.upstream_tz)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read ``GATEWAY_*`` keys from ``environ``; raise SettingsError listing every bad one."""
        reader = _Reader(environ)
        default = cls()
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = f"GATEWAY_{field.name.upper()}"
            fallback = getattr(default, field.name)
            if field.name in _RANGES:
                low, high = _RANGES[field.name]
                values[field.name] = reader.number(key, type(fallback), fallback, low, high)
            else:
                cast = _CASTS.get(field.name, type(fallback))
                values[field.name] = reader.get(key, cast, fallback, hidden=field.name in _HIDDEN)
        reader.check("GATEWAY_UPSTREAM_URL", _upstream_url, values["upstream_url"])
        reader.check("GATEWAY_UPSTREAM_TZ", ZoneInfo, values["upstream_tz"])
        reader.check("GATEWAY_REDIS_URL", _redis_url, values["redis_url"])
        reader.check("GATEWAY_UPSTREAM_CA_FILE", _ca_file, values["upstream_ca_file"])
        if values["persisted_documents"]:
            reader.check(
                "GATEWAY_PERSISTED_DOCUMENTS", load_manifest, values["persisted_documents"]
            )
        elif values["persisted_only"]:
            reader.fail(
                "GATEWAY_PERSISTED_ONLY needs GATEWAY_PERSISTED_DOCUMENTS: the file of the "
                "documents that may run"
            )
        if not reader.problems:
            _check_together(reader, values)
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
        if reader.problems:
            raise SettingsError("\n".join(reader.problems))
        return cls(**values)


# Numeric settings and their allowed ranges (inclusive).
_RANGES: dict[str, tuple[float, float]] = {
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


def _check_together(reader: _Reader, values: Mapping[str, Any]) -> None:
    """Settings that are valid alone but not beside each other."""
    if values["upstream_deadline"] < values["upstream_timeout"]:
        reader.fail("GATEWAY_UPSTREAM_DEADLINE must be at least GATEWAY_UPSTREAM_TIMEOUT")
    if values["upstream_caller_concurrency"] > values["upstream_concurrency"]:
        reader.fail(
            "GATEWAY_UPSTREAM_CALLER_CONCURRENCY must not exceed GATEWAY_UPSTREAM_CONCURRENCY "
            "(keep it below, so that one caller cannot hold every upstream slot)"
        )
    if values["upstream_concurrency"] > values["upstream_max_connections"]:
        reader.fail(
            "GATEWAY_UPSTREAM_CONCURRENCY must not exceed GATEWAY_UPSTREAM_MAX_CONNECTIONS "
            "(calls beyond would wait for a connection, unfairly, within their try's time)"
        )


def _lower(value: str) -> str:
    return value.strip().lower()


class _Reader:
    """Reads typed values with starlette's Config, collecting problems instead of raising."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._config = Config(environ=environ)
        self.problems: list[str] = []

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def get(self, key: str, cast: Callable[[Any], T], default: T, hidden: bool = False) -> T:
        """``key`` read by ``cast``; a ``hidden`` value is never repeated in a problem."""
        try:
            value: T | None = self._config(key, cast=cast, default=None)
        except (ValueError, TypeError) as exc:
            raw = self._config(key, default="")
            # starlette re-raises a generic error inside ours; ours says what is expected.
            ours = exc.__context__ if isinstance(exc.__context__, ValueError) else exc
            shown = f"{key} (value not shown)" if hidden else f"{key}={raw!r}"
            self.fail(f"{shown} is invalid: {_reason(ours)}")
            return default
        return default if value is None else value

    def number(self, key: str, cast: Callable[[Any], T], default: T, low: float, high: float) -> T:
        value = self.get(key, cast, default)
        if not low <= value <= high:  # type: ignore[operator]
            self.fail(f"{key}={value!r} is out of range: expected {low} to {high}")
        return value

    def check(self, key: str, validate: Callable[[str], object], value: str) -> None:
        try:
            validate(value)
        except (ValueError, OSError, ZoneInfoNotFoundError) as exc:
            # OSError: ZoneInfo("America") names a directory of zones.
            self.fail(f"{key}={value!r} is invalid: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    text = str(exc)
    # starlette's own message repeats the key and value; keep only its verdict.
    return text.rsplit(". ", 1)[-1].rstrip(".") if text.startswith("Config '") else text


def _upstream_url(value: str) -> None:
    if value == EMBEDDED:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected 'embedded' or an http(s):// base URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("the base URL must not carry a query, fragment or user info")


def _redis_url(value: str) -> None:
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected redis://host:6379/0, rediss://… or unix://…")


def _proxy(value: str) -> Secret | None:
    # Its messages never quote the value: it may hold the proxy's password.
    text = value.strip()
    if not text:
        return None
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise ValueError("expected http://[user:password@]host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the proxy URL must not carry a path, query or fragment")
    return Secret(text)


def _ca_file(path: str) -> None:
    if path:
        ssl.create_default_context(cafile=path)


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(item.strip() for item in value.split(",") if item.strip())
    for origin in origins:
        parts = urlsplit(origin)
        extras = parts.path or parts.query or parts.fragment or parts.username
        if parts.scheme not in ("http", "https") or not parts.hostname or extras:
            raise ValueError(f"{origin!r} is not an origin like https://dash.example.com")
    return origins


def _networks(value: str) -> tuple[str, ...]:
    networks = tuple(item.strip() for item in value.split(",") if item.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not an address or CIDR like 10.0.0.0/8") from None
    return networks


def _log_format(value: str) -> str:
    format = value.strip().lower()
    if format not in ("text", "json"):
        raise ValueError("expected text or json")
    return format


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


# Settings whose values need more than their default's type to read.
_CASTS: dict[str, Callable[[Any], Any]] = {
    "cache_key_secret": Secret,
    "upstream_proxy": _proxy,
    "cors_origins": _origins,
    "trusted_proxies": _networks,
    "log_level": _log_level,
    "log_format": _log_format,
    "env": _lower,
}
