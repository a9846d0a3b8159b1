"""A repeated request answered by the server itself, exactly as the app would answer it.

Each test serves the gateway twice over loopback: with the gateway's protocol
(which offers a small POST to the replay shortcut first) and with uvicorn's
plain httptools protocol (every request reaches the app). The app is wrapped
to count the requests that reach it, so a test sees which one answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from conftest import ACME, GLOBEX, headers_for
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from support.servers import run_app

from gateway.config import Settings
from gateway.server import create_app
from gateway.simulator import Simulator

SHORTCUT = "gateway.server.protocol:BoundedHttpToolsProtocol"
PLAIN = "httptools"
QUERY = "{ callCount(filter: {campaignId: 123}) }"
BODY = orjson.dumps({"query": QUERY})
JSON_HEADERS = {**headers_for(ACME), "Content-Type": "application/json"}


class Counted:
    """The gateway's app, counting the HTTP requests that reach it."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state  # where the server finds the app's shortcut
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


@contextmanager
def serving(upstream_url: str, protocol: str, **overrides: Any) -> Iterator[tuple[str, Counted]]:
    """The gateway on loopback with ``protocol``: its URL and its counted app."""
    settings = dataclasses.replace(Settings(upstream_url=upstream_url), **overrides)
    app = Counted(create_app(settings))
    with run_app(app, http=protocol) as url:
        yield url, app


def twice(url: str, request_ids: tuple[str, str]) -> list[httpx.Response]:
    """The same request, sent twice on one connection with the given request ids."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.post("/graphql", content=BODY, headers={**JSON_HEADERS, "X-Request-ID": rid})
            for rid in request_ids
        ]


def without_date(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in response.headers.raw if name.lower() != b"date"]


def test_a_repeat_is_answered_without_the_app_with_the_apps_own_bytes(
    upstream_url: str, sim: Simulator
) -> None:
    """The second request never reaches the app, and its status, headers and body are the
    bytes the app gives the same repeat."""
    with serving(upstream_url, SHORTCUT) as (url, app):
        ours = twice(url, ("first", "second"))
        reached = app.requests
    with serving(upstream_url, PLAIN) as (url, plain_app):
        theirs = twice(url, ("first", "second"))
        plain_reached = plain_app.requests

    assert (reached, plain_reached) == (1, 2)
    assert sim.request_count == 2  # one upstream call per gateway: the repeat is a hit
    expected = sim.count(ACME.account, {"campId": 123})
    assert expected > 0
    assert ours[1].json() == {"data": {"callCount": expected}}
    assert ours[1].status_code == theirs[1].status_code == 200
    assert ours[1].content == theirs[1].content == ours[0].content
    assert without_date(ours[1]) == without_date(theirs[1])
    assert ours[1].headers["x-request-id"] == "second"


COUNTED = r"gateway_(requests|cache_lookups|request_upstream_fields)_(total|count|sum)"


def test_a_repeat_answered_by_the_server_is_logged_and_counted_as_the_app_would(
    upstream_url: str, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The shortcut's log line and request metrics are the app's, duration aside."""
    events: dict[str, list[dict[str, Any]]] = {}
    metrics: dict[str, list[str]] = {}
    for protocol in (SHORTCUT, PLAIN):
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="gateway.request"),
            serving(upstream_url, protocol) as (url, _),
        ):
            twice(url, ("first", "second"))
            exposition = httpx.get(f"{url}/metrics").text
        events[protocol] = [
            {k: v for k, v in r.event.items() if k != "duration_ms"}  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "gateway.request"
        ]
        metrics[protocol] = [
            line
            for line in exposition.splitlines()
            if re.match(
                r"gateway_(requests|cache_lookups|request_upstream_fields)_(total|count|sum)", line
            )
        ]

    assert events[SHORTCUT] == events[PLAIN]
    assert events[SHORTCUT][1] == {
        "request_id": "second",
        "operations": [None],
        "aliases": 1,
        "upstream_calls": 0,
        "cache_hits": 1,
        "status": 200,
        "outcome": "ok",
        "codes": [],
    }
    assert metrics[SHORTCUT] == metrics[PLAIN]
    assert 'gateway_requests_total{outcome="ok"} 2.0' in metrics[SHORTCUT]


FALLBACKS = {
    "a body that is not JSON's media type": ({"Content-Type": "text/plain"}, BODY, 415),
    "an Accept no JSON type fits": ({"Accept": "text/html"}, BODY, 406),
    "a chunked body": ({}, iter([BODY[:10], BODY[10:]]), 200),
    "a body over 8 KiB": ({}, BODY[:-1] + b" " * 9000 + b"}", 200),
    "an Expect: 100-continue": ({"Expect": "100-continue"}, BODY, 200),
}


@pytest.mark.parametrize(("changes", "content", "status"), FALLBACKS.values(), ids=FALLBACKS)
def test_what_the_shortcut_does_not_answer_reaches_the_app(
    upstream_url: str, sim: Simulator, changes: dict[str, str], content: Any, status: int
) -> None:
    """After a repeatable request, a variant the shortcut must not judge goes to the app."""
    with serving(upstream_url, SHORTCUT) as (url, app):
        with httpx.Client(base_url=url, timeout=10) as client:
            first = client.post("/graphql", content=BODY, headers=JSON_HEADERS)
            variant = client.post("/graphql", content=content, headers={**JSON_HEADERS, **changes})
        reached = app.requests

    assert first.status_code == 200
    assert (variant.status_code, reached) == (status, 2)
    if status == 200:
        assert variant.content == first.content


def test_a_cross_origin_repeat_gets_the_apps_cors_headers(
    upstream_url: str, sim: Simulator
) -> None:
    """With CORS on, a request with an Origin is answered by the app and its middleware."""
    origin = "https://dash.example"
    with serving(upstream_url, SHORTCUT, cors_origins=(origin,)) as (url, app):
        with httpx.Client(base_url=url, timeout=10) as client:
            plain = client.post("/graphql", content=BODY, headers=JSON_HEADERS)
            repeat = client.post("/graphql", content=BODY, headers=JSON_HEADERS)
            crossed = client.post(
                "/graphql", content=BODY, headers={**JSON_HEADERS, "Origin": origin}
            )
        reached = app.requests

    assert reached == 2  # the first and the cross-origin one; the plain repeat was replayed
    assert plain.content == repeat.content == crossed.content
    assert crossed.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in repeat.headers


OTHER = orjson.dumps({"query": "{ callCount(filter: {campaignId: 8}) }"})


def _request(request_id: str, body: bytes = BODY, *, close: bool = False) -> bytes:
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"X-DeepCall-SSID: {ACME.ssid}\r\nX-Request-ID: {request_id}\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_pipelined_requests_are_answered_in_order_and_connection_close_is_kept(
    upstream_url: str, sim: Simulator
) -> None:
    """Four requests in one write, a miss among repeats: answered in the order sent, the
    repeat behind the miss by the app (never ahead of it), the last closing the connection."""
    with serving(upstream_url, SHORTCUT) as (url, app):
        twice(url, ("warm", "warm-again"))
        port = int(url.rsplit(":", 1)[1])
        sent = [_request("r1"), _request("r2", OTHER), _request("r3"), _request("r4", close=True)]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"".join(sent))
            data = _read_all(sock)  # ends: the server closed after the last
        reached = app.requests

    answers = data.split(b"HTTP/1.1 ")[1:]
    ids = [re.search(rb"x-request-id: (\w+)", a) for a in answers]
    assert [m.group(1) for m in ids if m] == [b"r1", b"r2", b"r3", b"r4"]
    assert all(a.startswith(b"200 OK") for a in answers)
    assert b"connection: close" in answers[3]
    assert b"connection: close" not in b"".join(answers[:3])
    # warm, then r2 (a miss) and whatever was queued behind it; r1 was replayed by the server.
    assert 2 <= reached <= 4
    assert b"campaignId" not in data
    assert sim.request_count == 2


async def test_a_caller_whose_held_body_stalls_holds_up_no_other_callers_repeats(
    upstream_url: str, sim: Simulator
) -> None:
    """While one caller's small POST sits held with half its body, another caller's repeat
    is answered by the server at once; the stalled one is answered when its body ends."""
    with serving(upstream_url, SHORTCUT) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        stalled = _request("stalled")
        cut = stalled.index(b"\r\n\r\n") + 4 + len(BODY) // 2
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(stalled[:cut])  # the head and half the body: held
        await writer.drain()
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            other = {**headers_for(GLOBEX), "Content-Type": "application/json"}
            first, repeat = [
                await client.post("/graphql", content=BODY, headers=other) for _ in "12"
            ]
        reached_meanwhile = app.requests
        writer.write(stalled[cut:])
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head)[1])  # type: ignore[index]
            answer = await reader.readexactly(length)
        writer.close()

    assert first.status_code == repeat.status_code == 200
    assert repeat.content == first.content
    assert "errors" not in repeat.json()
    assert reached_meanwhile == 1  # the other caller's first request only
    assert head.startswith(b"HTTP/1.1 200 ")
    assert orjson.loads(answer) == {"data": {"callCount": sim.count(ACME.account, {"campId": 123})}}
