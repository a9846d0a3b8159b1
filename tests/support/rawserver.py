"""A raw HTTP "upstream" in the test's own event loop: the test decides every byte it sends.

``raw_server(handler)`` listens on a loopback port and runs ``handler`` for each
connection; ``RawServer`` counts the connections and keeps each request's
bytes, so a test can assert on what was sent and how often a connection was
made. ``answering(response)`` is the handler that answers every request alike.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"cnt": 7}\n'


class RawServer:
    """Counts connections, keeps each request's bytes, and lets ``handler`` answer."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.disconnected = asyncio.Event()
        self.received = asyncio.Event()
        self.url = ""
        self.port = 0

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One whole request (head and Content-Length body), or None at the end of input."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        self.received.set()
        return request

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection."""
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass  # the test is over, or the client went away: either ends this connection
        finally:
            writer.close()


Handler = Callable[[RawServer, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    """``handler`` listening on a loopback port of the running loop."""
    state = RawServer(handler)
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0, ssl=tls)
    port = state.port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if tls else 'http'}://localhost:{port}/api/v2/CallReport/reportCount"
    async with server:
        yield state
        server.close()


def answering(response: bytes, *, close_after: bool = False) -> Handler:
    """A handler that answers every request with ``response``; optionally closes after one."""

    async def handler(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await state.read_request(reader) is not None:
            writer.write(response)
            await writer.drain()
            if close_after:
                return

    return handler
