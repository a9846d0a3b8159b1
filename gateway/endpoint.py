"""The ``/graphql`` HTTP endpoint: request parsing, batching, execution, logging.

How results and errors become response bodies is ``gateway.results``.

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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import Any, TypeGuard, cast

import orjson
from graphql import ExecutionResult, execute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from strawberry import Schema
from strawberry.execution import optimized_is_awaitable

from gateway import tracing
from gateway.callers import TrustedProxies
from gateway.config import Settings
from gateway.context import Caller, RequestBudget, RequestContext, Services
from gateway.documents import DocumentError, Documents, Limits, Prepared
from gateway.errors import (
    PARSE_FAILED,
    VALIDATION_FAILED,
    BadUserInputError,
)
from gateway.ide import graphiql_page
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


class RequestError(Exception):
    """The HTTP request itself is unusable; answered with ``status`` and one coded error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


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


@dataclass(frozen=True)
class OperationRequest:
    """One operation as the client sent it."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


class GraphQLEndpoint:
    """Serves GraphQL over HTTP (and GraphiQL on GET when enabled)."""

    def __init__(self, schema: Schema, settings: Settings, *, ide_local: bool = False) -> None:
        self.settings = settings
        self.ide_local = ide_local
        self.schema = schema
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.documents = Documents(
            schema._schema,
            Limits(
                max_tokens=settings.max_tokens,
                max_depth=settings.max_depth,
                max_aliases=settings.max_aliases,
                max_directives=settings.max_directives,
            ),
            introspection=settings.introspection,
            maxsize=settings.document_cache,
        )

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
        # The scope's tuple: request.client builds a named tuple on every read.
        client = request.scope.get("client")
        peer = client[0] if client else None
        caller = Caller.identify(
            services.keys, request.headers, self.proxies.client_of(peer, request.headers)
        )
        try:
            if request.method == "GET":
                if "query" not in request.query_params:
                    record.counted = False
                    return self._ide(request, services, record.request_id)
                batch, operations = False, [self._get_operation(request.query_params)]
            else:
                body = await self._read_body(request)
                replayed = self._replay(caller, services, body, record)
                if replayed is not None:
                    return replayed
                batch, operations = self._post_operations(body)
        except RequestError as exc:
            record.codes.append(exc.code)
            return error_response(exc.status, exc.code, exc.message, record.request_id)
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
        results = await self.execute_all(operations, contexts, record)
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
        return Response(rendered, media_type="application/json")

    def _replay(
        self, caller: Caller, services: Services, body: bytes, record: RequestRecord
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
        return Response(replay.body, media_type="application/json")

    def _ide(self, request: Request, services: Services, request_id: str) -> Response:
        if self.settings.graphiql and "text/html" in request.headers.get("accept", ""):
            today = dt.datetime.now(self.settings.zone).date()
            page = graphiql_page(today, services.example_headers, local=self.ide_local)
            return HTMLResponse(page)
        return error_response(
            405, BadUserInputError.code, "Send queries as a POST of JSON", request_id
        )

    def _get_operation(self, params: Mapping[str, str]) -> OperationRequest:
        if not self.settings.allow_get:
            raise RequestError(405, BadUserInputError.code, "Send queries as a POST of JSON")
        try:
            raw = params.get("variables")
            variables = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            raise RequestError(400, PARSE_FAILED, "`variables` is not valid JSON") from None
        return _operation(
            {
                "query": params.get("query"),
                "variables": variables,
                "operationName": params.get("operationName"),
            }
        )

    async def _read_body(self, request: Request) -> bytes:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise RequestError(415, BadUserInputError.code, "POST a JSON body (application/json)")
        limit = self.settings.max_body_bytes
        too_large = RequestError(413, BadUserInputError.code, f"The body exceeds {limit} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():  # counted as it arrives, not after
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _post_operations(self, body: bytes) -> tuple[bool, list[OperationRequest]]:
        try:
            # orjson refuses NaN and Infinity (not JSON) and nesting past 1,024 levels.
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RequestError(400, PARSE_FAILED, "The body is not valid JSON") from None
        if not isinstance(payload, list):
            return False, [_operation(payload)]
        if not payload:
            raise RequestError(400, PARSE_FAILED, "The batch is empty")
        if len(payload) > self.settings.max_batch:
            raise RequestError(
                400,
                BadUserInputError.code,
                f"A batch of {len(payload)} operations; at most {self.settings.max_batch}",
            )
        return True, [_operation(item) for item in payload]

    async def execute_all(
        self,
        operations: list[OperationRequest],
        contexts: list[RequestContext],
        record: RequestRecord,
    ) -> list[dict[str, Any]]:
        """Run every operation of one request, concurrently, within one fan-out budget."""
        prepared = [self.documents.prepare(op.query) for op in operations]
        planned = 0
        for index, (op, doc) in enumerate(zip(operations, prepared, strict=True)):
            if doc.document is not None:
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
        self, op: OperationRequest, prepared: Prepared, context: RequestContext
    ) -> dict[str, Any]:
        """Run one prepared operation and return its response body."""
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
        body = format_result(result, context.request_id)
        if context.warnings:
            body["extensions"] = {"warnings": context.warnings}
        return body


def _operation(payload: object) -> OperationRequest:
    if not isinstance(payload, dict):
        raise RequestError(400, PARSE_FAILED, "Each operation must be a JSON object with a query")
    query, variables, name = (
        payload.get("query"),
        payload.get("variables"),
        payload.get("operationName"),
    )
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, PARSE_FAILED, "Send the GraphQL document as a string `query`")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, PARSE_FAILED, "`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise RequestError(400, PARSE_FAILED, "`operationName` must be a string")
    return OperationRequest(query, variables, name)
