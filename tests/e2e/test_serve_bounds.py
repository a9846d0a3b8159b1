"""`deepcall-gateway serve` against clients that send too much, or too slowly.

Each test drives the real command line (uvicorn with the gateway's protocol)
over raw sockets, the way an attacker would, and reads the process's memory
from /proc.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import ACME, headers_for
from support.procfs import peak_rss, reset_peak_rss
from support.servers import free_port, process

from gateway.simulator import Simulator

CLI = str(Path(sys.executable).parent / "deepcall-gateway")
WAIT = 10.0
MB = 1024 * 1024

pytestmark = pytest.mark.slow


@contextmanager
def serving(upstream_url: str) -> Iterator[tuple[int, int]]:
    """The gateway on a free port, its heads and bodies given one second; (port, pid)."""
    port = free_port()
    env = {
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_HEADER_TIMEOUT": "1",
        "GATEWAY_BODY_TIMEOUT": "1",
    }
    args = [CLI, "serve", "--port", str(port)]
    with process(args, "Uvicorn running on", env) as proc:
        yield port, proc.pid


def answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """Read a whole answer until the server closes: its status and its JSON body."""
    sock.settimeout(WAIT)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def send_until_closed(sock: socket.socket, piece: bytes, total: int) -> int:
    """Send ``piece`` over and over, up to ``total`` bytes or until the server stops reading."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


def test_ten_clients_sending_30_mb_of_header_lines_are_refused_and_cost_no_memory(
    upstream_url: str,
) -> None:
    """Each endless head gets a coded 431 after 64 KiB, and the process barely grows."""
    with serving(upstream_url) as (port, pid):
        baseline = reset_peak_rss(pid)
        outcomes = []
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.settimeout(WAIT)
                sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: gateway\r\n")
                sent = send_until_closed(sock, b"X-Filler: " + b"a" * 1000 + b"\r\n", 30 * MB)
                outcomes.append((sent, *answer(sock)))
        grown = peak_rss(pid) - baseline

    for sent, status, body in outcomes:
        assert sent < 30 * MB  # the server stopped reading long before
        assert status == 431
        errors = body["errors"]
        assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "retryable": False}  # type: ignore[index]
    assert grown < 20 * MB, f"{grown / MB:.1f} MB"


async def test_slow_heads_are_closed_after_the_header_timeout(upstream_url: str) -> None:
    """800 connections that send a head a byte at a time, or nothing: all closed within ~1 s."""
    with serving(upstream_url) as (port, _):
        started = time.monotonic()

        async def slow(n: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if n % 2:
                writer.write(b"POST /graphql HTTP/1.1\r\nHo")  # and nothing more
            try:
                async with asyncio.timeout(WAIT):
                    return await reader.read()
            finally:
                writer.close()

        answers = await asyncio.gather(*(slow(n) for n in range(800)))
        took = time.monotonic() - started

    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[0][:200]
    assert took < 6.0


async def test_a_body_that_trickles_in_is_answered_408(upstream_url: str) -> None:
    """A POST whose declared body never arrives whole is a coded 408 after the body timeout."""
    with serving(upstream_url) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b'X-DeepCall-SSID: demo-ssid-acme\r\nContent-Length: 100\r\n\r\n{"query"'
        )
        started = time.monotonic()
        async with asyncio.timeout(WAIT):
            data = await reader.read()  # until the server closes
        took = time.monotonic() - started
        writer.close()

    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert 0.9 < took < 5.0


async def test_a_body_sent_in_pieces_within_the_timeout_is_served(
    upstream_url: str, sim: Simulator
) -> None:
    """A body arriving over several reads, each well within the body timeout, is answered."""
    body = b'{"query": "{ callCount }"}'
    with serving(upstream_url) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"X-DeepCall-SSID: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
            % (ACME.ssid.encode(), len(body))
        )
        for piece in (body[:10], body[10:20], body[20:]):
            await writer.drain()
            await asyncio.sleep(0.3)  # the slow sender under test; 0.9 s in all, < 1 s each
            writer.write(piece)
        async with asyncio.timeout(WAIT):
            data = await reader.read()
        writer.close()

    head, _, answer_body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer_body) == {"data": {"callCount": sim.count("acme")}}


def test_ordinary_requests_are_served_as_ever(upstream_url: str, sim: Simulator) -> None:
    """Within the bounds nothing changes: a GET-sized head and a POST are answered."""
    with serving(upstream_url) as (port, _):
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ callCount }"},
            headers={**headers_for(ACME), "X-Padding": "p" * 30_000},
            timeout=WAIT,
        )

    assert response.json() == {"data": {"callCount": sim.count("acme")}}


async def test_a_kept_connections_next_head_gets_its_own_full_timeout(
    upstream_url: str, sim: Simulator
) -> None:
    """A head begun half a second into a kept connection is refused a whole timeout after it
    began, not when the connection's first head would have run out, and only then."""
    body = b'{"query": "{ callCount }"}'
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"X-DeepCall-SSID: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (ACME.ssid.encode(), len(body), body)
    )
    with serving(upstream_url) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        async with asyncio.timeout(WAIT):
            first = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(re.search(rb"content-length: (\d+)", first)[1]))  # type: ignore[index]
        await asyncio.sleep(0.5)  # the idle client under test
        writer.write(b"POST /graphql HTTP/1.1\r\nHo")  # and nothing more
        await writer.drain()
        started = time.monotonic()
        async with asyncio.timeout(WAIT):
            second = await reader.read()
        took = time.monotonic() - started
        writer.close()

    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 408 ")
    assert 0.9 <= took < 3.0  # the head's own second, not what was left of the first's
