"""uvicorn's HTTP/1.1 protocol (httptools), with bounds on what a request may cost.

uvicorn reads a request for as long and as large as the client sends it: ten
connections sending 30 MB of header lines each held 330 MB, and 800 that sent
a byte now and then were never closed. Here a head (request line and headers)
larger than ``head_limit`` bytes is answered 431; one that has not arrived
``head_timeout`` seconds after the connection opened (or, on a kept
connection, after its first byte) is answered 408, and so is a body still
incomplete ``body_timeout`` seconds after its head. Each answer is our JSON
error shape, and the connection is closed. The body's clock starts only when
a read leaves a body incomplete: a request that arrives whole costs no timer.

A small POST to ``/graphql`` is held until its body is whole and offered to
the app's ``PostShortcut`` (``gateway.http.shortcut``): a replay hit is
answered here, without an ASGI cycle; anything else goes to the app as if it
had never been held.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.cache import MAX_REPLAYED_BODY
from gateway.errors import UnsupportedRequestError
from gateway.http import Answer, PostShortcut

logger = logging.getLogger("gateway")

#: A head larger than this (bytes) is refused: generous for a GET with its query.
HEAD_LIMIT: Final = 64 * 1024
#: Seconds a request head may take to arrive.
HEAD_TIMEOUT: Final = 10.0
#: Seconds a request body may take to arrive after its head.
BODY_TIMEOUT: Final = 30.0

_REASONS: Final = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def configure(
    config: Config, *, head_limit: int, head_timeout: float, body_timeout: float
) -> Config:
    """``config`` serving with this protocol and these bounds (kept on the config itself,
    which uvicorn hands to every worker process)."""
    config.http = f"{__name__}:BoundedHttpToolsProtocol"
    config.gateway_head_limit = head_limit  # type: ignore[attr-defined]
    config.gateway_head_timeout = head_timeout  # type: ignore[attr-defined]
    config.gateway_body_timeout = body_timeout  # type: ignore[attr-defined]
    return config


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools' protocol, refusing a head past its size or time, a body past its time."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._head_limit: int = getattr(config, "gateway_head_limit", HEAD_LIMIT)
        self._head_timeout: float = getattr(config, "gateway_head_timeout", HEAD_TIMEOUT)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline = 0.0
        self._body_timeout: float = getattr(config, "gateway_body_timeout", BODY_TIMEOUT)
        self._body_timer: asyncio.TimerHandle | None = None
        state = getattr(self.app, "state", None)
        self._shortcut: PostShortcut | None = getattr(state, "shortcut", None)
        if self.root_path:
            self._shortcut = None  # the app's routes, not this, know its mounted paths
        self._held: bytearray | None = None  # the body of a request held for the shortcut
        self._closing = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's head."""
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks with the connection."""
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, counting what a head not yet complete has taken."""
        if self.parser is None:
            return  # refused: nothing more is read
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head:
            if self._head_bytes > self._head_limit and self.parser is not None:
                self._refuse(431, f"The request head exceeds {self._head_limit} bytes")
        elif self._body_timer is None and self._body_pending():
            self._body_timer = self.loop.call_later(self._body_timeout, self._body_too_slow)

    def on_message_begin(self) -> None:
        """A kept connection's next request: its head gets the same bounds."""
        if not self._in_head:
            self._start_head()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head is whole: its bounds no longer apply. A shortcut's candidate is held."""
        self._in_head = False  # the head's timer, if it fires, finds nothing to do
        if self._holds():
            self._held = bytearray()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """A held request's body is kept here (it is small); any other goes to its cycle."""
        if self._held is not None:
            self._held += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        """The body is whole: its clock stops; a held request is answered or handed on."""
        self._stop_body_timer()
        if self._held is not None:
            body, self._held = bytes(self._held), None
            self._offer(body)
            return
        super().on_message_complete()

    def shutdown(self) -> None:
        """A graceful stop: a held request is still answered, then the connection closes."""
        if self._held is not None:
            self._closing = True
            return
        super().shutdown()

    def _holds(self) -> bool:
        """Whether this request may be a replay hit: a small, whole-bodied, unpipelined
        POST to ``/graphql``."""
        if (
            self._shortcut is None
            or self.url != b"/graphql"
            or self.expect_100_continue
            or self.parser.get_method() != b"POST"
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.pipeline
        ):
            return False
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return False
                length = value
            elif name == b"transfer-encoding":
                return False
        return length is not None and length.isdigit() and int(length) <= MAX_REPLAYED_BODY

    def _offer(self, body: bytes) -> None:
        """Answer a held request from the shortcut, or start the app on it as uvicorn would."""
        assert self._shortcut is not None  # only held when there is one
        client = self.client
        try:
            answer = self._shortcut.answer(self.headers, body, client[0] if client else None)
        except Exception:  # the app answers instead, with its own error handling
            logger.exception("The replay shortcut failed; the request goes to the app")
            answer = None
        if answer is not None:
            self._write(answer)
            return
        super().on_headers_complete()
        cycle = self.cycle
        cycle.body += body
        cycle.more_body = False
        if self._closing:
            cycle.keep_alive = False
        cycle.message_event.set()

    def _write(self, answer: Answer) -> None:
        """Send a shortcut's 200 as uvicorn would: its default headers first."""
        keep_alive = (
            not self._closing
            and self.parser.get_http_version() != "1.0"
            and self.parser.should_keep_alive()
        )
        content = [STATUS_LINE[200]]
        for name, value in (*self.server_state.default_headers, *answer.headers):
            content += (name, b": ", value, b"\r\n")
        if not keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", answer.body)
        self.transport.write(b"".join(content))
        self.on_response_complete()
        if not keep_alive:
            self.transport.close()

    def _body_pending(self) -> bool:
        """Whether a request's body is still arriving (held, or read by the app)."""
        return self._held is not None or (self.cycle is not None and self.cycle.more_body)

    def _start_head(self) -> None:
        # One timer per connection, not one per request: a timer that finds a later head
        # than the one it was set for waits again, for that head's deadline.
        self._in_head = True
        self._head_bytes = 0
        self._head_deadline = self.loop.time() + self._head_timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.loop.time() < self._head_deadline:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_too_slow)
        else:
            self._refuse(408, f"The request head did not arrive within {self._head_timeout:g} s")

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self._held is not None and not self.transport.is_closing():
            self._held = None
            self._refuse(408, f"The request body did not arrive within {self._body_timeout:g} s")
            return
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if cycle.response_started:  # answered already (a 413, say): only stop reading
            self.transport.close()
            return
        self._refuse(408, f"The request body did not arrive within {self._body_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with one coded error, close, and read nothing more."""
        self._in_head = False
        self._stop_head_timer()
        body = orjson.dumps({"errors": [UnsupportedRequestError(message).formatted()]})
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            status,
            _REASONS[status],
            len(body),
        )
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()
        self.parser = None  # type: ignore[assignment]  # nothing more is parsed
