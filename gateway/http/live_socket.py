"""One graphql-transport-ws connection: Strawberry's protocol handler, with our callers and streams.

What the handler does itself stays its own: the ``connection_init`` timeout
(4408), ping and pong, ``complete``, duplicate ids (4409), unknown messages
(4400). Overridden: who is calling (``connection_init``'s payload or the
upgrade's headers; none is 4403, a malformed one 4400), and ``subscribe``,
which opens one of the gateway's streams or answers ``error`` with the codes
a query's errors carry, so that a client library does not reconnect in a loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)

from gateway.api import Services, Stream, StreamEnded
from gateway.errors import GatewayError, RequestError, StreamLimitError, UnauthenticatedError
from gateway.http.parameters import operation as operation_of
from gateway.http.record import log_stream_end
from gateway.http.subscribe import Refused, Subscriptions
from gateway.model import Caller

if TYPE_CHECKING:
    from gateway.http.websocket import Connection, SocketAdapter

TRANSPORT: Final = "websocket"
#: Seconds a stream waits for an event before looking again (the socket is pinged anyway).
_QUIET: Final = 3600.0


class LiveSocketHandler(BaseGraphQLTransportWSHandler[None, None]):
    """graphql-transport-ws on one socket, its subscriptions the gateway's live streams."""

    def __init__(
        self,
        adapter: SocketAdapter,
        services: Services,
        subscriptions: Subscriptions,
        *,
        connection: Connection,
        init_timeout: dt.timedelta,
    ) -> None:
        super().__init__(
            view=cast("Any", None),  # only its on_ws_connect is read, by what is overridden here
            websocket=adapter,
            context=None,
            root_value=None,
            schema=cast("Any", subscriptions.schema),
            connection_init_wait_timeout=init_timeout,
            max_subscriptions_per_connection=services.settings.live_streams_per_connection,
        )
        self.adapter = adapter
        self.services = services
        self.subscriptions = subscriptions
        self.connection = connection
        self.caller: Caller | None = None
        self.streams: dict[str, Stream] = {}
        self.main: asyncio.Task[Any] | None = None
        self.dropped = False
        self._closing: asyncio.Task[None] | None = None

    def on_request_accepted(self) -> None:
        """Remember the connection's own task (to drop it if the client stops reading)."""
        self.main = asyncio.current_task()
        super().on_request_accepted()

    def expire(self) -> None:
        """The connection lived its time: end its streams and close it (1000: connect again)."""
        for stream in self.streams.values():
            stream.end("lifetime")
        if not self.streams:
            self._closing = asyncio.ensure_future(
                self.websocket.close(1000, "This connection lived its time: connect again")
            )

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Acknowledge a connection whose caller has a usable credential; else close it."""
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            await self.websocket.close(4400, "Invalid connection init payload")
            return
        if self.connection_init_received:
            await self.websocket.close(4429, "Too many initialisation requests")
            return
        self.connection_init_received = True
        caller = self.connection.caller(payload or {})
        credential = caller.credential
        if isinstance(credential, GatewayError):
            # No credential: Forbidden, as the protocol asks of a rejected connection (a
            # client may retry a few times); a malformed one: Bad request (it will not).
            code = 4403 if isinstance(credential, UnauthenticatedError) else 4400
            await self.websocket.close(code, credential.message)
            return
        self.caller = caller
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Open a stream for ``message``, or answer ``error`` with why not."""
        if not self.connection_acknowledged or self.caller is None:
            await self.websocket.close(4401, "Unauthorized")
            return
        id = message["id"]
        if id in self.operations:
            await self.websocket.close(4409, f"Subscriber for {id} already exists"[:120])
            return
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.operations) >= limit:
            refusal = StreamLimitError(
                f"A WebSocket may carry {limit} subscriptions at once", retry_after=30
            )
            await self._refuse(id, Refused([refusal.formatted()]))
            return
        try:
            op = operation_of(message.get("payload"))
        except RequestError as exc:
            await self._refuse(id, Refused([exc.formatted()]))
            return
        outcome = self.subscriptions.open(
            op, self.caller, self.connection.request_id, TRANSPORT, self.services
        )
        if isinstance(outcome, Refused):
            await self._refuse(id, outcome, op.operation_name)
            return
        operation = Operation(self, id, op.query or "", op.variables, op.operation_name)
        operation.task = asyncio.create_task(self._run(operation, outcome))
        operation.task.add_done_callback(self._task_done)
        self.operations[id] = operation

    async def _refuse(self, id: str, refused: Refused, name: str | None = None) -> None:
        if refused.stopping:
            await self.websocket.close(1012, "The gateway is shutting down: connect again")
            return
        codes = [error["extensions"]["code"] for error in refused.errors]
        self.services.metrics.live_ended.labels(TRANSPORT, "refused").inc()
        log_stream_end(
            self.connection.request_id,
            TRANSPORT,
            name,
            events=0,
            seconds=0,
            reason="refused",
            codes=codes,
        )
        error = {"id": id, "type": "error", "payload": refused.errors}
        await self.send_message(cast("Message", error))

    async def _run(self, operation: Operation[None, None], stream: Stream) -> None:
        """Send the stream's events as ``next`` messages until it ends, then say how."""
        events = self.services.metrics.live_events.labels(TRANSPORT)
        self.streams[operation.id] = stream
        try:
            while True:
                try:
                    event = await stream.next(_QUIET)
                except StreamEnded as ended:
                    await self._ended(operation, ended.reason)
                    return
                if event is not None:
                    payload = orjson.Fragment(event.payload)
                    message = {"id": operation.id, "type": "next", "payload": payload}
                    await operation.send_operation_message(cast("Message", message))
                    events.inc()
        except WebSocketDisconnected:
            if self.adapter.slow:
                stream.end("slow")
                self._drop()
            else:
                stream.end("client")
        finally:
            self.streams.pop(operation.id, None)
            stream.close()
            seconds = asyncio.get_running_loop().time() - stream.opened
            log_stream_end(
                self.connection.request_id,
                TRANSPORT,
                operation.operation_name,
                events=stream.events,
                seconds=seconds,
                reason=stream.ended or "client",
            )

    async def _ended(self, operation: Operation[None, None], reason: str) -> None:
        if reason == "complete":
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        elif reason == "shutdown":
            await self.websocket.close(1012, "The gateway is shutting down: connect again")
        elif reason == "lifetime":
            await self.websocket.close(1000, "This connection lived its time: connect again")

    def _drop(self) -> None:
        """Stop serving a client that does not read: its connection's task ends, unfinished."""
        self.dropped = True
        if self.main is not None:
            self.main.cancel()
