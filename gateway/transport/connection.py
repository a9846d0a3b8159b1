"""One upstream HTTP/1.1 connection: an asyncio protocol fed to httptools' parser.

The upstream is not trusted: everything an answer can make us hold has a
limit here (after h11's, aiohttp's and http.client's defaults), and past one
the exchange fails with ``InvalidAnswerError`` and the connection is aborted.
"""

from __future__ import annotations

import asyncio
import math
from typing import Final, cast

import httptools
import httpx

from gateway.transport.decoding import BodyDecoder, decoder_for

#: Header and trailer fields of one answer, at most.
MAX_FIELDS: Final = 100
#: Their names and values together, in bytes.
MAX_FIELD_BYTES: Final = 16 * 1024
#: One field's name and value, in bytes.
MAX_LINE_BYTES: Final = 8 * 1024
#: Bytes in a row the parser may take without finishing a field or delivering body.
MAX_STALL_BYTES: Final = 16 * 1024
#: Interim (1xx) answers before the real one.
MAX_INTERIM: Final = 8


class InvalidAnswerError(httpx.RemoteProtocolError):
    """The upstream's answer is not HTTP we accept: malformed, over a limit, or an upgrade.

    Unlike its parent (which httpx also raises when a connection drops), this
    always means the answer itself was bad: ``UPSTREAM_BAD_RESPONSE``.
    """


class StaleConnectionError(httpx.ReadError):
    """The connection closed before any of the answer arrived (on a reused one: send again).

    ``__cause__`` is the socket's error, if the close was one.
    """


class Answer:
    """One HTTP response, read whole."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one exchange at a time; the parser calls back into it.

    It reads the status, the body, the framing (length, chunked, or to the
    close), ``Content-Encoding`` and ``Keep-Alive: timeout=N``. Interim (1xx)
    answers are skipped; a second answer, or bytes nobody asked for, end the
    connection. Limits: ``MAX_FIELDS``, ``MAX_FIELD_BYTES`` and
    ``MAX_LINE_BYTES`` for header fields and trailers; ``MAX_STALL_BYTES`` fed
    to the parser without a field finished or body delivered (httptools grows
    an unfinished value by copying); ``MAX_INTERIM``; ``max_body`` bytes, raw
    and decoded. A connection whose exchange failed or was cancelled is
    aborted, not closed: ``close`` waits for a write buffer that an upstream
    which stopped reading never drains.
    """

    # One answer's state, set by _begin: what it is read into, and what it has cost.
    _headers: list[tuple[bytes, bytes]]
    _encodings: list[bytes]
    _chunks: list[bytes]
    _decoder: BodyDecoder | None
    _size: int
    _raw_size: int
    _fields: int
    _field_bytes: int
    _interim: int
    _stall: int
    _progress: bool
    _got_bytes: bool
    _headers_done: bool
    _has_length: bool
    _chunked: bool
    _finished: bool

    def __init__(self, max_body: int, loop: asyncio.AbstractEventLoop) -> None:
        self._max_body = max_body
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        #: Keep every header and the raw body (httpx's path); else decode, keep no header.
        self.all_headers = False
        #: The server's ``Keep-Alive: timeout=N``, if it sent one: how long it keeps us idle.
        self.keepalive_hint: float | None = None
        self._begin()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._finished:
            # Bytes nobody asked for: the connection can no longer be trusted.
            self.abort()
            return
        self._got_bytes = True
        self._progress = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # A callback refused the answer: ours say why (the context); httptools' own
            # (a chunk amid a header, say) mean invalid HTTP.
            reason = exc.__context__
            if reason is None or isinstance(reason, httptools.HttpParserError):
                reason = InvalidAnswerError("The upstream's answer was not valid HTTP")
            self._refuse(reason)
        except httptools.HttpParserUpgrade:
            self._refuse(InvalidAnswerError("The upstream switched protocols"))
        except httptools.HttpParserError:
            self._refuse(InvalidAnswerError("The upstream's answer was not valid HTTP"))
        else:
            if self._progress:
                self._stall = 0
            else:
                self._stall += len(data)
                if self._stall > MAX_STALL_BYTES:
                    self._refuse(InvalidAnswerError("A line of the upstream's answer never ended"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._finished:
            return
        if exc is None and self._headers_done and not (self._has_length or self._chunked):
            # A body delimited by the connection's end, which came cleanly: this is its end.
            # (A reset is not an end: that answer is cut, and the upstream unavailable.)
            try:
                if self._decoder is not None:
                    self._decoder.finish()
            except httpx.DecodingError as error:
                self._fail(error)
            else:
                self._finish()
        elif not self._got_bytes:
            stale = StaleConnectionError("The upstream closed the connection without answering")
            stale.__cause__ = exc
            self._fail(stale)
        elif exc is not None:
            self._fail(httpx.ReadError(type(exc).__name__))
        else:
            self._fail(httpx.RemoteProtocolError("The upstream closed the connection mid-answer"))

    # httptools callbacks: raising in one stops the parser (data_received takes it from there)

    def on_message_begin(self) -> None:
        if self._finished:
            # A second answer to one request: the stream can no longer be trusted.
            raise InvalidAnswerError("The upstream answered twice")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._progress = True
        self._fields += 1
        size = len(name)
        line = size + len(value)
        self._field_bytes += line
        if (
            self._field_bytes > MAX_FIELD_BYTES
            or self._fields > MAX_FIELDS
            or line > MAX_LINE_BYTES
        ):
            raise InvalidAnswerError("The upstream's answer has too many or too large fields")
        if self._headers_done:
            return  # a trailer: counted, never kept
        if self.all_headers:
            self._headers.append((name, value))
        if size == 16:
            if name.lower() == b"content-encoding":
                self._encodings.append(value)
        elif size == 10:
            if name.lower() == b"keep-alive":
                self.keepalive_hint = keepalive_timeout(value)
        elif size == 14:
            if name.lower() == b"content-length":
                self._has_length = True
        elif size == 17 and name.lower() == b"transfer-encoding":
            # Chunked only when it is the final coding (RFC 9112, 6.3), as llhttp reads it.
            self._chunked = value.rpartition(b",")[2].strip().lower() == b"chunked"

    def on_headers_complete(self) -> None:
        self._progress = True
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101:
                raise InvalidAnswerError("The upstream switched protocols")
            return  # an interim answer: on_message_complete follows at once
        self._headers_done = True
        if not self.all_headers and self._encodings:
            self._decoder = decoder_for(self._encodings, self._max_body)

    def on_body(self, body: bytes) -> None:
        self._progress = True
        decoder = self._decoder
        if decoder is not None:
            self._raw_size += len(body)
            if self._raw_size > self._max_body:
                raise InvalidAnswerError("The upstream's answer is too large")
            body = decoder.feed(body)
        self._chunks.append(body)
        self._size += len(body)
        if self._size > self._max_body:
            raise InvalidAnswerError("The upstream's answer is too large")

    def on_message_complete(self) -> None:
        self._progress = True
        if not self._headers_done:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise InvalidAnswerError("The upstream sent too many interim answers")
            self._begin_head()
            return
        if self._decoder is not None:
            self._decoder.finish()
        self._finish(keep_alive=self._parser.should_keep_alive())

    # the exchange

    async def exchange(
        self, request: bytes, time_limit: float, all_headers: bool = False
    ) -> Answer:
        """Send ``request`` (the whole of it) and read the answer, all within ``time_limit``."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise StaleConnectionError("The connection was closed")
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
                # Cancelled, timed out or broken before the answer: unusable from here.
                self.abort()

    def close(self) -> None:
        """Close the connection once its unsent bytes are sent (idempotent); for idle ones."""
        self.reusable = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes and all (idempotent)."""
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()

    def _begin(self) -> None:
        """A new answer's state: what it is read into, and what it has cost."""
        self._begin_head()
        self._chunks = []
        self._decoder = None
        self._size = self._raw_size = 0
        self._interim = self._stall = 0
        self._progress = self._got_bytes = self._headers_done = False
        self._finished = False
        self.reusable = False

    def _begin_head(self) -> None:
        """A new head's state (after an interim answer, the real one's)."""
        self._headers = []
        self._encodings = []
        self._fields = self._field_bytes = 0
        self._has_length = self._chunked = False

    def _finish(self, keep_alive: bool = False) -> None:
        self._finished = True
        transport = self._transport
        # Reusable only with nothing of the request left unsent (an early answer may
        # come while the server still has our body to read, or never reads it).
        self.reusable = (
            keep_alive
            and not self.closed
            and transport is not None
            and not transport.get_write_buffer_size()
        )
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result(Answer(status, self._headers, b"".join(self._chunks)))

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _refuse(self, reason: BaseException) -> None:
        # A refused answer (or a bug in a callback, which then surfaces as itself).
        self._fail(reason)
        self.abort()

    def _time_out(self) -> None:
        self._fail(httpx.ReadTimeout("The upstream did not answer in time"))
        self.abort()


def keepalive_timeout(value: bytes) -> float | None:
    """N of a ``Keep-Alive: timeout=N, max=M`` header; None when absent or malformed."""
    for part in value.split(b","):
        name, _, number = part.partition(b"=")
        if name.strip().lower() == b"timeout":
            try:
                seconds = float(number.strip())
            except ValueError:
                return None
            return seconds if math.isfinite(seconds) else None
    return None
