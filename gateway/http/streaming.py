"""Live streams over HTTP: GraphQL over SSE (distinct connections) and Apollo's multipart.

Strawberry's transports frame the events; this module runs a stream over
one: heartbeats while it is quiet, the client's going noticed at once, a
write blocked past ``SEND_TIMEOUT`` ending it (a client that does not read
holds nothing but its socket's buffers), and each way a stream ends told as
its protocol tells it. Streams are never compressed, and say so to proxies.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

import orjson
from graphql import OperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.http.streaming import MultipartSubscriptionTransport, SSETransport

from gateway.api import Services, Stream, StreamEnded
from gateway.documents import Prepared
from gateway.errors import GatewayError, StreamEndedError
from gateway.http.media import SSE, negotiate, stream_type
from gateway.http.parameters import OperationRequest
from gateway.http.record import RequestRecord, log_stream_end
from gateway.http.responses import OrjsonResponse
from gateway.http.subscribe import ANY_KIND, Refused, Subscriptions
from gateway.model import Caller

#: A write the client has not taken within this many seconds ends its stream ("slow").
SEND_TIMEOUT: Final = 30.0
#: Proxies must pass events as they come, untouched (nginx reads X-Accel-Buffering).
_UNBUFFERED: Final = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
    "Content-Encoding": "identity",
}
_ENDED_MESSAGES: Final = {
    "shutdown": "The gateway is shutting down: subscribe again",
    "lifetime": "This stream lived its time (GATEWAY_LIVE_MAX_LIFETIME): subscribe again",
}


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class Framing:
    """How one HTTP transport writes a stream's parts."""

    name: ClassVar[str]
    headers: ClassVar[Mapping[str, str]]

    def start(self) -> str:
        """What opens the body (before the first event)."""
        return ""

    def event(self, payload: bytes) -> str:
        """One event, whose result is ``payload`` (JSON)."""
        raise NotImplementedError

    def complete(self) -> str:
        """The end of a stream that completed."""
        raise NotImplementedError

    def heartbeat(self) -> str:
        """A part that tells a quiet stream is alive."""
        raise NotImplementedError

    def refused(self, errors: list[dict[str, Any]]) -> str:
        """A stream refused before it began: its errors as its one result, then complete."""
        return self.event(orjson.dumps({"errors": errors})) + self.complete()

    def ended(self, reason: str) -> str:
        """The end of a stream the gateway ended (``shutdown``, ``lifetime``)."""
        raise NotImplementedError


class SSEFraming(Framing):
    """GraphQL over SSE, distinct connections: ``next`` and ``complete`` events."""

    name = "sse"
    _transport = SSETransport()
    headers: ClassVar[Mapping[str, str]] = {**_transport.headers, **_UNBUFFERED}

    def event(self, payload: bytes) -> str:
        return self._transport.encode_event("next", payload.decode())

    def complete(self) -> str:
        return self._transport.encode_complete()

    def heartbeat(self) -> str:
        return self._transport.heartbeat_message(_json)

    def ended(self, reason: str) -> str:
        # No `complete`: graphql-sse (and EventSource) take the end as a dropped
        # connection and subscribe again, elsewhere when this gateway is stopping.
        return ""


class MultipartFraming(Framing):
    """Apollo's multipart subscriptions: ``{"payload": …}`` parts, ``{}`` heartbeats."""

    name = "multipart"
    _transport = MultipartSubscriptionTransport()
    headers: ClassVar[Mapping[str, str]] = {**_transport.headers, **_UNBUFFERED}

    def start(self) -> str:
        # A heartbeat at once: the first boundary, so the client sees the stream open.
        return self.heartbeat()

    def event(self, payload: bytes) -> str:
        return self._transport.encode_next(orjson.Fragment(payload), _json)  # type: ignore[arg-type]

    def complete(self) -> str:
        return self._transport.encode_complete()

    def heartbeat(self) -> str:
        return self._transport.heartbeat_message(_json)

    def ended(self, reason: str) -> str:
        # Apollo's transport error: a part with a null payload and the error beside it.
        error = StreamEndedError(_ENDED_MESSAGES[reason])
        part = {"payload": None, "errors": [error.formatted()]}
        return self._transport.encode_multipart_data(part, _json) + self.complete()


FRAMINGS: Final[Mapping[str, Framing]] = {SSE: SSEFraming(), "multipart": MultipartFraming()}


class _Slow(Exception):
    """The client did not take a write in time."""


class StreamResponse(Response):
    """The HTTP response that carries one live stream (or its refusal) in ``framing``."""

    def __init__(
        self,
        framing: Framing,
        outcome: Stream | Refused,
        *,
        heartbeat: float,
        on_end: Callable[[Stream], None],
        on_event: Callable[[], None],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.framing = framing
        self.outcome = outcome
        self.heartbeat = heartbeat
        self.on_end = on_end
        self.on_event = on_event
        self.init_headers(framing.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        outcome, framing = self.outcome, self.framing
        if isinstance(outcome, Refused):
            await self._last(send, framing.refused(outcome.errors))
            return
        watcher = asyncio.ensure_future(_watch(receive, outcome))
        try:
            if start := framing.start():
                await self._write(send, start)
            tail = await self._pump(send, outcome)
            if tail is not None:
                await self._last(send, tail)
        except _Slow:
            outcome.end("slow")  # returning unfinished: the server drops the connection
        finally:
            watcher.cancel()
            outcome.close()
            self.on_end(outcome)

    async def _pump(self, send: Send, stream: Stream) -> str | None:
        """Write the stream's events until it ends; what ends the body (None: nothing)."""
        framing = self.framing
        while True:
            try:
                event = await stream.next(self.heartbeat)
            except StreamEnded as ended:
                if ended.reason == "complete":
                    return framing.complete()
                if ended.reason in _ENDED_MESSAGES:
                    return framing.ended(ended.reason)
                return None  # the client went: nobody to tell
            if event is None:
                await self._write(send, framing.heartbeat())
            else:
                await self._write(send, framing.event(event.payload))
                self.on_event()

    async def _write(self, send: Send, text: str) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
        except TimeoutError:
            raise _Slow from None

    async def _last(self, send: Send, text: str) -> None:
        await send({"type": "http.response.body", "body": text.encode(), "more_body": False})


async def _watch(receive: Receive, stream: Stream) -> None:
    """End ``stream`` as soon as its client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stream.end("client")
            return


class HTTPStreams:
    """Answers a POSTed subscription that accepts a stream with one (SSE or multipart)."""

    def __init__(self, subscriptions: Subscriptions, heartbeat: float) -> None:
        self.subscriptions = subscriptions
        self.heartbeat = heartbeat

    def response(
        self,
        request: Request,
        operations: list[OperationRequest],
        prepared: list[Prepared | GatewayError],
        caller: Caller,
        record: RequestRecord,
    ) -> Response | None:
        """The stream for this request, or None when it is answered in JSON as a query is.

        Only a single subscription streams; so does a refusal of any operation
        from a client that accepts nothing but an event stream.
        """
        accept = request.headers.get("accept")
        kind = stream_type(accept)
        if kind is None or len(operations) != 1:
            return None
        op, ready = operations[0], prepared[0]
        if isinstance(ready, Prepared) and ready.document is not None:
            try:
                if ready.select(op.operation_name, ANY_KIND).type is not OperationType.SUBSCRIPTION:
                    return None
            except GatewayError:
                return None
        elif kind != SSE or negotiate(accept) is not None:
            return None
        record.counted = False
        services: Services = request.app.state.services
        outcome = self.subscriptions.open(op, caller, record.request_id, kind, services)
        if isinstance(outcome, Refused):
            return self._refused(outcome, kind, op, record, services)
        metrics = services.metrics
        on_end = functools.partial(_ended, record.request_id, op.operation_name)
        return StreamResponse(
            FRAMINGS[kind],
            outcome,
            heartbeat=self.heartbeat,
            on_end=on_end,
            on_event=metrics.live_events.labels(kind).inc,
        )

    def _refused(
        self,
        refused: Refused,
        kind: str,
        op: OperationRequest,
        record: RequestRecord,
        services: Services,
    ) -> Response:
        codes = [error["extensions"]["code"] for error in refused.errors]
        services.metrics.live_ended.labels(kind, "refused").inc()
        log_stream_end(
            record.request_id,
            kind,
            op.operation_name,
            events=0,
            seconds=0,
            reason="refused",
            codes=codes,
        )
        if refused.stopping:
            # Not a stream: a failed request, which clients retry (elsewhere, once this one
            # is out of the load balancer).
            return OrjsonResponse(
                {"errors": refused.errors}, status_code=503, headers={"Retry-After": "1"}
            )
        return StreamResponse(
            FRAMINGS[kind], refused, heartbeat=self.heartbeat, on_end=_nothing, on_event=_nothing
        )


def _ended(request_id: str, operation: str | None, stream: Stream) -> None:
    seconds = asyncio.get_running_loop().time() - stream.opened
    reason = stream.ended or "client"
    log_stream_end(
        request_id,
        stream.transport,
        operation,
        events=stream.events,
        seconds=seconds,
        reason=reason,
    )


def _nothing(*_: object) -> None:
    return None
