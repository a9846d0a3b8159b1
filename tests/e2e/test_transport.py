"""The upstream transport over real sockets: keep-alive, framing, limits, TLS and failures.

Most servers here are raw asyncio servers in the test's own loop, so that a
test decides byte for byte what the "upstream" sends, when it closes, and can
count the connections and requests it got.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
from collections.abc import Iterator

import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support.rawserver import OK, RawServer, answering, raw_server
from support.servers import run_app

from gateway.transport import PooledTransport
from gateway.transport.connection import InvalidAnswerError, keepalive_timeout

LIMITS = httpx.Limits(max_connections=10)


async def test_post_json_sends_a_complete_http11_request() -> None:
    """Request line, Host, JSON headers, Content-Length and body, as sent on the wire."""
    async with raw_server(answering(OK)) as server, PooledTransport(LIMITS, 1024) as transport:
        status, body = await transport.post_json(server.url, b'{"a":1}', 5)
    assert (status, body) == (200, b'{"cnt": 7}\n')
    [request] = server.requests
    head, _, sent = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    port = server.url.split(":")[2].split("/")[0]
    assert lines[0] == b"POST /api/v2/CallReport/reportCount HTTP/1.1"
    assert sorted(lines[1:]) == sorted(
        [
            b"Host: localhost:" + port.encode(),
            b"Content-Type: application/json",
            b"Accept: application/json",
            b"Content-Length: 7",
        ]
    )
    assert sent == b'{"a":1}'


async def test_handle_async_request_sends_httpx_requests_as_they_are() -> None:
    """The httpx path sends the request's method, headers and body verbatim."""
    async with raw_server(answering(OK)) as server, PooledTransport(LIMITS, 1024) as transport:
        request = httpx.Request("PUT", server.url + "?x=1", content=b"abc", headers={"X-A": "b"})
        response = await transport.handle_async_request(request)
        assert response.status_code == 200
        assert await response.aread() == b'{"cnt": 7}\n'
        assert response.headers["content-type"] == "application/json"
    [sent] = server.requests
    assert sent.startswith(b"PUT /api/v2/CallReport/reportCount?x=1 HTTP/1.1\r\n")
    assert b"\r\nX-A: b\r\n" in sent
    assert sent.endswith(b"\r\n\r\nabc")


async def test_one_connection_serves_sequential_requests() -> None:
    """Keep-alive: twenty requests in a row use one connection."""
    async with raw_server(answering(OK)) as server, PooledTransport(LIMITS, 1024) as transport:
        for _ in range(20):
            assert (await transport.post_json(server.url, b"{}", 5))[0] == 200
    assert (server.connections, len(server.requests)) == (1, 20)


async def test_concurrent_requests_open_connections_then_reuse_them() -> None:
    """Ten at once open ten connections; the next ten reuse them."""
    async with raw_server(answering(OK)) as server, PooledTransport(LIMITS, 1024) as transport:
        for _ in range(2):
            answers = await asyncio.gather(
                *(transport.post_json(server.url, b"{}", 5) for _ in range(10))
            )
            assert [status for status, _ in answers] == [200] * 10
    assert (server.connections, len(server.requests)) == (10, 20)


async def test_idle_connections_beyond_the_keepalive_allowance_are_closed() -> None:
    """With one keep-alive connection allowed, three at once leave one to reuse."""
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=1)
    async with raw_server(answering(OK)) as server, PooledTransport(limits, 1024) as transport:
        for _ in range(2):
            await asyncio.gather(*(transport.post_json(server.url, b"{}", 5) for _ in range(3)))
    assert server.connections == 3 + 2


async def test_an_expired_idle_connection_is_not_reused() -> None:
    """keepalive_expiry=0: every idle connection has expired by the next request."""
    limits = httpx.Limits(max_connections=10, keepalive_expiry=0)
    async with raw_server(answering(OK)) as server, PooledTransport(limits, 1024) as transport:
        for _ in range(3):
            await transport.post_json(server.url, b"{}", 5)
    assert server.connections == 3


@pytest.mark.parametrize(("hint", "connections"), [(b"timeout=1", 2), (b"timeout=30, max=100", 1)])
async def test_the_servers_keepalive_timeout_is_honoured(hint: bytes, connections: int) -> None:
    """Keep-Alive: timeout=N caps reuse at N - 1 s, below our own (longer) expiry."""
    answer = OK.replace(b"200 OK\r\n", b"200 OK\r\nKeep-Alive: " + hint + b"\r\n")
    limits = httpx.Limits(max_connections=10, keepalive_expiry=60)
    async with raw_server(answering(answer)) as server, PooledTransport(limits, 1024) as transport:
        for _ in range(2):
            assert (await transport.post_json(server.url, b"{}", 5))[0] == 200
    assert server.connections == connections


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"timeout=5, max=1000", 5.0),
        (b"max=3", None),
        (b"Timeout = 2.5", 2.5),
        (b"timeout=x", None),
        (b"timeout=inf", None),
        (b"timeout=nan", None),
    ],
)
def test_keepalive_header_parsing(value: bytes, seconds: float | None) -> None:
    """The timeout parameter of Keep-Alive, whatever its place and case; None otherwise."""
    assert keepalive_timeout(value) == seconds


async def test_connection_close_is_honoured() -> None:
    """An answer with ``Connection: close`` ends that connection's use."""
    closing = OK.replace(b"200 OK\r\n", b"200 OK\r\nConnection: close\r\n")
    async with (
        raw_server(answering(closing, close_after=True)) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        for _ in range(3):
            assert (await transport.post_json(server.url, b"{}", 5))[0] == 200
    assert server.connections == 3


async def test_a_server_closing_after_each_answer_costs_only_new_connections() -> None:
    """The server closing after its answer (idle timeout) costs nothing but a new connection."""
    async with (
        raw_server(answering(OK, close_after=True)) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        for _ in range(3):
            assert (await transport.post_json(server.url, b"{}", 5))[0] == 200
    assert (server.connections, len(server.requests)) == (3, 3)


async def test_a_request_the_server_drops_on_a_reused_connection_is_sent_again() -> None:
    """The race of reuse against the server's idle close: sent once more, on a new connection."""

    async def first_answer_then_drop(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if state.connections > 1:
            await answering(OK)(state, reader, writer)
            return
        await state.read_request(reader)
        writer.write(OK)
        await writer.drain()
        await state.read_request(reader)  # the reuse: read, and close without a word

    async with (
        raw_server(first_answer_then_drop) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        first = await transport.post_json(server.url, b'{"n":1}', 5)
        second = await transport.post_json(server.url, b'{"n":2}', 5)
    assert first == second == (200, b'{"cnt": 7}\n')
    assert server.connections == 2
    assert [r.endswith(b'{"n":2}') for r in server.requests] == [False, True, True]


async def test_a_new_connection_closed_without_an_answer_is_a_protocol_error() -> None:
    """No resend on a fresh connection: the server itself dropped the request."""

    async def drop(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await state.read_request(reader)

    async with raw_server(drop) as server, PooledTransport(LIMITS, 1024) as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.post_json(server.url, b"{}", 5)
    assert len(server.requests) == 1


async def test_a_body_delimited_by_the_close_is_read_whole() -> None:
    """No Content-Length, no chunking: the body runs to the connection's end."""
    old_style = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"cnt": 12}'
    async with (
        raw_server(answering(old_style, close_after=True)) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 12}')


async def test_a_chunked_body_is_reassembled() -> None:
    """Transfer-Encoding: chunked, in three chunks, arrives as one body; the connection stays."""
    pieces = [b'{"cn', b't": ', b"5}"]
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece) for piece in [*pieces, b""]
    )
    async with raw_server(answering(chunked)) as server, PooledTransport(LIMITS, 1024) as transport:
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 5}')
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 5}')
    assert server.connections == 1


async def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    """103 Early Hints before the 200: the 200's status and body are the answer."""
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + OK
    async with raw_server(answering(early)) as server, PooledTransport(LIMITS, 1024) as transport:
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 7}\n')
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 7}\n')
    assert server.connections == 1


async def test_a_second_answer_to_one_request_ends_the_connection() -> None:
    """Two answers to one request: the first is used; the connection is not trusted again."""
    twice = OK + OK.replace(b"7", b"8")
    async with raw_server(answering(twice)) as server, PooledTransport(LIMITS, 1024) as transport:
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 7}\n')
        assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 7}\n')
    assert server.connections == 2


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    """Garbage instead of a status line maps to RemoteProtocolError."""
    async with (
        raw_server(answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.post_json(server.url, b"{}", 5)


async def test_an_answer_cut_short_is_an_error() -> None:
    """The server closes half-way through the body it announced."""
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cnt"'
    async with (
        raw_server(answering(cut, close_after=True)) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.post_json(server.url, b"{}", 5)


async def test_a_reset_connection_is_a_read_error() -> None:
    """A TCP reset instead of an answer maps to ReadError."""

    async def reset(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await state.read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with raw_server(reset) as server, PooledTransport(LIMITS, 1024) as transport:
        with pytest.raises(httpx.ReadError):
            await transport.post_json(server.url, b"{}", 5)


async def test_reading_stops_past_the_cap_and_the_connection_is_not_reused() -> None:
    """An answer over max_body is refused as it passes the cap; that connection is dropped."""
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000
    async with raw_server(answering(huge)) as server, PooledTransport(LIMITS, 1024) as transport:
        for _ in range(2):
            with pytest.raises(InvalidAnswerError, match="too large"):
                await transport.post_json(server.url, b"{}", 5)
    assert server.connections == 2


async def test_a_late_answer_is_a_read_timeout_and_closes_the_connection() -> None:
    """Past the time limit: ReadTimeout, and the server sees the connection close."""

    async def silent(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await state.read_request(reader)
        await reader.read()  # returns at the client's close
        state.disconnected.set()

    async with raw_server(silent) as server, PooledTransport(LIMITS, 1024) as transport:
        with pytest.raises(httpx.ReadTimeout):
            await transport.post_json(server.url, b"{}", 0.2)
        await asyncio.wait_for(server.disconnected.wait(), 5)


async def test_a_cancelled_exchange_closes_its_connection() -> None:
    """A caller cancelled mid-exchange leaves no half-read connection in the pool."""

    async def slow_then_ok(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if state.connections == 1:
            await state.read_request(reader)
            await reader.read()
            state.disconnected.set()
            return
        await answering(OK)(state, reader, writer)

    async with raw_server(slow_then_ok) as server, PooledTransport(LIMITS, 1024) as transport:
        call = asyncio.ensure_future(transport.post_json(server.url, b"{}", 5))
        await asyncio.wait_for(server.received.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(server.disconnected.wait(), 5)
        assert (await transport.post_json(server.url, b"{}", 5))[0] == 200
    assert server.connections == 2


async def test_beyond_max_connections_a_caller_waits_for_one() -> None:
    """One connection allowed: the second caller waits its turn, then reuses it."""
    release = asyncio.Event()

    async def held(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await state.read_request(reader) is not None:
            await release.wait()
            writer.write(OK)
            await writer.drain()

    limits = httpx.Limits(max_connections=1)
    async with raw_server(held) as server, PooledTransport(limits, 1024) as transport:
        first = asyncio.ensure_future(transport.post_json(server.url, b"{}", 5))
        second = asyncio.ensure_future(transport.post_json(server.url, b"{}", 5))
        await asyncio.wait_for(server.received.wait(), 5)
        with pytest.raises(httpx.PoolTimeout):
            await transport.post_json(server.url, b"{}", 0.05)
        release.set()
        assert [s for s, _ in await asyncio.gather(first, second)] == [200, 200]
    assert (server.connections, len(server.requests)) == (1, 2)


async def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening maps to httpx.ConnectError on both paths."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with PooledTransport(LIMITS, 1024) as transport:
        with pytest.raises(httpx.ConnectError):
            await transport.post_json(f"http://127.0.0.1:{port}/x", b"{}", 5)
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("POST", f"http://127.0.0.1:{port}/"))


async def test_only_http_and_https_are_spoken() -> None:
    """Another scheme is UnsupportedProtocol, before any connection."""
    async with PooledTransport(LIMITS, 1024) as transport:
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.post_json("ftp://127.0.0.1/x", b"{}", 5)


async def test_a_closed_transport_refuses_and_closed_its_idle_connections() -> None:
    """aclose() closes idle connections (the server sees it) and refuses later calls."""

    async def watch(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await answering(OK)(state, reader, writer)
        state.disconnected.set()

    async with raw_server(watch) as server:
        transport = PooledTransport(LIMITS, 1024)
        await transport.post_json(server.url, b"{}", 5)
        await transport.aclose()
        await asyncio.wait_for(server.disconnected.wait(), 5)
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.post_json(server.url, b"{}", 5)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


def _server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    return context


async def test_https_with_a_trusted_certificate(authority: trustme.CA) -> None:
    """TLS to a server whose certificate the given context trusts; keep-alive still holds."""
    client = ssl.create_default_context()
    authority.configure_trust(client)
    async with (
        raw_server(answering(OK), tls=_server_tls(authority)) as server,
        PooledTransport(LIMITS, 1024, ssl_context=client) as transport,
    ):
        for _ in range(3):
            assert await transport.post_json(server.url, b"{}", 5) == (200, b'{"cnt": 7}\n')
    assert server.connections == 1


async def test_https_refuses_an_untrusted_certificate(authority: trustme.CA) -> None:
    """By default only certifi's roots are trusted: a self-made CA is a ConnectError."""
    async with (
        raw_server(answering(OK), tls=_server_tls(authority)) as server,
        PooledTransport(LIMITS, 1024) as transport,
    ):
        with pytest.raises(httpx.ConnectError):
            await transport.post_json(server.url, b"{}", 5)
    assert server.requests == []


async def zipped(request: Request) -> Response:
    """A gzip-encoded JSON answer."""
    return Response(gzip.compress(b'{"ok":true}'), headers={"content-encoding": "gzip"})


@pytest.fixture(scope="module")
def zipping_server() -> Iterator[str]:
    """A uvicorn server answering gzip."""
    with run_app(Starlette(routes=[Route("/zipped", zipped, methods=["POST"])])) as url:
        yield url


async def test_both_paths_decode_gzip(zipping_server: str) -> None:
    """A gzip answer (from a real server) is decoded on the fast path and through httpx alike."""
    async with PooledTransport(LIMITS, max_body=1024) as transport:
        _, fast = await transport.post_json(f"{zipping_server}/zipped", b"{}", 5)
        response = await transport.handle_async_request(
            httpx.Request("POST", f"{zipping_server}/zipped", content=b"{}")
        )
        slow_path = await response.aread()
    assert fast == slow_path == b'{"ok":true}'
