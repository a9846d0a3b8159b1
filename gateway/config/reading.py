"""Reading setting values from text: each a cast that raises ValueError saying what it expects.

``Reader`` collects every problem instead of stopping at the first, so that
start-up can report them all at once.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfoNotFoundError

from starlette.config import Config
from starlette.datastructures import Secret

EMBEDDED = "embedded"
T = TypeVar("T")


def lower(value: str) -> str:
    return value.strip().lower()


class Reader:
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


def upstream_url(value: str) -> None:
    if value == EMBEDDED:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected 'embedded' or an http(s):// base URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("the base URL must not carry a query, fragment or user info")


def redis_url(value: str) -> None:
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected redis://host:6379/0, rediss://… or unix://…")


def proxy(value: str) -> Secret | None:
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


def ca_file(path: str) -> None:
    if path:
        ssl.create_default_context(cafile=path)


def origins(value: str) -> tuple[str, ...]:
    origins = tuple(item.strip() for item in value.split(",") if item.strip())
    for origin in origins:
        parts = urlsplit(origin)
        extras = parts.path or parts.query or parts.fragment or parts.username
        if parts.scheme not in ("http", "https") or not parts.hostname or extras:
            raise ValueError(f"{origin!r} is not an origin like https://dash.example.com")
    return origins


def networks(value: str) -> tuple[str, ...]:
    networks = tuple(item.strip() for item in value.split(",") if item.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not an address or CIDR like 10.0.0.0/8") from None
    return networks


def log_format(value: str) -> str:
    format = value.strip().lower()
    if format not in ("text", "json"):
        raise ValueError("expected text or json")
    return format


def log_level(value: str) -> str:
    level = value.upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level
