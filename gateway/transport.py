"""The upstream connection pool: HTTP/1.1 keep-alive over asyncio, parsed by httptools.

httpx stays the API (``UpstreamClient``, ``MockTransport`` in tests); this is
the transport under it, over ``gateway.connection``. It does one job, a small
request and a small answer on a pooled connection, and does it in a few
microseconds of Python: aiohttp, the transport before it, spent a third of a
cache miss's CPU on request and response objects, per-request timers, tracing
hooks and stream readers that ``reportCount`` has no use for. Parsing is
httptools' (llhttp, the parser of Node.js and of uvicorn). Failures surface as
httpx's exceptions, so that ``gateway.upstream.translate_httpx_error`` remains
the one place that decides what a failure means.

What it does, for a demanding upstream:

- keep-alive connections per origin, the most recently used first (the one
  likeliest still open); one that sat idle longer than ``keepalive_expiry``
  (or than the server's ``Keep-Alive: timeout=N`` less a second), or that the
  server closed, is dropped rather than reused;
- at most ``max_connections`` in use; a caller beyond waits for one within its
  time limit (``httpx.PoolTimeout``);
- one time limit for the whole call: waiting for a connection, connecting,
  sending and reading (``PoolTimeout``, ``ConnectTimeout``, ``ReadTimeout``);
- a request on a reused connection that the server closed before answering
  any of it is sent once more on a new connection (the server closing an idle
  connection as we reuse it is a race, not a failure); ``reportCount`` is a
  read, so sending it twice is harmless;
- answers read no further than ``max_body`` + one chunk (the caller refuses
  more); such a connection is closed, not reused;
- HTTPS with certifi's roots (as httpx), ALPN ``http/1.1``; no redirects, no
  proxies, no cookies, no compression asked for (an encoded answer is still
  decoded, by httpx).
"""

from __future__ import annotations

import asyncio
import math
import ssl
import sys
from collections import deque
from dataclasses import dataclass
from typing import Final

import certifi
import httpx

from gateway.connection import Answer, Connection, StaleConnectionError
from gateway.errors import OverloadedError
from gateway.throttle import ConcurrencyLimiter

_DEFAULT_TIME_LIMIT: Final = 5.0


@dataclass(frozen=True)
class Origin:
    """Where a connection goes, and the request target within it."""

    scheme: str
    host: str
    port: int
    target: bytes
    #: The Host header: the host, and the port unless the scheme's default.
    host_header: bytes

    @classmethod
    def of(cls, url: httpx.URL) -> Origin:
        """The origin of ``url``; raises ``httpx.UnsupportedProtocol`` unless http(s)."""
        if url.scheme not in ("http", "https") or not url.host:
            raise httpx.UnsupportedProtocol(f"Cannot send to {url.scheme!r} URLs")
        port = url.port or (443 if url.scheme == "https" else 80)
        return cls(url.scheme, url.host, port, url.raw_path, url.netloc)

    @property
    def key(self) -> tuple[str, str, int]:
        """Connections are shared between requests with equal keys."""
        return (self.scheme, self.host, self.port)


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface, and ``post_json``, over pooled ``Connection`` objects."""

    def __init__(
        self,
        limits: httpx.Limits,
        max_body: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_body = max_body
        max_connections = limits.max_connections or 1_000_000
        self._max_idle = (
            limits.max_keepalive_connections
            if limits.max_keepalive_connections is not None
            else max_connections
        )
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], deque[Connection]] = {}
        self._idle_count = 0
        # Connections in use; a caller beyond waits its turn within its own time limit.
        self._in_use = ConcurrencyLimiter(
            max_connections, max_waiting=sys.maxsize, wait_timeout=math.inf
        )
        self._origins: dict[str, tuple[Origin, bytes]] = {}
        self._closed = False

    # the fast path

    async def post_json(self, url: str, body: bytes, time_limit: float) -> tuple[int, bytes]:
        """POST ``body`` as JSON to ``url``: (status, body). The fast path of UpstreamClient."""
        known = self._origins.get(url)
        if known is None:
            origin = Origin.of(httpx.URL(url))
            head = (
                b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Accept: application/json\r\nContent-Length: "
                % (origin.target, origin.host_header)
            )
            if len(self._origins) < 64:
                self._origins[url] = (origin, head)
        else:
            origin, head = known
        request = b"%s%d\r\n\r\n%s" % (head, len(body), body)
        answer = await self._send(origin, request, time_limit)
        encoding = answer.header(b"content-encoding")
        if encoding and encoding.lower() != b"identity":
            # Rare for a JSON API: let httpx decode it the usual way.
            decoded = httpx.Response(
                answer.status,
                headers={"Content-Encoding": encoding.decode("latin-1")},
                content=answer.body,
            )
            return answer.status, decoded.read()
        return answer.status, answer.body

    # httpx's interface

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (any method, small bodies); raise only httpx errors."""
        origin = Origin.of(request.url)
        limits: dict[str, float | None] = request.extensions.get("timeout", {})
        given = [value for value in limits.values() if value is not None]
        time_limit = max(given) if given else _DEFAULT_TIME_LIMIT
        content = await request.aread()
        lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), origin.target)]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw)
        lines.append(b"\r\n")
        lines.append(content)
        answer = await self._send(origin, b"".join(lines), time_limit, all_headers=True)
        return httpx.Response(
            answer.status, headers=answer.headers, content=answer.body, request=request
        )

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close as their exchange ends."""
        self._closed = True
        for stack in self._idle.values():
            for connection in stack:
                connection.close()
        self._idle.clear()
        self._idle_count = 0

    # the pool

    async def _send(
        self, origin: Origin, request: bytes, time_limit: float, all_headers: bool = False
    ) -> Answer:
        if self._closed:
            raise httpx.UnsupportedProtocol("The upstream transport is closed")
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + time_limit
        if not self._in_use.try_acquire():
            try:
                await self._in_use.acquire(time_limit)
            except OverloadedError:
                raise httpx.PoolTimeout("No upstream connection came free in time") from None
        try:
            connection = self._take_idle(origin, loop.time())
            if connection is not None:
                try:
                    answer = await connection.exchange(
                        request, give_up_at - loop.time(), all_headers
                    )
                except StaleConnectionError:
                    connection = None
                else:
                    self._put_back(origin, connection, loop.time())
                    return answer
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                raise httpx.ReadTimeout("The upstream did not answer in time")
            connection = await self._connect(origin, remaining)
            try:
                answer = await connection.exchange(request, give_up_at - loop.time(), all_headers)
            except StaleConnectionError as stale:
                if stale.cause is not None:
                    raise httpx.ReadError(type(stale.cause).__name__) from stale.cause
                raise httpx.RemoteProtocolError(
                    "The upstream closed the connection without answering"
                ) from None
            self._put_back(origin, connection, loop.time())
            return answer
        finally:
            self._in_use.release()

    def _take_idle(self, origin: Origin, now: float) -> Connection | None:
        stack = self._idle.get(origin.key)
        while stack:
            connection = stack.pop()
            self._idle_count -= 1
            limit = self._keepalive
            if connection.keepalive_hint is not None:
                # A second's margin: don't race the server's own close.
                limit = min(limit, connection.keepalive_hint - 1.0)
            if connection.reusable and now - connection.idle_since < limit:
                return connection
            connection.close()
        return None

    def _put_back(self, origin: Origin, connection: Connection, now: float) -> None:
        if not connection.reusable or self._closed:
            connection.close()
            return
        connection.idle_since = now
        stack = self._idle.setdefault(origin.key, deque())
        stack.append(connection)
        self._idle_count += 1
        if self._idle_count > self._max_idle:
            # Over the keep-alive allowance: the longest idle goes first.
            oldest = stack.popleft()
            self._idle_count -= 1
            oldest.close()

    async def _connect(self, origin: Origin, time_limit: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if origin.scheme == "https":
            tls = self._ssl_context or _default_ssl_context()
        try:
            async with asyncio.timeout(time_limit):
                _, connection = await loop.create_connection(
                    lambda: Connection(self._max_body, loop),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("Connecting to the upstream timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(type(exc).__name__) from exc
        return connection


_SSL_CONTEXT: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        context = ssl.create_default_context(cafile=certifi.where())
        context.set_alpn_protocols(["http/1.1"])
        _SSL_CONTEXT = context
    return _SSL_CONTEXT
