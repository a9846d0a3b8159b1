"""The ``/graphql`` HTTP endpoint: one request, step by step, from its bytes to its answer.

Who is calling (``callers``), which media type (``media``), which operations
(``parameters``, ``persisted``), which documents (``gateway.documents``), run
(``gateway.api``), rendered (``responses``), counted and logged (``record``).
A request is one operation or a batch of them (``GATEWAY_MAX_BATCH``), which
share one fan-out budget and one concurrency towards the upstream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from strawberry import Schema

from gateway.api import RequestBudget, RequestContext, Services, execute_operation
from gateway.cache import Replay
from gateway.config import Settings
from gateway.documents import Documents, Prepared
from gateway.errors import (
    DocumentError,
    GatewayError,
    PersistedQueryNotFoundError,
    RequestError,
    ShuttingDownError,
    UnsupportedRequestError,
)
from gateway.http.callers import Callers
from gateway.http.ide import graphiql_response
from gateway.http.media import JSON, negotiate, status_for, stream_type
from gateway.http.parameters import (
    OPERATION_PARAMS,
    OperationRequest,
    from_body,
    from_params,
    read_body,
)
from gateway.http.persisted import PersistedDocuments, Resolved
from gateway.http.record import RequestRecord, request_id_of
from gateway.http.responses import REQUEST_ID_HEADER, error_response
from gateway.http.safety import refuse_non_queries
from gateway.http.streaming import HTTPStreams
from gateway.http.subscribe import Subscriptions
from gateway.model import Caller
from gateway.observe import tracing

_SHUTTING_DOWN = ShuttingDownError(
    "The gateway is shutting down and could not answer in time; retry",
    status=503,
    headers={"Retry-After": "1", "Connection": "close"},
)


class GraphQLEndpoint:
    """Serves GraphQL over HTTP (and GraphiQL on GET when enabled)."""

    def __init__(
        self,
        schema: Schema,
        settings: Settings,
        callers: Callers,
        persisted: PersistedDocuments | None = None,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.callers = callers
        if persisted is None:
            persisted = PersistedDocuments(persisted_only=False, maxsize=settings.apq_cache)
        self.persisted = persisted
        self.documents = Documents.for_settings(schema._schema, settings)
        # Subscriptions stream (gateway.http.streaming, gateway.http.websocket); queries never do.
        self.subscriptions = Subscriptions(schema, settings, persisted, self.documents)
        self.streams = HTTPStreams(self.subscriptions, settings.live_heartbeat)

    async def handle(self, request: Request) -> Response:
        """Handle one HTTP request to ``/graphql``: answer, count it, log one line."""
        services: Services = request.app.state.services
        record = RequestRecord(request_id_of(request.headers))
        started = time.perf_counter()
        services.metrics.in_flight.inc()
        with tracing.span(services.tracer, f"{request.method} /graphql", server=True) as span:
            try:
                response = await self._answer(request, services, record)
            except asyncio.CancelledError:
                # Only the server cancels a request: its shutdown ran out of time. The client
                # gets our error, not uvicorn's plain-text 500, and the task ends normally.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                record.codes.append(ShuttingDownError.code)
                response = error_response(_SHUTTING_DOWN, record.request_id)
            finally:
                services.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            record.close(response.status_code, seconds, services.metrics, span, request.method)
        response.headers[REQUEST_ID_HEADER] = record.request_id
        return response

    async def _answer(
        self, request: Request, services: Services, record: RequestRecord
    ) -> Response:
        # The scope's tuple: request.client builds a named tuple on every read.
        client = request.scope.get("client")
        caller = self.callers.identify(request.headers, client[0] if client else None)
        media_type = JSON
        body = b""
        try:
            if request.method == "GET":
                if OPERATION_PARAMS.isdisjoint(request.query_params):
                    record.counted = False
                    return self._ide(request, services, record.request_id)
                media_type = self._negotiate(request)
                batch, operations = False, [self._from_query_string(request)]
            else:
                media_type = self._negotiate(request)
                body = await read_body(request, self.settings.max_body_bytes)
                replayed = self._replay(caller, services, body, record, media_type)
                if replayed is not None:
                    return replayed
                batch, operations = from_body(body, self.settings.max_batch)
            prepared = self._prepare(operations, only_queries=request.method == "GET")
            if request.method == "POST" and not batch:
                streamed = self.streams.response(request, operations, prepared, caller, record)
                if streamed is not None:
                    return streamed
        except RequestError as exc:
            record.codes.append(exc.code)
            return error_response(exc, record.request_id, media_type)
        except ClientDisconnect:
            record.codes.append("CLIENT_DISCONNECTED")
            return Response(status_code=499)
        results = await self._execute(operations, prepared, caller, services, record)
        return self._respond(results, batch, body, caller, services, record, media_type)

    # the steps, in order

    def _ide(self, request: Request, services: Services, request_id: str) -> Response:
        """GraphiQL for a browser; for anyone else, a GET without an operation is refused."""
        if self.settings.graphiql and "text/html" in request.headers.get("accept", ""):
            today = dt.datetime.now(self.settings.zone).date()
            return graphiql_response(today, request.url.path, services.example_headers)
        refused = UnsupportedRequestError("Send queries as a POST of JSON", status=405)
        return error_response(refused, request_id)

    def _negotiate(self, request: Request) -> str:
        """The response's media type for the request's ``Accept``; a 406 when none fits.

        A client that accepts only a stream gets JSON for what does not stream.
        """
        accept = request.headers.get("accept")
        media_type = negotiate(accept) or (JSON if stream_type(accept) else None)
        if media_type is None:
            raise UnsupportedRequestError(
                "Accept application/graphql-response+json or application/json", status=406
            )
        return media_type

    def _from_query_string(self, request: Request) -> OperationRequest:
        """The operation of a GET, when GET may carry operations at all."""
        if not self.settings.allow_get:
            raise UnsupportedRequestError("Send queries as a POST of JSON", status=405)
        return from_params(request.query_params)

    def _replay(
        self,
        caller: Caller,
        services: Services,
        body: bytes,
        record: RequestRecord,
        media_type: str,
    ) -> Response | None:
        """The remembered answer to this exact request, while all its counts are fresh."""
        if caller.principal is None:
            return None
        replay = services.responses.get(caller.principal, body)
        if replay is None:
            return None
        record.replayed(replay, services.metrics)
        # Only error-free answers are remembered: 200 in either media type.
        return Response(replay.body, headers={"Vary": "Accept"}, media_type=media_type)

    def _prepare(
        self, operations: list[OperationRequest], *, only_queries: bool
    ) -> list[Prepared | GatewayError]:
        """Each operation's prepared document, or why it has none (persisted ids, safelist).

        An APQ document is registered once it has validated.
        """
        resolved = [self._resolve(op) for op in operations]
        prepared: list[Prepared | GatewayError] = []
        for outcome in resolved:
            if isinstance(outcome, GatewayError):
                prepared.append(outcome)
                continue
            ready = self.documents.prepare(outcome.text)
            if ready.document is not None:
                self.persisted.register(outcome)
            prepared.append(ready)
        if only_queries:
            refuse_non_queries(resolved, prepared, operations, self.settings.max_tokens)
        return prepared

    def _resolve(self, op: OperationRequest) -> Resolved | GatewayError:
        """The document ``op`` runs, or the error that refuses it; a bad request is raised."""
        try:
            return self.persisted.resolve(op)
        except RequestError:
            raise
        except GatewayError as exc:
            return exc

    async def _execute(
        self,
        operations: list[OperationRequest],
        prepared: list[Prepared | GatewayError],
        caller: Caller,
        services: Services,
        record: RequestRecord,
    ) -> list[dict[str, Any]]:
        """Run every operation of one request, concurrently, within one fan-out budget."""
        settings = self.settings
        budget = record.budget = RequestBudget(settings.max_fanout, settings.request_concurrency)
        record.operations = [op.operation_name for op in operations]
        record.upstream_fields = self._plan(operations, prepared, record)
        beyond = budget.planned_beyond(record.upstream_fields)
        if beyond is not None:
            results = [{"errors": [DocumentError(beyond).formatted()]} for _ in operations]
        else:
            results = list(
                await asyncio.gather(
                    *(
                        execute_operation(
                            self.schema,
                            doc,
                            op.operation_name,
                            op.variables,
                            RequestContext.create(services, record.request_id, caller, budget),
                            hide_suggestions=not settings.introspection,
                        )
                        for op, doc in zip(operations, prepared, strict=True)
                    )
                )
            )
        record.codes.extend(
            error["extensions"]["code"] for result in results for error in result.get("errors", ())
        )
        return results

    @staticmethod
    def _plan(
        operations: list[OperationRequest],
        prepared: list[Prepared | GatewayError],
        record: RequestRecord,
    ) -> int:
        """The upstream fields the request may cause; names each operation in ``record``."""
        planned = 0
        for index, (op, doc) in enumerate(zip(operations, prepared, strict=True)):
            if isinstance(doc, Prepared) and doc.document is not None:
                try:
                    selected = doc.select(op.operation_name)
                except DocumentError:
                    continue
                planned += selected.upstream_fields
                record.operations[index] = selected.name
        return planned

    def _respond(
        self,
        results: list[dict[str, Any]],
        batch: bool,
        body: bytes,
        caller: Caller,
        services: Services,
        record: RequestRecord,
        media_type: str,
    ) -> Response:
        """The response: the results in ``media_type``; remembered for replay when it may be."""
        rendered = orjson.dumps(results if batch else results[0])
        budget = record.budget
        if (
            body
            and caller.principal is not None
            and budget is not None
            and budget.replayable
            and not record.codes
            and not any("extensions" in result for result in results)
        ):
            replay = Replay(
                rendered, tuple(budget.served), tuple(record.operations), record.upstream_fields
            )
            services.responses.put(caller.principal, body, replay)
        # A batch mixes outcomes: its status is 200, each entry says how it went.
        status = 200 if batch else status_for(media_type, results[0])
        headers = {"Vary": "Accept"}
        if PersistedQueryNotFoundError.code in record.codes:
            # A CDN must not keep the miss: the next request registers the document.
            headers["Cache-Control"] = "private, no-cache, must-revalidate"
        return Response(rendered, status, headers, media_type=media_type)
