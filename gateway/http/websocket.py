"""Live streams over the ``/graphql`` WebSocket: the graphql-transport-ws protocol.

Strawberry's handler runs the protocol (``connection_init`` and its timeout,
ping and pong, ``complete``, the ids of operations); this module gives it who
is calling, the gateway's limits and its streams. A browser's ``Origin`` must
be this host's or one of ``GATEWAY_CORS_ORIGINS``. The legacy ``graphql-ws``
subprotocol is refused with 4406. Every message is bounded
(``GATEWAY_MAX_BODY_BYTES``) and checked for shape before the handler sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

import orjson
from starlette.datastructures import Headers
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, WebSocketDisconnected
from strawberry.http.websocket_origin import is_same_origin, normalize_origin
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from gateway.api import Services
from gateway.config import Settings
from gateway.http.callers import CREDENTIAL_HEADERS, Callers
from gateway.http.live_socket import LiveSocketHandler
from gateway.http.record import request_id_of
from gateway.http.streaming import SEND_TIMEOUT
from gateway.http.subscribe import Subscriptions
from gateway.model import Caller

logger = logging.getLogger("gateway.live")

#: Seconds a new connection has to send ``connection_init`` (then 4408).
INIT_TIMEOUT: Final = 10.0
#: Close codes (graphql-ws's, and RFC 6455's 1009 and 1012).
TOO_BIG: Final = 1009
RESTARTING: Final = 1012
SUBPROTOCOL_NOT_ACCEPTABLE: Final = 4406
_CREDENTIAL_KEYS: Final = frozenset(name.lower() for name in CREDENTIAL_HEADERS)


class SocketAdapter(AsyncWebSocketAdapter):
    """Starlette's WebSocket as Strawberry's handler wants it: JSON objects in, JSON out.

    An incoming message past ``max_bytes`` closes the socket (1009); one that
    is not a JSON object with a string ``type`` (and a string ``id``, if any)
    closes it as a bad request (4400), before the handler reads it.
    """

    def __init__(self, websocket: WebSocket, max_bytes: int) -> None:
        self.ws = websocket
        self.max_bytes = max_bytes
        self.closed = False
        #: Set when a write waited past ``SEND_TIMEOUT``: the client does not read.
        self.slow = False

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        """Each message, parsed and checked; ends when the client goes."""
        while not self.closed:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.close(4400, "WebSocket messages must be text")
                return
            if len(text) > self.max_bytes:
                await self.close(TOO_BIG, f"A message may be at most {self.max_bytes} bytes")
                return
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise NonJsonMessageReceived from None
            if not _well_formed(parsed):
                await self.close(4400, "Each message must be an object with a string type and id")
                return
            yield parsed

    async def send_json(self, message: Mapping[str, object]) -> None:
        """Send ``message`` as one text frame; raises ``WebSocketDisconnected`` once closed."""
        if self.closed:
            raise WebSocketDisconnected
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.ws.send_text(orjson.dumps(message).decode())
        except TimeoutError:
            self.closed = self.slow = True
            raise WebSocketDisconnected from None
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self.closed = True
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        """Close once with ``code`` and ``reason`` (at most 123 bytes, as RFC 6455 allows)."""
        if self.closed:
            return
        self.closed = True
        reason_bytes = reason.encode()[:123]
        with contextlib.suppress(RuntimeError, OSError):
            await self.ws.close(code, reason_bytes.decode(errors="ignore"))


def _well_formed(message: object) -> bool:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return False
    return "id" not in message or isinstance(message["id"], str)


class LiveSocket:
    """The ``/graphql`` WebSocket route: checks the handshake, then runs one connection."""

    def __init__(self, settings: Settings, callers: Callers, subscriptions: Subscriptions) -> None:
        self.settings = settings
        self.callers = callers
        self.subscriptions = subscriptions
        self._origins = frozenset(
            origin for origin in map(normalize_origin, settings.cors_origins) if origin
        )

    async def handle(self, websocket: WebSocket) -> None:
        """Serve one WebSocket connection until it closes (or lives its time)."""
        if not self.origin_allowed(websocket.headers):
            await websocket.close()  # before accepting: the handshake fails with 403
            return
        services: Services = websocket.app.state.services
        offered = websocket.scope.get("subprotocols", [])
        if GRAPHQL_TRANSPORT_WS_PROTOCOL not in offered:
            await websocket.accept()
            legacy = GRAPHQL_WS_PROTOCOL in offered
            reason = (
                "The legacy graphql-ws subprotocol is not served: use graphql-transport-ws"
                if legacy
                else "Use the graphql-transport-ws subprotocol"
            )
            await websocket.close(SUBPROTOCOL_NOT_ACCEPTABLE, reason)
            return
        await websocket.accept(GRAPHQL_TRANSPORT_WS_PROTOCOL)
        adapter = SocketAdapter(websocket, self.settings.max_body_bytes)
        assert services.live is not None
        if services.live.stopping:
            await adapter.close(RESTARTING, "The gateway is shutting down: connect again")
            return
        handler = LiveSocketHandler(
            adapter,
            services,
            self.subscriptions,
            connection=self._connection(websocket),
            init_timeout=dt.timedelta(seconds=INIT_TIMEOUT),
        )
        expiry = asyncio.get_running_loop().call_later(
            self.settings.live_max_lifetime, handler.expire
        )
        try:
            await handler.handle()
        except asyncio.CancelledError:
            if not handler.dropped:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        finally:
            expiry.cancel()

    def _connection(self, websocket: WebSocket) -> Connection:
        client = websocket.scope.get("client")
        return Connection(
            self.callers,
            websocket.headers,
            client[0] if client else None,
            request_id_of(websocket.headers),
        )

    def origin_allowed(self, headers: Headers) -> bool:
        """Whether a browser on this ``Origin`` may open the socket (a non-browser may)."""
        origin = headers.get("origin")
        if origin is None:
            return True
        if headers.get("sec-fetch-site") == "same-origin" or is_same_origin(
            origin, headers.get("host")
        ):
            return True
        if normalize_origin(origin) in self._origins:
            return True
        logger.warning("refused a WebSocket from another origin (not in GATEWAY_CORS_ORIGINS)")
        return False


class Connection:
    """Who is calling on one WebSocket: its upgrade request, and ``connection_init``'s payload."""

    def __init__(
        self, callers: Callers, headers: Headers, peer: str | None, request_id: str
    ) -> None:
        self.callers = callers
        self.headers = headers
        self.peer = peer
        self.request_id = request_id

    def caller(self, payload: Mapping[str, Any]) -> Caller:
        """The caller: the credential keys of ``payload`` (or its ``headers``), else the
        upgrade request's headers."""
        given = payload.get("headers")
        source = given if isinstance(given, dict) else payload
        sent = {
            key: value
            for key, value in source.items()
            if isinstance(key, str) and key.lower() in _CREDENTIAL_KEYS and isinstance(value, str)
        }
        headers: Mapping[str, str] = self.headers
        if sent:
            kept = {k: v for k, v in self.headers.items() if k not in _CREDENTIAL_KEYS}
            headers = Headers({**kept, **sent})
        return self.callers.identify(headers, self.peer)
