"""The ``/graphql`` HTTP endpoint: negotiation, batching, execution, logging.

How requests become operations is ``gateway.operations``; persisted ids become
documents in ``gateway.persisted``; the media type and status are
``gateway.media``'s; results and errors become bodies in ``gateway.results``.

A request is one operation (a JSON object) or an array of them (what Apollo's
BatchHttpLink sends), bounded by ``GATEWAY_MAX_BATCH``; all operations of one
request share its fan-out budget and its concurrency towards the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any, TypeGuard, cast

import orjson
from graphql import ExecutionResult, OperationType, execute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from strawberry import Schema
from strawberry.execution import optimized_is_awaitable

from gateway import tracing
from gateway.callers import TrustedProxies
from gateway.config import Settings
from gateway.context import Caller, RequestBudget, RequestContext, Services
from gateway.documents import DocumentError, Documents, Prepared
from gateway.errors import (
    PARSE_FAILED,
    VALIDATION_FAILED,
    BadUserInputError,
    GatewayError,
    PersistedQueryNotFoundError,
)
from gateway.ide import graphiql_response
from gateway.media import JSON, negotiate, status_for
from gateway.operations import (
    OPERATION_PARAMS,
    OperationRequest,
    RequestError,
    from_body,
    from_params,
    operation_type,
    read_body,
)
from gateway.persisted import PersistedDocuments, Resolved
from gateway.responses import Replay
from gateway.results import (
    REQUEST_ID_HEADER,
    coded,
    error_response,
    format_result,
    rejected,
)

request_logger = logging.getLogger("gateway.request")

# strawberry's faster check, typed as graphql-core wants it.
_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a fresh one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    # 128 random bits as 32 hex digits, as uuid4().hex but without building a UUID.
    return given if _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


@dataclass
class RequestRecord:
    """What one request did, for its metrics and its log line (ids, counts, codes only)."""

    request_id: str
    counted: bool = True
    operations: list[str | None] = field(default_factory=list)
    upstream_fields: int = 0
    codes: list[str] = field(default_factory=list)
    budget: RequestBudget | None = None

    @property
    def outcome(self) -> str:
        """``ok``, or the first error's code."""
        return self.codes[0] if self.codes else "ok"

    def event(self, response: Response, seconds: float) -> dict[str, Any]:
        """The fields of this request's log line."""
        budget = self.budget
        return {
            "request_id": self.request_id,
            "operations": self.operations,
            "aliases": self.upstream_fields,
            "upstream_calls": budget.upstream_calls if budget else 0,
            "cache_hits": budget.cache_hits if budget else 0,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
            "outcome": self.outcome,
            "codes": sorted(set(self.codes)),
        }


class GraphQLEndpoint:
    """Serves GraphQL over HTTP (and GraphiQL on GET when enabled)."""

    def __init__(
        self, schema: Schema, settings: Settings, persisted: PersistedDocuments | None = None
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.proxies = TrustedProxies(settings.trusted_proxies)
        if persisted is None:
            persisted = PersistedDocuments(persisted_only=False, maxsize=settings.apq_cache)
        self.persisted = persisted
        self.documents = Documents.for_settings(schema._schema, settings)

    async def handle(self, request: Request) -> Response:
        """Handle one HTTP request to ``/graphql``: answer, count it, log one line."""
        services: Services = request.app.state.services
        record = RequestRecord(request_id_of(request))
        started = time.perf_counter()
        services.metrics.in_flight.inc()
        with tracing.span(services.tracer, f"{request.method} /graphql", server=True) as span:
            try:
                response = await self._answer(request, services, record)
            finally:
                services.metrics.in_flight.dec()
            if record.counted:
                seconds = time.perf_counter() - started
                services.metrics.observe_request(record.outcome, seconds, record.upstream_fields)
                logged = request_logger.isEnabledFor(logging.INFO)
                # The event is built only when something reads it.
                event = record.event(response, seconds) if logged or span is not None else {}
                if logged:
                    request_logger.info("request", extra={"event": event})
                if span is not None:
                    span.set_attributes(
                        {
                            "http.request.method": request.method,
                            "http.route": "/graphql",
                            "http.response.status_code": response.status_code,
                            "deepcall.request_id": record.request_id,
                            "graphql.operation.name": [str(op) for op in record.operations],
                            "deepcall.aliases": record.upstream_fields,
                            "deepcall.upstream_calls": event["upstream_calls"],
                            "deepcall.cache_hits": event["cache_hits"],
                            "deepcall.outcome": record.outcome,
                        }
                    )
        response.headers[REQUEST_ID_HEADER] = record.request_id
        return response

    async def _answer(
        self, request: Request, services: Services, record: RequestRecord
    ) -> Response:
        body = b""
        media_type = JSON
        # The scope's tuple: request.client builds a named tuple on every read.
        client = request.scope.get("client")
        peer = client[0] if client else None
        caller = Caller.identify(
            services.keys, request.headers, self.proxies.client_of(peer, request.headers)
        )
        try:
            is_get = request.method == "GET"
            if is_get and OPERATION_PARAMS.isdisjoint(request.query_params):
                record.counted = False
                return self._ide(request, services, record.request_id)
            media_type = self._negotiate(request)
            if is_get:
                if not self.settings.allow_get:
                    raise RequestError(
                        405, BadUserInputError.code, "Send queries as a POST of JSON"
                    )
                batch, operations = False, [from_params(request.query_params)]
            else:
                body = await read_body(request, self.settings.max_body_bytes)
                replayed = self._replay(caller, services, body, record, media_type)
                if replayed is not None:
                    return replayed
                batch, operations = from_body(body, self.settings.max_batch)
            resolved = [self._resolve(op) for op in operations]
            prepared = self._prepare_all(resolved)
            if is_get:
                self._refuse_non_queries(resolved, prepared, operations)
        except RequestError as exc:
            record.codes.append(exc.code)
            return error_response(
                exc.status, exc.code, exc.message, record.request_id, media_type, exc.headers
            )
        except ClientDisconnect:
            record.codes.append("CLIENT_DISCONNECTED")
            return Response(status_code=499)
        budget = record.budget = RequestBudget(
            self.settings.max_fanout, self.settings.request_concurrency
        )
        record.operations = [op.operation_name for op in operations]
        contexts = [
            RequestContext.create(services, record.request_id, caller, budget) for _ in operations
        ]
        results = await self.execute_all(operations, prepared, contexts, record)
        record.codes.extend(
            error["extensions"]["code"] for result in results for error in result.get("errors", ())
        )
        rendered = orjson.dumps(results if batch else results[0])
        principal = caller.principal
        if (
            body
            and principal is not None
            and not record.codes
            and budget.replayable
            and not any("extensions" in result for result in results)
        ):
            services.responses.put(
                principal,
                body,
                Replay(
                    rendered, tuple(budget.served), tuple(record.operations), record.upstream_fields
                ),
            )
        # A batch mixes outcomes: its status is 200, each entry says how it went.
        status = 200 if batch else status_for(media_type, results[0])
        headers = {"Vary": "Accept"}
        if PersistedQueryNotFoundError.code in record.codes:
            # A CDN must not keep the miss: the next request registers the document.
            headers["Cache-Control"] = "private, no-cache, must-revalidate"
        return Response(rendered, status, headers, media_type=media_type)

    def _negotiate(self, request: Request) -> str:
        """The response's media type for the request's ``Accept``; a 406 when none fits."""
        media_type = negotiate(request.headers.get("accept"))
        if media_type is None:
            raise RequestError(
                406,
                BadUserInputError.code,
                "Accept application/graphql-response+json or application/json",
            )
        return media_type

    def _resolve(self, op: OperationRequest) -> Resolved | GatewayError:
        """The document ``op`` runs, or the error that refuses it (persisted ids, safelist)."""
        try:
            return self.persisted.resolve(op)
        except GatewayError as exc:
            return exc

    def _prepare_all(
        self, resolved: list[Resolved | GatewayError]
    ) -> list[Prepared | GatewayError]:
        """Each operation's prepared document (or its persisted-document refusal), once.

        An APQ document is registered once it has validated.
        """
        prepared: list[Prepared | GatewayError] = []
        for outcome in resolved:
            if isinstance(outcome, GatewayError):
                prepared.append(outcome)
                continue
            ready = self.documents.prepare(outcome.text)
            if ready.document is not None:
                self.persisted.register(outcome)
            prepared.append(ready)
        return prepared

    def _refuse_non_queries(
        self,
        resolved: list[Resolved | GatewayError],
        prepared: list[Prepared | GatewayError],
        operations: list[OperationRequest],
    ) -> None:
        """GET must not change anything: a mutation or subscription sent by GET is a 405."""
        for outcome, ready, op in zip(resolved, prepared, operations, strict=True):
            if not isinstance(outcome, Resolved) or not isinstance(ready, Prepared):
                continue
            if ready.document is not None:
                kind = _selected_type(ready, op.operation_name)
            elif ready.code == PARSE_FAILED:
                continue  # reported as such by execution
            else:
                # Refused by validation (which mutations are, against this schema):
                # parsed apart, to tell a mutation from a plain mistake.
                kind = operation_type(outcome.text, op.operation_name, self.settings.max_tokens)
            if kind not in (None, OperationType.QUERY):
                raise RequestError(
                    405,
                    BadUserInputError.code,
                    "Only queries may be sent by GET; POST anything else",
                    {"Allow": "POST"},
                )

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
        hits = len(replay.counts)
        services.metrics.cache.labels("hit").inc(hits)
        record.budget = RequestBudget(0, 1)
        record.budget.cache_hits = hits
        record.operations = list(replay.operations)
        record.upstream_fields = replay.upstream_fields
        # Only error-free answers are remembered: 200 in either media type.
        return Response(replay.body, headers={"Vary": "Accept"}, media_type=media_type)

    def _ide(self, request: Request, services: Services, request_id: str) -> Response:
        if self.settings.graphiql and "text/html" in request.headers.get("accept", ""):
            today = dt.datetime.now(self.settings.zone).date()
            return graphiql_response(today, request.url.path, services.example_headers)
        return error_response(
            405, BadUserInputError.code, "Send queries as a POST of JSON", request_id
        )

    async def execute_all(
        self,
        operations: list[OperationRequest],
        prepared: list[Prepared | GatewayError],
        contexts: list[RequestContext],
        record: RequestRecord,
    ) -> list[dict[str, Any]]:
        """Run every operation of one request, concurrently, within one fan-out budget."""
        planned = 0
        for index, (op, doc) in enumerate(zip(operations, prepared, strict=True)):
            if isinstance(doc, Prepared) and doc.document is not None:
                with contextlib.suppress(DocumentError):
                    selected = doc.select(op.operation_name)
                    planned += selected.upstream_fields
                    record.operations[index] = selected.name
        record.upstream_fields = planned
        budget = self.settings.max_fanout
        if planned > budget:
            message = f"The request may cause {planned} upstream calls; at most {budget}"
            return [{"errors": [coded(message, VALIDATION_FAILED)]} for _ in operations]
        return list(
            await asyncio.gather(
                *(
                    self.execute(op, doc, context)
                    for op, doc, context in zip(operations, prepared, contexts, strict=True)
                )
            )
        )

    async def execute(
        self, op: OperationRequest, prepared: Prepared | GatewayError, context: RequestContext
    ) -> dict[str, Any]:
        """Run one prepared operation and return its response body."""
        if isinstance(prepared, GatewayError):
            return {"errors": [{"message": prepared.message, "extensions": prepared.extensions()}]}
        if prepared.document is None:
            return {"errors": [rejected(error, prepared.code) for error in prepared.errors]}
        try:
            prepared.select(op.operation_name)
        except DocumentError as exc:
            return {"errors": [coded(exc.message, exc.code)]}
        result = execute(
            self.schema._schema,
            prepared.document,
            context_value=context,
            variable_values=op.variables,
            operation_name=op.operation_name,
            executor_class=self.schema.execution_context_class,
            is_awaitable=_is_awaitable,
            hide_suggestions=not self.settings.introspection,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        if result.errors:
            prepared.relocate(result.errors)
        body = format_result(result, context.request_id)
        if context.warnings:
            body["extensions"] = {"warnings": context.warnings}
        return body


def _selected_type(prepared: Prepared, name: str | None) -> OperationType | None:
    """The type of the operation ``name`` selects in a valid document; None if none."""
    operations = prepared.operations
    if name is None:
        return next(iter(operations.values())).type if len(operations) == 1 else None
    chosen = operations.get(name)
    return chosen.type if chosen is not None else None
