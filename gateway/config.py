"""Settings, read once from the environment and validated at start-up.

``Settings.from_environ(mapping)`` takes any mapping, so tests pass plain dicts
and never touch ``os.environ``. Every bad value is reported on a line of its
own in one ``SettingsError``; the service does not start with any of them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.config import Config
from starlette.datastructures import Secret

EMBEDDED = "embedded"
T = TypeVar("T")


class SettingsError(ValueError):
    """One or more settings are invalid; ``str()`` has one line per problem."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told from its environment."""

    upstream_url: str = EMBEDDED
    upstream_tz: str = "Asia/Kolkata"
    upstream_timeout: float = 5.0
    upstream_max_connections: int = 100
    cache_ttl: float = 15.0
    cache_maxsize: int = 10_000
    cache_key_secret: Secret | None = None
    max_aliases: int = 50
    request_concurrency: int = 16
    graphiql: bool = True
    introspection: bool = True
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    environment: str = "development"
    shutdown_timeout: int = 20

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
        values: dict[str, Any] = {
            "upstream_url": reader.get("GATEWAY_UPSTREAM_URL", str, default.upstream_url),
            "upstream_tz": reader.get("GATEWAY_UPSTREAM_TZ", str, default.upstream_tz),
            "upstream_timeout": reader.number(
                "GATEWAY_UPSTREAM_TIMEOUT", float, default.upstream_timeout, 0.01, 300
            ),
            "upstream_max_connections": reader.number(
                "GATEWAY_UPSTREAM_MAX_CONNECTIONS", int, default.upstream_max_connections, 1, 10_000
            ),
            "cache_ttl": reader.number("GATEWAY_CACHE_TTL", float, default.cache_ttl, 0, 86_400),
            "cache_maxsize": reader.number(
                "GATEWAY_CACHE_MAXSIZE", int, default.cache_maxsize, 1, 10_000_000
            ),
            "cache_key_secret": reader.get("GATEWAY_CACHE_KEY_SECRET", Secret, None),
            "max_aliases": reader.number("GATEWAY_MAX_ALIASES", int, default.max_aliases, 1, 1000),
            "request_concurrency": reader.number(
                "GATEWAY_REQUEST_CONCURRENCY", int, default.request_concurrency, 1, 1000
            ),
            "graphiql": reader.get("GATEWAY_GRAPHIQL", bool, default.graphiql),
            "introspection": reader.get("GATEWAY_INTROSPECTION", bool, default.introspection),
            "cors_origins": reader.get("GATEWAY_CORS_ORIGINS", _origins, default.cors_origins),
            "log_level": reader.get("GATEWAY_LOG_LEVEL", _log_level, default.log_level),
            "environment": reader.get("GATEWAY_ENV", str, default.environment).lower(),
            "shutdown_timeout": reader.number(
                "GATEWAY_SHUTDOWN_TIMEOUT", int, default.shutdown_timeout, 0, 3600
            ),
        }
        reader.check("GATEWAY_UPSTREAM_URL", _upstream_url, values["upstream_url"])
        reader.check("GATEWAY_UPSTREAM_TZ", ZoneInfo, values["upstream_tz"])
        if (
            values["environment"] == "production"
            and values["upstream_url"] == EMBEDDED
            and "GATEWAY_UPSTREAM_URL" not in environ
        ):
            reader.fail(
                "GATEWAY_UPSTREAM_URL is not set and GATEWAY_ENV is production: set the "
                "upstream's base URL (or 'embedded' to serve demo data on purpose)"
            )
        if reader.problems:
            raise SettingsError("\n".join(reader.problems))
        return dataclasses.replace(default, **values)


class _Reader:
    """Reads typed values with starlette's Config, collecting problems instead of raising."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._config = Config(environ=environ)
        self.problems: list[str] = []

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def get(self, key: str, cast: Callable[[Any], T], default: T) -> T:
        try:
            value: T | None = self._config(key, cast=cast, default=None)
        except (ValueError, TypeError) as exc:
            raw = self._config(key, default="")
            # starlette re-raises a generic error inside ours; ours says what is expected.
            ours = exc.__context__ if isinstance(exc.__context__, ValueError) else exc
            self.fail(f"{key}={raw!r} is invalid: {_reason(ours)}")
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


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(item.strip() for item in value.split(",") if item.strip())
    for origin in origins:
        parts = urlsplit(origin)
        extras = parts.path or parts.query or parts.fragment or parts.username
        if parts.scheme not in ("http", "https") or not parts.hostname or extras:
            raise ValueError(f"{origin!r} is not an origin like https://dash.example.com")
    return origins


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level
