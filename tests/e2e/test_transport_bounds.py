"""The upstream transport against answers it must not believe, and exchanges that end badly.

Every limit of ``gateway.transport.connection`` just under and just over its bound; the
codings ``gateway.transport.decoding`` refuses, on the fast path; what is left of a
connection whose exchange failed, was cancelled, or ended early (nothing, or
a pooled connection); and what the httpx interface refuses to put on the wire.
Servers are raw asyncio servers in the test's own loop (``tests/support/rawserver.py``).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import pytest
from support.hostile import SUCCESS, inflating_gzip
from support.procfs import sockets
from support.rawserver import OK, RawServer, answering, raw_server

from gateway.errors import UpstreamBadResponseError
from gateway.model import CountQuery, Credential
from gateway.transport import Origin, PooledTransport
from gateway.transport.connection import (
    MAX_FIELD_BYTES,
    MAX_FIELDS,
    MAX_INTERIM,
    MAX_LINE_BYTES,
    MAX_STALL_BYTES,
    InvalidAnswerError,
)
from gateway.upstream import UpstreamClient

LIMITS = httpx.Limits(max_connections=10)
MAX_BODY = 64 * 1024
BIG = 16 * 1024 * 1024
"""A request body larger than loopback's socket buffers take while the peer does not read."""


def with_fields(*fields: bytes, body: bytes = SUCCESS) -> bytes:
    """A 200 answer with Content-Length, then ``fields`` (whole header lines), then ``body``."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(field + b"\r\n" for field in fields) + b"\r\n" + body


def chunked(body: bytes, *trailers: bytes) -> bytes:
    """A chunked 200 answer of ``body`` in one chunk, then ``trailers``."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    last = b"0\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n"
    return head + b"%x\r\n%s\r\n" % (len(body), body) + last


async def post(server: RawServer, transport: PooledTransport) -> tuple[int, bytes]:
    """One post_json to ``server``, 5 s at most."""
    return await transport.post_json(server.url, b"{}", 5)


@pytest.fixture
async def transport() -> AsyncIterator[PooledTransport]:
    """A transport with the gateway's body limit."""
    async with PooledTransport(LIMITS, MAX_BODY) as pool:
        yield pool


# Header fields and trailers

FIELD_CASES = [
    ("fields", [b"X: y"] * (MAX_FIELDS - 1), [b"X: y"] * MAX_FIELDS),
    (
        "line",
        [b"X: " + b"v" * (MAX_LINE_BYTES - 1)],
        [b"X: " + b"v" * MAX_LINE_BYTES],
    ),
    (
        "block",
        [b"X: " + b"v" * (MAX_LINE_BYTES - 1)] * (MAX_FIELD_BYTES // MAX_LINE_BYTES - 1),
        [b"X: " + b"v" * (MAX_LINE_BYTES - 1)] * (MAX_FIELD_BYTES // MAX_LINE_BYTES + 1),
    ),
]


@pytest.mark.parametrize(
    ("limit", "within", "beyond"), FIELD_CASES, ids=[c[0] for c in FIELD_CASES]
)
async def test_header_fields_are_read_to_their_limits_and_refused_past_them(
    transport: PooledTransport, limit: str, within: list[bytes], beyond: list[bytes]
) -> None:
    """Count, one line, the whole block: just within is read; just beyond, refused and dropped."""
    async with raw_server(answering(with_fields(*within))) as server:
        assert await post(server, transport) == (200, SUCCESS)
        assert await post(server, transport) == (200, SUCCESS)
    assert server.connections == 1
    async with raw_server(answering(with_fields(*beyond))) as server:
        for _ in range(2):
            with pytest.raises(InvalidAnswerError, match="too many or too large fields"):
                await post(server, transport)
    assert server.connections == 2  # a refused answer's connection is never reused


async def test_trailers_are_read_but_not_kept_and_count_against_the_limit(
    transport: PooledTransport,
) -> None:
    """A few trailers are fine (and not headers); a flood of them is refused."""
    async with raw_server(answering(chunked(SUCCESS, b"X-Check: 1", b"X-Other: 2"))) as server:
        assert await post(server, transport) == (200, SUCCESS)
        response = await transport.handle_async_request(httpx.Request("POST", server.url))
        assert "x-check" not in response.headers
        assert await response.aread() == SUCCESS
    assert server.connections == 1
    flood = [b"X-T: v"] * MAX_FIELDS
    async with raw_server(answering(chunked(SUCCESS, *flood))) as server:
        with pytest.raises(InvalidAnswerError, match="too many"):
            await post(server, transport)


@pytest.mark.parametrize(
    "start",
    [
        b"HTTP/1.1 200 OK\r\nX-Long: ",
        b"HTTP/1.1 200 OK\r\nX-Name-",
        b"HTTP/1.1 200 ",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-T: ",
    ],
    ids=["header-value", "header-name", "status-line", "chunk-extension", "trailer-value"],
)
async def test_a_line_that_never_ends_is_cut_at_the_stall_limit(
    transport: PooledTransport, start: bytes
) -> None:
    """Whatever the line, the answer is refused past MAX_STALL_BYTES, not at the timeout."""
    sent = 0

    async def endless(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal sent
        await state.read_request(reader)
        writer.write(start)
        while True:
            writer.write(b"a" * 1024)
            sent += 1024
            await writer.drain()

    async with raw_server(endless) as server:
        with pytest.raises(InvalidAnswerError, match="never ended"):
            await post(server, transport)
    assert sent >= MAX_STALL_BYTES  # it was cut by size, not because the server stopped


# Interim answers and protocol switches


@pytest.mark.parametrize(("interim", "refused"), [(MAX_INTERIM, False), (MAX_INTERIM + 1, True)])
async def test_interim_answers_are_skipped_to_their_limit(
    transport: PooledTransport, interim: int, refused: bool
) -> None:
    """Up to MAX_INTERIM 1xx answers precede the real one; one more is refused."""
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" * interim + with_fields()
    async with raw_server(answering(answer)) as server:
        if refused:
            with pytest.raises(InvalidAnswerError, match="interim"):
                await post(server, transport)
        else:
            assert await post(server, transport) == (200, SUCCESS)


async def test_switching_protocols_is_refused_and_nothing_is_logged_as_fatal(
    transport: PooledTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """101 (never asked for) is a refused answer, not an exception escaping into asyncio."""
    upgrade = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    async with raw_server(answering(upgrade + b"\x81\x05hello")) as server:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            with pytest.raises(InvalidAnswerError, match="switched protocols"):
                await post(server, transport)
            await asyncio.sleep(0)  # let the aborted transport's callbacks run
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# Framing


@pytest.mark.parametrize("coding", [b"xchunked", b"chunked, gzip", b"identity"])
async def test_a_transfer_encoding_not_ending_in_chunked_is_read_to_the_close(
    transport: PooledTransport, coding: bytes
) -> None:
    """Not chunked unless chunked is the last coding (RFC 9112, 6.3): the body runs to the close."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n" + SUCCESS
    async with raw_server(answering(answer, close_after=True)) as server:
        assert await post(server, transport) == (200, SUCCESS)


async def test_a_reset_during_a_body_delimited_by_the_close_is_a_read_error(
    transport: PooledTransport,
) -> None:
    """A reset is not the end of a close-delimited body: the answer is cut (unavailable)."""

    async def cut(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await state.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + SUCCESS)
        await writer.drain()
        await asyncio.sleep(0.1)  # the upstream's behaviour: a pause, then the reset
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with raw_server(cut) as server:
        with pytest.raises(httpx.ReadError):
            await post(server, transport)


# Codings on the fast path


@pytest.mark.parametrize(
    ("coding", "body", "error", "match"),
    [
        (b"gzip", inflating_gzip(SUCCESS, 50), InvalidAnswerError, "too large"),
        (b"gzip, gzip", gzip.compress(gzip.compress(SUCCESS)), httpx.DecodingError, "more than"),
        (b"g\xe9zip", gzip.compress(SUCCESS), httpx.DecodingError, "we don't decode"),
        (b"br", b"\x0b\x02\x80{}\x03", httpx.DecodingError, "we don't decode"),
        (b"gzip", gzip.compress(SUCCESS)[:-6], httpx.DecodingError, "cut short"),
    ],
    ids=["bomb", "two-layers", "not-ascii", "brotli", "cut-short"],
)
async def test_a_coding_that_cannot_be_believed_is_refused(
    transport: PooledTransport, coding: bytes, body: bytes, error: type[Exception], match: str
) -> None:
    """A bomb past the body limit, two layers, unknown codings, a cut stream: refused, dropped."""
    answer = with_fields(b"Content-Encoding: " + coding, body=body)
    async with raw_server(answering(answer)) as server:
        with pytest.raises(error, match=match):
            await post(server, transport)
        with pytest.raises(error, match=match):
            await post(server, transport)
    assert server.connections == 2


async def test_the_httpx_path_returns_the_raw_body_for_its_caller_to_decode(
    transport: PooledTransport,
) -> None:
    """handle_async_request decodes nothing itself: raw bytes out, the header with them."""
    zipped = gzip.compress(SUCCESS)
    async with raw_server(answering(with_fields(b"Content-Encoding: gzip", body=zipped))) as server:
        response = await transport.handle_async_request(httpx.Request("POST", server.url))
        assert response.headers["content-encoding"] == "gzip"
        assert b"".join([chunk async for chunk in response.aiter_raw()]) == zipped


# The same bounds on UpstreamClient's httpx path, over httpx's own transport (httpcore, h11)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (b"gzip", inflating_gzip(SUCCESS, 50)),
        (b"gzip, gzip", gzip.compress(inflating_gzip(b"", 100))),
        (b"g\xe9zip", gzip.compress(SUCCESS)),
    ],
    ids=["bomb", "two-layers", "not-ascii"],
)
async def test_the_httpx_path_decodes_within_the_body_limit_too(coding: bytes, body: bytes) -> None:
    """Over httpcore, a bomb or a second layer is refused having held a few MiB, not 50 or 100."""
    async with (
        raw_server(answering(with_fields(b"Content-Encoding: " + coding, body=body))) as server,
        httpx.AsyncHTTPTransport() as network,
    ):
        client = UpstreamClient(network, f"http://127.0.0.1:{server.port}", timeout=5)
        tracemalloc.start()
        try:
            with pytest.raises(UpstreamBadResponseError):
                await client.report_count(Credential(ssid="s"), CountQuery.build({}, None))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"held {peak / 2**20:.1f} MiB"


async def test_the_httpx_path_decodes_a_good_gzip_answer() -> None:
    """Over httpcore, a well-formed gzip answer is decoded and believed."""
    answer = with_fields(b"Content-Encoding: gzip", body=gzip.compress(SUCCESS))
    async with raw_server(answering(answer)) as server, httpx.AsyncHTTPTransport() as network:
        client = UpstreamClient(network, f"http://127.0.0.1:{server.port}", timeout=5)
        assert await client.report_count(Credential(ssid="s"), CountQuery.build({}, None)) == 42


# What is left of a connection


async def our_sockets_towards(server: RawServer, expected: int, within: float = 1.5) -> int:
    """This process's sockets to ``server``, once they are ``expected`` (or ``within`` passed)."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within
    while (held := sockets(os.getpid(), server.port)[1]) != expected:
        if loop.time() > give_up_at:
            break
        await asyncio.sleep(0.01)
    return held


async def test_a_request_the_upstream_stops_reading_is_aborted_at_its_time_limit(
    transport: PooledTransport,
) -> None:
    """Its socket goes at the timeout, unsent bytes and all, though the upstream never reads."""
    held = asyncio.Event()

    async def stop_reading(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await held.wait()

    async with raw_server(stop_reading) as server:
        with pytest.raises(httpx.ReadTimeout):
            await transport.post_json(server.url, b"x" * BIG, 0.5)
        assert await our_sockets_towards(server, 0) == 0
        held.set()


async def test_an_early_answer_with_the_request_unsent_is_used_but_not_reused(
    transport: PooledTransport,
) -> None:
    """The answer before the whole request went out is the answer; that connection is not kept."""

    async def early(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(with_fields())
        await writer.drain()
        while await reader.read(1 << 20):
            pass

    async with raw_server(early) as server:
        assert await transport.post_json(server.url, b"x" * BIG, 5) == (200, SUCCESS)
        assert await our_sockets_towards(server, 0) == 0


async def test_a_caller_cancelled_just_after_its_answer_came_returns_the_connection(
    transport: PooledTransport,
) -> None:
    """Cancelled between the answer's arrival and its own wake-up: the connection is pooled."""
    loop = asyncio.get_running_loop()
    trigger, pull = socket.socketpair()
    call: asyncio.Future[tuple[int, bytes]] | None = None

    def cancel() -> None:
        loop.remove_reader(pull)
        assert call is not None
        call.cancel()

    async def answer_and_trigger(
        state: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await state.read_request(reader)
        # The answer, then the trigger: epoll reports them in that order, so the cancel
        # runs in the same loop pass as the answer's data_received, before the caller wakes.
        writer.write(OK)
        trigger.send(b"!")
        await answering(OK)(state, reader, writer)

    loop.add_reader(pull, cancel)
    try:
        async with raw_server(answer_and_trigger) as server:
            call = asyncio.ensure_future(post(server, transport))
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await post(server, transport) == (200, b'{"cnt": 7}\n')
            assert await our_sockets_towards(server, 1) == 1
    finally:
        trigger.close()
        pull.close()
    assert server.connections == 1


# The httpx interface refuses what it would send wrongly


async def streamed() -> AsyncIterator[bytes]:
    """A request body as a stream."""
    yield b"{}"


@pytest.mark.parametrize(
    "request_",
    [
        httpx.Request("POST", "http://127.0.0.1:9/", headers={"X-A": "b\r\nX-Injected: 1"}),
        httpx.Request("POST", "http://127.0.0.1:9/", headers={"X-A": "b\nc"}),
        httpx.Request("POST", "http://127.0.0.1:9/", headers={"X A": "b"}),
        httpx.Request("POST", "http://127.0.0.1:9/", content=streamed()),
        httpx.Request(
            "POST", "http://127.0.0.1:9/", content=b"{}", headers={"Content-Length": "5"}
        ),
        httpx.Request("GET X", "http://127.0.0.1:9/"),
    ],
    ids=["crlf-value", "lf-value", "bad-name", "streamed", "wrong-length", "bad-method"],
)
async def test_the_httpx_path_refuses_what_it_would_frame_wrongly(
    transport: PooledTransport, request_: httpx.Request
) -> None:
    """CR/LF in values, bad names or methods, streamed or mis-sized bodies: refused, unsent."""
    with pytest.raises(httpx.LocalProtocolError):
        await transport.handle_async_request(request_)


def test_one_idna_form_for_dns_tls_and_the_host_header() -> None:
    """A non-ASCII host is httpx's IDNA 2008 A-label everywhere (IDNA 2003 would say fass.de)."""
    origin = Origin.of(httpx.URL("https://faß.de:8443/api"))
    assert origin.host == "xn--fa-hia.de"
    assert origin.host_header == b"xn--fa-hia.de:8443"
    other = Origin.of(httpx.URL("https://bücher.de/"))
    assert (other.host, other.host_header) == ("xn--bcher-kva.de", b"xn--bcher-kva.de")
