"""The aiohttp transport over real sockets: both paths, the body cap, decoding, and failures."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Iterator

import httpx
import pytest
from simsupport import run_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.transport import AiohttpTransport

LIMITS = httpx.Limits(max_connections=10)


async def echo(request: Request) -> Response:
    """Answers with the body it got and the Content-Type it was sent."""
    body = await request.body()
    return Response(body, headers={"x-got-type": request.headers.get("content-type", "")})


async def zipped(request: Request) -> Response:
    """A gzip-encoded JSON answer."""
    return Response(gzip.compress(b'{"ok":true}'), headers={"content-encoding": "gzip"})


async def huge(request: Request) -> Response:
    """An answer far above the cap."""
    return Response(b"x" * 200_000)


async def slow(request: Request) -> Response:
    """An answer that comes too late."""
    await asyncio.sleep(2)
    return Response(b"late")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A loopback server with one route per behaviour."""
    app = Starlette(
        routes=[Route(f"/{f.__name__}", f, methods=["POST"]) for f in (echo, zipped, huge, slow)]
    )
    with run_app(app) as url:
        yield url


async def test_fast_path_posts_json_and_reads_the_answer(server: str) -> None:
    """post_json sends the bytes as JSON and returns status and body."""
    transport = AiohttpTransport(LIMITS, max_body=1024)
    async with transport:
        status, body = await transport.post_json(f"{server}/echo", b'{"a":1}', 5)
    assert (status, body) == (200, b'{"a":1}')


async def test_both_paths_decode_gzip(server: str) -> None:
    """A gzip answer is decoded on the fast path and through httpx alike."""
    transport = AiohttpTransport(LIMITS, max_body=1024)
    async with transport:
        _, fast = await transport.post_json(f"{server}/zipped", b"{}", 5)
        response = await transport.handle_async_request(
            httpx.Request("POST", f"{server}/zipped", content=b"{}")
        )
        slow_path = await response.aread()
    assert fast == slow_path == b'{"ok":true}'


async def test_reading_stops_past_the_cap(server: str) -> None:
    """No more than max_body plus one chunk is read of a huge answer."""
    transport = AiohttpTransport(LIMITS, max_body=1024)
    async with transport:
        _, body = await transport.post_json(f"{server}/huge", b"{}", 5)
    assert 1024 < len(body) < 200_000


async def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening maps to httpx.ConnectError (UPSTREAM_UNAVAILABLE upstream)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = AiohttpTransport(LIMITS, max_body=1024)
    async with transport:
        with pytest.raises(httpx.ConnectError):
            await transport.post_json(f"http://127.0.0.1:{port}/x", b"{}", 5)
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("POST", f"http://127.0.0.1:{port}/"))


async def test_a_late_answer_is_a_read_timeout(server: str) -> None:
    """An answer slower than the time limit maps to httpx.ReadTimeout."""
    transport = AiohttpTransport(LIMITS, max_body=1024)
    async with transport:
        with pytest.raises(httpx.ReadTimeout):
            await transport.post_json(f"{server}/slow", b"{}", 0.2)
