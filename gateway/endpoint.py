"""The ``/graphql`` HTTP endpoint: request parsing, execution, and the one error shape.

Every error in every response carries ``extensions.code`` from the closed set in
``gateway.errors`` and ``extensions.retryable``. Errors nobody planned for are
masked to the client and logged here, once, with the request id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from strawberry import Schema
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.context import RequestContext, Services
from gateway.errors import (
    PARSE_FAILED,
    VALIDATION_FAILED,
    BadUserInputError,
    GatewayError,
    InternalServerError,
)
from gateway.ide import graphiql_page

logger = logging.getLogger("gateway.endpoint")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_QUERY_ONLY = frozenset({OperationType.QUERY})


def request_id_of(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a fresh one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def error_response(status: int, code: str, message: str, request_id: str) -> JSONResponse:
    """A GraphQL-shaped error response for a request that never reached execution."""
    body = {"errors": [{"message": message, "extensions": {"code": code, "retryable": False}}]}
    return JSONResponse(body, status_code=status, headers={REQUEST_ID_HEADER: request_id})


class GraphQLEndpoint:
    """Serves POSTed GraphQL (and GraphiQL on GET when enabled)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    async def handle(self, request: Request) -> Response:
        """Handle one HTTP request to ``/graphql``."""
        services: Services = request.app.state.services
        request_id = request_id_of(request)
        if request.method == "GET":
            return self._get(request, services, request_id)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error_response(
                415, BadUserInputError.code, "POST a JSON body (application/json)", request_id
            )
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return error_response(400, PARSE_FAILED, "The body is not valid JSON", request_id)
        try:
            query, variables, operation_name = _operation(payload)
        except BadUserInputError as exc:
            return error_response(400, PARSE_FAILED, exc.message, request_id)
        context = RequestContext.create(services, request_id, request.headers)
        body = await self.execute(query, variables, operation_name, context)
        return JSONResponse(body, headers={REQUEST_ID_HEADER: request_id})

    def _get(self, request: Request, services: Services, request_id: str) -> Response:
        if services.settings.graphiql and "text/html" in request.headers.get("accept", ""):
            today = dt.datetime.now(services.settings.zone).date()
            return HTMLResponse(graphiql_page(today, services.example_headers))
        return error_response(
            405, BadUserInputError.code, "Queries are accepted as POST only", request_id
        )

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: RequestContext,
    ) -> dict[str, Any]:
        """Run one operation and return its response body."""
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=_QUERY_ONLY,
            )
        except (CannotGetOperationTypeError, InvalidOperationTypeError) as exc:
            message = (
                "Only queries are served"
                if isinstance(exc, InvalidOperationTypeError)
                else "The document has no operation of that name"
            )
            return {"errors": [_coded(message, VALIDATION_FAILED)]}
        except MissingQueryError:
            return {"errors": [_coded("The request has no query", PARSE_FAILED)]}
        return format_result(result, context.request_id)


def _operation(payload: object) -> tuple[str, dict[str, Any] | None, str | None]:
    if not isinstance(payload, dict):
        raise BadUserInputError("The body must be a JSON object with a query")
    query, variables, name = (
        payload.get("query"),
        payload.get("variables"),
        payload.get("operationName"),
    )
    if not isinstance(query, str) or not query.strip():
        raise BadUserInputError("The body must carry the GraphQL document as a string `query`")
    if variables is not None and not isinstance(variables, dict):
        raise BadUserInputError("`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise BadUserInputError("`operationName` must be a string")
    return query, variables, name


def _coded(message: str, code: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, "retryable": False}}


def format_result(result: ExecutionResult, request_id: str) -> dict[str, Any]:
    """The response body for ``result``: data (when execution began) and coded errors."""
    validation_failed = isinstance(result, PreExecutionError)
    # Parse, validation and variable errors all come before execution: no `data` then.
    body: dict[str, Any] = {}
    if not validation_failed and (
        result.data is not None or any(error.path for error in result.errors or ())
    ):
        body["data"] = result.data
    if result.errors:
        body["errors"] = [
            format_error(error, validation_failed, request_id) for error in result.errors
        ]
    return body


def format_error(error: GraphQLError, validation_failed: bool, request_id: str) -> dict[str, Any]:
    """One entry of ``errors``, with our code; the unexpected is masked and logged."""
    original = error.original_error
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [loc._asdict() for loc in error.locations]
    if error.path:
        formatted["path"] = error.path
    if isinstance(error, GraphQLSyntaxError):
        formatted["extensions"] = {"code": PARSE_FAILED, "retryable": False}
    elif isinstance(original, GatewayError):
        formatted["message"] = original.message
        formatted["extensions"] = original.extensions()
        if isinstance(original, InternalServerError):
            formatted["extensions"]["requestId"] = request_id
    elif validation_failed and (original is None or error.nodes):
        # graphql-core's own rejections point at the document (a scalar's parse
        # error included); a bare error here is an exception strawberry caught.
        formatted["extensions"] = {"code": VALIDATION_FAILED, "retryable": False}
    elif not validation_failed and not error.path:
        # Variable values that do not fit their types: the client's to fix.
        formatted["extensions"] = {"code": BadUserInputError.code, "retryable": False}
    else:
        logger.error(
            "unexpected error (request %s)",
            request_id,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        formatted["message"] = "Internal server error"
        formatted["extensions"] = {
            **InternalServerError("").extensions(),
            "requestId": request_id,
        }
    return formatted
