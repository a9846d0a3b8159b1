"""A hostile upstream: a raw asyncio server that misbehaves on purpose, one behaviour at a time.

``HostileUpstream`` listens on a loopback port from a thread of its own (its
own event loop), so that a gateway in another process can be pointed at it and
measured while the test switches behaviours: ``switch(name)`` drops every
connection of the last behaviour, resets the counts, and answers the next
connections as ``BEHAVIOURS[name]`` says. Each behaviour is a coroutine given
one connection; it decides byte for byte what the "upstream" sends, how fast,
and when it closes or resets. Pacing sleeps in here are the behaviours
themselves (a drip, a rate), never a test's synchronisation.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

SUCCESS = b'{"code":200,"status":"success","cnt":42}'
#: The count every answering behaviour reports.
COUNT = 42
MIB = 1 << 20


class Peer:
    """One connection from the gateway, as a behaviour sees it."""

    def __init__(
        self, server: HostileUpstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        #: Requests read on this connection so far.
        self.requests = 0

    async def read_head(self) -> bytes:
        """The head of the next request (raises at the end of input)."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        self.server.requests += 1
        return head

    async def read_request(self) -> bytes:
        """The next whole request: its head, then as many bytes as its Content-Length says."""
        head = await self.read_head()
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head + await self.reader.readexactly(length)

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the socket took it."""
        self.writer.write(data)
        await self.writer.drain()

    async def stream(self, first: bytes, repeat: bytes, rate: float | None = None) -> None:
        """Send ``first``, then ``repeat`` over and over (``rate`` bytes/s) until the peer goes."""
        await self.send(first)
        block = repeat * max(1, 65536 // len(repeat))
        while True:
            await self.send(block)
            if rate is not None:
                await asyncio.sleep(len(block) / rate)

    async def drip(self, data: bytes, interval: float = 0.05) -> None:
        """Send ``data`` a byte at a time, ``interval`` seconds apart."""
        for index in range(len(data)):
            await self.send(data[index : index + 1])
            await asyncio.sleep(interval)

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) rather than a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Behaviour = Callable[[Peer], Awaitable[None]]


def answer(body: bytes = SUCCESS, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    """An HTTP/1.1 answer with a Content-Length, ``headers`` and ``body``."""
    head = b"".join(h + b"\r\n" for h in (b"HTTP/1.1 " + status, *headers))
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


@cache
def inflating_gzip(prefix: bytes, mib: int) -> bytes:
    """gzip of ``prefix`` and ``mib`` MiB of spaces, built in milliseconds, not seconds.

    After a full flush deflate forgets what came before, so every MiB of spaces
    compresses to the same bytes: one is compressed and repeated.
    """
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = b" " * MIB
    start = deflater.compress(prefix) + deflater.flush(zlib.Z_FULL_FLUSH)
    piece = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    size = (len(prefix) + mib * MIB) & 0xFFFFFFFF
    gzip_head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return gzip_head + start + piece * mib + deflater.flush() + struct.pack("<II", crc, size)


# The behaviours. Each reads the request (or part of it), then misbehaves.


async def endless_header_lines(peer: Peer) -> None:
    """``Content-Encoding: gzip`` header lines without end, at 5 MB/s."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 OK\r\n", b"Content-Encoding: gzip\r\n", rate=5e6)


async def endless_header_lines_at_full_speed(peer: Peer) -> None:
    """The same, as fast as the socket takes them."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 OK\r\n", b"Content-Encoding: gzip\r\n")


async def endless_trailers(peer: Peer) -> None:
    """A whole chunked body, then trailer fields without end."""
    await peer.read_request()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"%x\r\n%s\r\n0\r\n" % (len(SUCCESS), SUCCESS)
    await peer.stream(head + body, b"X-Trailer: aaaaaaaaaaaaaaaa\r\n")


async def endless_header_value(peer: Peer) -> None:
    """One header value that never ends."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 OK\r\nX-Long: ", b"a")


async def endless_status_line(peer: Peer) -> None:
    """A status line that never ends."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 ", b"O")


async def endless_chunk_extension(peer: Peer) -> None:
    """A chunk-size line whose extension never ends."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=", b"a")


async def many_small_headers(peer: Peer) -> None:
    """Five hundred tiny header fields: a few kilobytes, but too many fields."""
    await peer.read_request()
    await peer.send(answer(SUCCESS, *[b"X: y"] * 500))


async def gzip_to_50_mib(peer: Peer) -> None:
    """A valid success, gzip-encoded, padded with 50 MiB of spaces: about 52 KB sent."""
    await peer.read_request()
    await peer.send(answer(inflating_gzip(SUCCESS, 50), b"Content-Encoding: gzip"))


@cache
def gzip_gzip_body() -> bytes:
    """About 1.3 KB that inflate to 500 MiB of spaces, in two layers of gzip."""
    return gzip.compress(inflating_gzip(b"", 500), 9)


async def gzip_gzip_to_500_mib(peer: Peer) -> None:
    """``Content-Encoding: gzip, gzip``: about 1.3 KB that inflate to 500 MiB in two layers."""
    await peer.read_request()
    await peer.send(answer(gzip_gzip_body(), b"Content-Encoding: gzip, gzip"))


async def non_ascii_coding(peer: Peer) -> None:
    """``Content-Encoding: g\\xe9zip``: one byte that is not ASCII."""
    await peer.read_request()
    await peer.send(answer(gzip.compress(SUCCESS), b"Content-Encoding: g\xe9zip"))


async def brotli_coding(peer: Peer) -> None:
    """``Content-Encoding: br``, which nobody asked for and the gateway does not decode."""
    await peer.read_request()
    await peer.send(answer(b"\x0b\x02\x80{}\x03", b"Content-Encoding: br"))


async def gzip_cut_short(peer: Peer) -> None:
    """A gzip body whose Content-Length ends before its stream does."""
    await peer.read_request()
    await peer.send(answer(gzip.compress(SUCCESS)[:-6], b"Content-Encoding: gzip"))


async def gzip_answer(peer: Peer) -> None:
    """A well-formed gzip-encoded success: decoded, and believed."""
    while True:
        await peer.read_request()
        await peer.send(answer(gzip.compress(SUCCESS), b"Content-Encoding: gzip"))


async def stops_reading(peer: Peer) -> None:
    """Reads the request's head, then nothing more: the gateway's write never completes."""
    await peer.read_head()
    await asyncio.Event().wait()  # until switch() drops the connection


async def switching_protocols(peer: Peer) -> None:
    """``101 Switching Protocols``, which the gateway never asked for, then other bytes."""
    await peer.read_request()
    upgrade = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    await peer.send(upgrade + b"\x81\x05hello")
    await asyncio.Event().wait()


async def close_delimited_then_reset(peer: Peer) -> None:
    """A body delimited by the close, cut by a reset instead (after a pause to let it be read)."""
    await peer.read_request()
    await peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + SUCCESS[:20])
    await asyncio.sleep(0.2)
    peer.reset()


async def not_http(peer: Peer) -> None:
    """Something that is not HTTP at all."""
    await peer.read_request()
    await peer.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


async def length_and_chunked(peer: Peer) -> None:
    """Content-Length and chunked framing at once (request smuggling's favourite)."""
    await peer.read_request()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SUCCESS), SUCCESS)
    await peer.send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )


async def two_lengths(peer: Peer) -> None:
    """Two Content-Length fields that disagree."""
    await peer.read_request()
    await peer.send(answer(SUCCESS, b"Content-Length: 3"))


async def drip_head(peer: Peer) -> None:
    """A valid answer, its head a byte every 50 ms (slowloris, towards the gateway)."""
    await peer.read_request()
    await peer.drip(answer())


async def drip_body(peer: Peer) -> None:
    """A valid head, then the body a byte every 50 ms."""
    await peer.read_request()
    whole = answer()
    split = whole.index(b"\r\n\r\n") + 4
    await peer.send(whole[:split])
    await peer.drip(whole[split:])


async def reset(peer: Peer) -> None:
    """A TCP reset instead of an answer."""
    await peer.read_request()
    peer.reset()


async def continue_flood(peer: Peer) -> None:
    """``100 Continue`` answers without end, and never the real one."""
    await peer.read_request()
    await peer.stream(b"", b"HTTP/1.1 100 Continue\r\n\r\n")


async def huge_body(peer: Peer) -> None:
    """A gigabyte announced, and sent at full speed."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", b" ")


async def endless_chunks(peer: Peer) -> None:
    """A chunked body of three-byte chunks without end, at full speed."""
    await peer.read_request()
    await peer.stream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\n   \r\n")


async def answers_twice(peer: Peer) -> None:
    """Two answers to one request: the first is used, the connection is not trusted again."""
    while True:
        await peer.read_request()
        await peer.send(answer() + answer(b'{"code":200,"status":"success","cnt":7}'))


async def early_answer(peer: Peer) -> None:
    """Answers (and says it will close) once the head is in, before reading the body."""
    await peer.read_head()
    await peer.send(answer(SUCCESS, b"Connection: close"))
    while await peer.reader.read(MIB):
        pass  # read the rest, so that closing sends no reset over the answer


async def drop_on_reuse(peer: Peer) -> None:
    """The reuse race: answers a connection's first request, drops it at the second."""
    await peer.read_request()
    await peer.send(answer())
    await peer.read_request()


BEHAVIOURS: dict[str, Behaviour] = {
    behaviour.__name__: behaviour
    for behaviour in (
        endless_header_lines,
        endless_header_lines_at_full_speed,
        endless_trailers,
        endless_header_value,
        endless_status_line,
        endless_chunk_extension,
        many_small_headers,
        gzip_to_50_mib,
        gzip_gzip_to_500_mib,
        non_ascii_coding,
        brotli_coding,
        gzip_cut_short,
        gzip_answer,
        stops_reading,
        switching_protocols,
        close_delimited_then_reset,
        not_http,
        length_and_chunked,
        two_lengths,
        drip_head,
        drip_body,
        reset,
        continue_flood,
        huge_body,
        endless_chunks,
        answers_twice,
        early_answer,
        drop_on_reuse,
    )
}


class HostileUpstream:
    """The hostile server, in a thread with its own event loop; ``switch`` picks the behaviour."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = not_http
        #: Connections accepted and request heads read since the last switch.
        self.connections = 0
        self.requests = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    def __enter__(self) -> HostileUpstream:
        # The bombs are built before any behaviour is timed (the big one takes ~0.4 s).
        inflating_gzip(SUCCESS, 50)
        gzip_gzip_body()
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        """The base URL to give the gateway."""
        return f"http://127.0.0.1:{self.port}"

    def switch(self, name: str) -> None:
        """Drop every open connection, reset the counts, and behave as ``name`` from now on."""
        self._call(self._drop_all())
        self.behaviour = BEHAVIOURS[name]
        self.connections = self.requests = 0

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop_all()

    async def _drop_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self.behaviour(Peer(self, reader, writer))
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass  # switched away, or the gateway went: either ends this connection
        finally:
            self._tasks.discard(task)
            writer.transport.abort()
