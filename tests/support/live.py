"""Plain clients of the live transports for tests: SSE and multipart over httpx, the WebSocket.

Each reads the wire as it comes and parses it by its protocol's own rules, so
that a test sees exactly what a client would: events, heartbeats, the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

SSE_ACCEPT = "text/event-stream"
MULTIPART_ACCEPT = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'
TRANSPORT_WS = "graphql-transport-ws"


@dataclass
class Part:
    """One thing read off a stream: an ``event`` (``next``, ``complete``) with its ``data``,
    or a heartbeat (``event`` is ``heartbeat``)."""

    event: str
    data: Any = None


@dataclass
class HTTPStream:
    """An open HTTP stream: its response, and its parts one at a time."""

    response: httpx.Response
    parts: AsyncIterator[Part]
    seen: list[Part] = field(default_factory=list)

    async def next(self) -> Part:
        """The next part; fails when the body ends first."""
        part = await anext(self.parts)
        self.seen.append(part)
        return part

    async def next_event(self) -> Part:
        """The next part that is not a heartbeat."""
        while True:
            part = await self.next()
            if part.event != "heartbeat":
                return part


def body(query: str, variables: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A GraphQL request body."""
    payload: dict[str, Any] = {"query": query, **extra}
    if variables is not None:
        payload["variables"] = dict(variables)
    return payload


@asynccontextmanager
async def sse(
    client: httpx.AsyncClient, url: str, payload: Mapping[str, Any], headers: Mapping[str, str]
) -> AsyncIterator[HTTPStream]:
    """POST ``payload`` asking for an event stream; its ``next``/``complete`` events and
    heartbeats (comments) as ``Part``s."""
    request_headers = {"Accept": SSE_ACCEPT, **headers}
    async with client.stream("POST", url, json=payload, headers=request_headers) as response:
        yield HTTPStream(response, _sse_parts(response))


async def _sse_parts(response: httpx.Response) -> AsyncIterator[Part]:
    event, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield Part("heartbeat")
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line:
            if event != "message" or data:
                yield Part(event, json.loads(data) if data else None)
            event, data = "message", ""


@asynccontextmanager
async def multipart(
    client: httpx.AsyncClient, url: str, payload: Mapping[str, Any], headers: Mapping[str, str]
) -> AsyncIterator[HTTPStream]:
    """POST ``payload`` as Apollo Client does for a subscription; each JSON part as a ``Part``:
    ``{}`` a heartbeat, ``{"payload": …}`` a ``next``, the final boundary ``complete``."""
    request_headers = {"Accept": MULTIPART_ACCEPT, **headers}
    async with client.stream("POST", url, json=payload, headers=request_headers) as response:
        yield HTTPStream(response, _multipart_parts(response))


async def _multipart_parts(response: httpx.Response) -> AsyncIterator[Part]:
    boundary = "\r\n--graphql"
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while (at := buffer.find(boundary)) >= 0:
            message, buffer = buffer[:at], buffer[at + len(boundary) :]
            _, _, text = message.partition("\r\n\r\n")
            if text.strip():
                parsed = json.loads(text)
                if parsed == {}:
                    yield Part("heartbeat")
                else:
                    yield Part("next", parsed)
            if buffer.startswith("--"):
                yield Part("complete")
                return


class Socket:
    """A graphql-transport-ws connection, spoken by hand."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: Mapping[str, Any] | str | bytes) -> None:
        """Send ``message`` (a dict as JSON text; text or bytes as they are)."""
        await self.connection.send(
            message if isinstance(message, str | bytes) else json.dumps(message)
        )

    async def receive(self) -> dict[str, Any]:
        """The next message, parsed."""
        parsed: dict[str, Any] = json.loads(await self.connection.recv())
        return parsed

    async def init(self, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send ``connection_init`` with ``payload``; the server's answer."""
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = dict(payload)
        await self.send(message)
        return await self.receive()

    async def subscribe(
        self, id: str, query: str, variables: Mapping[str, Any] | None = None, **extra: Any
    ) -> None:
        """Send ``subscribe`` for ``query`` under ``id``."""
        await self.send({"id": id, "type": "subscribe", "payload": body(query, variables, **extra)})

    async def closed(self) -> tuple[int, str]:
        """Read until the server closes; its close code and reason."""
        try:
            while True:
                await self.connection.recv()
        except websockets.ConnectionClosed as closed:
            received = closed.rcvd
        if received is None:
            raise AssertionError("closed without a close frame")
        return received.code, received.reason


@asynccontextmanager
async def socket(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    max_size: int | None = 2**20,
) -> AsyncIterator[Socket]:
    """A WebSocket to the gateway at ``url`` (http://…), speaking graphql-transport-ws."""
    ws_url = url.replace("http://", "ws://", 1) + "/graphql"
    protocols = [TRANSPORT_WS] if subprotocols is None else subprotocols
    async with websockets.connect(
        ws_url,
        subprotocols=protocols,  # type: ignore[arg-type]
        additional_headers=dict(headers or {}),
        origin=origin,  # type: ignore[arg-type]
        max_size=max_size,
        open_timeout=10,
    ) as connection:
        yield Socket(connection)
