"""The upstream connection pool: HTTP/1.1 keep-alive over asyncio, parsed by httptools.

One job, done in a few microseconds of Python: a small request and a small,
bounded answer on a pooled connection. Failures surface as httpx's exceptions,
so that the upstream client alone decides what a failure means.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
import sys
from collections import deque
from dataclasses import dataclass
from typing import Final

import httpx

from gateway.errors import OverloadedError
from gateway.limits import ConcurrencyLimiter
from gateway.transport.connection import Answer, Connection, StaleConnectionError
from gateway.transport.tls import tls_context

_DEFAULT_TIME_LIMIT: Final = 5.0
#: RFC 9110's token (methods, header names); what a header value must not hold.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_IN_VALUES: Final = re.compile(rb"[\r\n\x00]")


@dataclass(frozen=True)
class Origin:
    """Where a connection goes, and the request target within it."""

    scheme: str
    #: The host in ASCII (IDNA 2008 A-labels, as httpx encodes it): for DNS and TLS alike.
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
        # raw_host, not host: the same encoding as the Host header (netloc), where the
        # standard library would encode a unicode host for DNS and TLS by IDNA 2003.
        return cls(url.scheme, url.raw_host.decode("ascii"), port, url.raw_path, url.netloc)

    @property
    def key(self) -> tuple[str, str, int]:
        """Connections are shared between requests with equal keys."""
        return (self.scheme, self.host, self.port)


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface, and ``post_json``, over pooled ``Connection`` objects.

    - Keep-alive connections per origin, the most recently used first; one idle
      longer than ``keepalive_expiry`` (or than the server's ``Keep-Alive:
      timeout=N`` less a second), or closed by the server, is dropped.
    - At most ``max_connections`` in use; a caller beyond waits for one within
      its time limit (``httpx.PoolTimeout``).
    - One time limit for the whole call: waiting for a connection, connecting,
      sending and reading (``PoolTimeout``, ``ConnectTimeout``, ``ReadTimeout``).
    - A request on a reused connection that the server closed before answering
      any of it is sent once more on a new one: a race, not a failure.
    - Answers bounded as ``Connection`` says; a connection whose exchange failed
      or was cancelled goes back to the pool only if its answer was whole, else
      it is aborted: no socket outlives its exchange unowned.
    - HTTPS with certifi's roots, ALPN ``http/1.1``, the host's one IDNA form
      for DNS, TLS and the Host header; no redirects, proxies, cookies or
      compression asked for.

    The httpx interface refuses what it would put on the wire wrongly: a method
    or header name that is not a token, a header value with CR, LF or NUL, a
    streamed body or one its ``Content-Length`` does not describe.
    """

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
        return answer.status, answer.body

    # httpx's interface

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (any method, small bodies); raise only httpx errors."""
        origin = Origin.of(request.url)
        limits: dict[str, float | None] = request.extensions.get("timeout", {})
        given = [value for value in limits.values() if value is not None]
        time_limit = max(given) if given else _DEFAULT_TIME_LIMIT
        method = request.method.encode("ascii", "replace")
        raw_headers = request.headers.raw
        if not _TOKEN.fullmatch(method) or any(
            not _TOKEN.fullmatch(name) or _NOT_IN_VALUES.search(value)
            for name, value in raw_headers
        ):
            raise httpx.LocalProtocolError("The request's method or a header is not valid HTTP")
        if "transfer-encoding" in request.headers:
            raise httpx.LocalProtocolError("A streamed request body is not sent: give it whole")
        content = await request.aread()
        length = request.headers.get("content-length")
        if (content or length is not None) and length != str(len(content)):
            raise httpx.LocalProtocolError("The request's Content-Length is not its body's")
        lines = [b"%s %s HTTP/1.1\r\n" % (method, origin.target)]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in raw_headers)
        lines.append(b"\r\n")
        lines.append(content)
        answer = await self._send(origin, b"".join(lines), time_limit, all_headers=True)
        # A stream, not content: httpx would decode content whole, here and now.
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=httpx.ByteStream(answer.body),
            request=request,
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
                    return await connection.exchange(request, give_up_at - loop.time(), all_headers)
                except StaleConnectionError:
                    pass  # closed by the server as we reused it: once more, on a new one
                finally:
                    # Answered, failed, or cancelled (even just after its answer came):
                    # pooled if its answer was whole and it may be kept, else aborted.
                    self._put_back(origin, connection, loop.time())
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                raise httpx.ReadTimeout("The upstream did not answer in time")
            connection = await self._connect(origin, remaining)
            try:
                return await connection.exchange(request, give_up_at - loop.time(), all_headers)
            except StaleConnectionError as stale:
                if stale.__cause__ is not None:
                    raise httpx.ReadError(type(stale.__cause__).__name__) from stale.__cause__
                raise httpx.RemoteProtocolError(
                    "The upstream closed the connection without answering"
                ) from None
            finally:
                self._put_back(origin, connection, loop.time())
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
        if not connection.reusable:
            connection.abort()
            return
        if self._closed:
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
            tls = self._ssl_context or tls_context()
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
        except (OSError, ValueError) as exc:
            # ssl.SSLError is an OSError; ValueError: a host name DNS cannot take.
            raise httpx.ConnectError(type(exc).__name__) from exc
        return connection
