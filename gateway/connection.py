"""One upstream HTTP/1.1 connection: an asyncio protocol fed to httptools' parser.

``Connection.exchange`` sends one request and reads its answer within a time
limit; the pool in ``gateway.transport`` decides which connection to use and
whether to keep it. What it reads: the status, the body (no further than
``max_body`` + one chunk), the framing (length, chunked, or to the close),
``Content-Encoding``, and the server's ``Keep-Alive: timeout=N``. An interim
(1xx) answer is skipped; a second answer to one request, bytes nobody asked
for, or invalid HTTP end the connection. Failures surface as httpx's
exceptions, or as ``StaleConnectionError`` when the connection closed before
any of the answer came (which the pool resends, once, on a reused connection).
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

import httptools
import httpx

#: len(b"content-length"), len(b"transfer-encoding"): names that can tell the framing.
_FRAMING_NAME_LENGTHS: Final = frozenset({14, 17})


class Answer:
    """One HTTP response, read whole."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), if any."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class StaleConnectionError(Exception):
    """The connection closed before any of the answer arrived (on a reused one: send again)."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__()
        self.cause = cause


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one exchange at a time; the parser calls back into it."""

    def __init__(self, max_body: int, loop: asyncio.AbstractEventLoop) -> None:
        self._max_body = max_body
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._got_bytes = False
        self._headers_done = False
        self._length_known = False
        self._finished = False
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        #: Keep every header of the answer (httpx's path); else only what post_json reads.
        self.all_headers = False
        #: The server's ``Keep-Alive: timeout=N``, if it sent one: how long it keeps us idle.
        self.keepalive_hint: float | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or self._finished:
            # Bytes nobody asked for: the connection can no longer be trusted.
            self.close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._finished:
                self._fail(httpx.RemoteProtocolError("The upstream's answer was not valid HTTP"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._finished:
            return
        if self._headers_done and not self._length_known:
            # A body delimited by the connection's end: this is its end.
            self._finish()
        elif not self._got_bytes:
            self._fail(StaleConnectionError(exc))
        elif exc is not None:
            self._fail(httpx.ReadError(type(exc).__name__))
        else:
            self._fail(httpx.RemoteProtocolError("The upstream closed the connection mid-answer"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._finished:
            # A second answer to one request: the stream can no longer be trusted.
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._finished:
            return
        size = len(name)
        if self.all_headers or size == 16:  # len(b"content-encoding"), what post_json reads
            self._headers.append((name, value))
        if size == 10 and name.lower() == b"keep-alive":
            self.keepalive_hint = keepalive_timeout(value)
        elif size in _FRAMING_NAME_LENGTHS:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self._length_known = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._finished:
            return
        self._chunks.append(body)
        self._size += len(body)
        if self._size > self._max_body:
            # The caller refuses it anyway: stop here, and never reuse the connection.
            self._finish()
            self.close()

    def on_message_complete(self) -> None:
        if self._finished:
            return
        if 100 <= self._parser.get_status_code() < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._headers, self._chunks, self._size = [], [], 0
            self._headers_done = self._length_known = False
            return
        self._finish(keep_alive=self._parser.should_keep_alive())

    # the exchange

    async def exchange(
        self, request: bytes, time_limit: float, all_headers: bool = False
    ) -> Answer:
        """Send ``request`` (the whole of it) and read the answer, all within ``time_limit``."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise StaleConnectionError()
        loop = self._loop
        self._begin()
        self.all_headers = all_headers
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(time_limit, self._time_out)
        try:
            transport.write(request)
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None
            if not self._finished:
                # Cancelled, timed out or broken mid-exchange: unusable from here.
                self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.reusable = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _begin(self) -> None:
        self._headers = []
        self._chunks = []
        self._size = 0
        self._got_bytes = False
        self._headers_done = False
        self._length_known = False
        self._finished = False
        self.reusable = False

    def _finish(self, keep_alive: bool = False) -> None:
        self._finished = True
        self.reusable = keep_alive and not self.closed
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result(Answer(status, self._headers, b"".join(self._chunks)))

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _time_out(self) -> None:
        self._fail(httpx.ReadTimeout("The upstream did not answer in time"))
        self.close()


def keepalive_timeout(value: bytes) -> float | None:
    """N of a ``Keep-Alive: timeout=N, max=M`` header; None when absent or malformed."""
    for part in value.split(b","):
        name, _, number = part.partition(b"=")
        if name.strip().lower() == b"timeout":
            try:
                return float(number.strip())
            except ValueError:
                return None
    return None
