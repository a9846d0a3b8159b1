"""Bad input on every live transport: a clear close or error, bounded memory, and the other
streams served all along.

The gateway runs as `deepcall-gateway serve` (its WebSocket message limit and
compression settings are the command line's), and a well-behaved stream
watches a count that moves throughout each test.
"""

from __future__ import annotations

import asyncio
import json
import socket as sockets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from conftest import ACME, headers_for
from support.live import MULTIPART_ACCEPT, SSE_ACCEPT, HTTPStream, Socket, body, socket, sse
from support.procfs import peak_rss, reset_peak_rss
from support.redis import CLI
from support.servers import free_port, process

from gateway.simulator import Simulator

pytestmark = pytest.mark.slow

QUERY = "subscription { watch(every: 1) { n: callCount(filter: {campaignId: %d}) } }"
MB = 1024 * 1024
#: Growth of the server's peak resident memory any one hostile client may cause.
MEMORY_BOUND = 24 * MB


@contextmanager
def served(upstream_url: str) -> Iterator[tuple[str, int]]:
    """`deepcall-gateway serve` in front of the simulator: its URL and process id."""
    port = free_port()
    env = {
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_LIVE_MIN_EVERY": "1",
        "GATEWAY_RATE_LIMIT": "0",
    }
    with process([CLI, "serve", "--port", str(port)], "Uvicorn running", env) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


@asynccontextmanager
async def bystander(
    url: str, client: httpx.AsyncClient, sim: Simulator, campaign: int
) -> AsyncIterator[HTTPStream]:
    """A well-behaved SSE stream of ``campaign``'s count, its first event read."""
    now = sim.count("acme", {"campId": campaign})
    async with sse(client, f"{url}/graphql", body(QUERY % campaign), headers_for(ACME)) as stream:
        assert (await stream.next_event()).data == {"data": {"watch": {"n": now}}}
        yield stream


async def still_served(stream: HTTPStream, sim: Simulator, campaign: int) -> None:
    """The bystander sees a new call of ``campaign`` within a few seconds."""
    sim.add_calls("acme", 1, campaign_id=campaign)
    now = sim.count("acme", {"campId": campaign})
    async with asyncio.timeout(10):
        assert (await stream.next_event()).data == {"data": {"watch": {"n": now}}}


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("not json", 4400),
        (b"\x00binary", 4400),
        ("[1, 2]", 4400),
        ('{"type": "subscribe", "id": 7, "payload": {}}', 4400),
        ('{"type": "gimme"}', 4400),
        (json.dumps({"type": "subscribe", "id": "1", "payload": body(QUERY % 1)}), 4401),
    ],
)
async def test_malformed_messages_close_the_socket_clearly(
    sim: Simulator, upstream_url: str, sent: str | bytes, code: int
) -> None:
    """Non-JSON, binary, non-objects, a bad id, an unknown type (4400), a subscribe before
    connection_init (4401): the socket closes with the protocol's code; others stream on."""
    with served(upstream_url) as (url, _):
        async with (
            httpx.AsyncClient(timeout=30) as client,
            bystander(url, client, sim, 9401) as good,
        ):
            async with socket(url) as ws:
                if code != 4401:
                    assert (await ws.init(headers_for(ACME)))["type"] == "connection_ack"
                await ws.send(sent)
                assert (await ws.closed())[0] == code
            await still_served(good, sim, 9401)


async def test_ten_thousand_subscribes_are_answered_within_the_connections_limit(
    sim: Simulator, upstream_url: str
) -> None:
    """10,000 subscribe messages on one socket: 50 streams (its limit), 9,950 RATE_LIMITED
    errors, memory bounded, and another client's stream unaffected."""
    with served(upstream_url) as (url, pid):
        async with (
            httpx.AsyncClient(timeout=30) as client,
            bystander(url, client, sim, 9402) as good,
        ):
            reset_peak_rss(pid)
            before = peak_rss(pid)
            async with socket(url) as ws:
                await ws.init(headers_for(ACME))
                sender = asyncio.ensure_future(_flood(ws, 10_000))
                kinds: dict[str, int] = {"next": 0, "error": 0}
                async with asyncio.timeout(120):
                    while kinds["next"] + kinds["error"] < 10_000:
                        message = await ws.receive()
                        kinds[message["type"]] += 1
                        if message["type"] == "error":
                            assert message["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
                await sender
            assert kinds == {"next": 50, "error": 9_950}
            assert peak_rss(pid) - before < MEMORY_BOUND
            await still_served(good, sim, 9402)


async def _flood(ws: Socket, count: int) -> None:
    """Send ``count`` subscribes, as fast as the socket takes them."""
    for n in range(count):
        await ws.subscribe(str(n), QUERY % 9402)


async def test_a_ten_megabyte_message_is_refused_unread(sim: Simulator, upstream_url: str) -> None:
    """A 10 MB frame closes the socket with 1009 (message too big) before it is buffered."""
    with served(upstream_url) as (url, pid):
        async with (
            httpx.AsyncClient(timeout=30) as client,
            bystander(url, client, sim, 9403) as good,
        ):
            reset_peak_rss(pid)
            before = peak_rss(pid)
            async with socket(url, max_size=None) as ws:
                await ws.init(headers_for(ACME))
                huge = json.dumps({"type": "ping", "payload": {"x": "y" * (10 * MB)}})
                sending = asyncio.ensure_future(ws.send(huge))
                assert (await ws.closed())[0] == 1009
                sending.cancel()
            assert peak_rss(pid) - before < MEMORY_BOUND
            await still_served(good, sim, 9403)


async def test_http_streams_refuse_bad_bodies_before_streaming(
    sim: Simulator, upstream_url: str
) -> None:
    """SSE and multipart requests with a malformed or a 10 MB body are refused (400, 413)
    as any POST is, memory bounded; nothing is asked upstream."""
    with served(upstream_url) as (url, pid):
        reset_peak_rss(pid)
        before = peak_rss(pid)
        async with httpx.AsyncClient(timeout=30) as client:
            for accept in (SSE_ACCEPT, MULTIPART_ACCEPT):
                headers = {
                    **headers_for(ACME),
                    "Accept": accept,
                    "Content-Type": "application/json",
                }
                bad = await client.post(f"{url}/graphql", content=b"{nope", headers=headers)
                assert bad.status_code == 400
                huge = await client.post(
                    f"{url}/graphql", content=b"x" * (10 * MB), headers=headers
                )
                assert huge.status_code == 413
        assert peak_rss(pid) - before < MEMORY_BOUND
    assert sim.request_count == 0


async def test_readers_that_never_read_hold_nothing_up(sim: Simulator, upstream_url: str) -> None:
    """An SSE client and a WebSocket client that never read while their counts move: memory
    stays bounded and another stream of the same count gets every change on time."""
    with served(upstream_url) as (url, pid):
        async with (
            httpx.AsyncClient(timeout=30) as client,
            bystander(url, client, sim, 9404) as good,
        ):
            reset_peak_rss(pid)
            before = peak_rss(pid)
            raw = _unread_sse(url)
            async with socket(url) as ws:
                await ws.init(headers_for(ACME))
                await ws.subscribe("1", QUERY % 9404)
                for _ in range(5):
                    await still_served(good, sim, 9404)
            raw.close()
            assert peak_rss(pid) - before < MEMORY_BOUND


def _unread_sse(url: str) -> sockets.socket:
    """An SSE subscription sent over a bare socket that is then never read."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body(QUERY % 9404)).encode()
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nAccept: {SSE_ACCEPT}\r\n"
        f"Content-Type: application/json\r\nX-DeepCall-SSID: {ACME.ssid}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    raw = sockets.create_connection((host, int(port)))
    raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
    raw.sendall(request)
    return raw


async def test_streams_are_never_compressed(sim: Simulator, upstream_url: str) -> None:
    """`serve` declines the WebSocket's permessage-deflate that clients offer, and an SSE
    stream asked with Accept-Encoding: gzip comes uncompressed."""
    with served(upstream_url) as (url, _):
        async with socket(url) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.connection.response.headers
            assert (await ws.init(headers_for(ACME)))["type"] == "connection_ack"
        async with (
            httpx.AsyncClient(timeout=30, headers={"Accept-Encoding": "gzip"}) as client,
            sse(client, f"{url}/graphql", body(QUERY % 9405), headers_for(ACME)) as stream,
        ):
            assert stream.response.headers.get("content-encoding", "identity") == "identity"
            assert (await stream.next_event()).event == "next"
