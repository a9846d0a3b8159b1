"""GraphQL results into response bodies: the one error shape.

Every error in every response carries ``extensions.code`` from the closed set
in ``gateway.errors`` and ``extensions.retryable``. Errors nobody planned for
are masked to the client and logged here, once, with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLError, GraphQLSyntaxError
from starlette.responses import Response

from gateway.errors import PARSE_FAILED, BadUserInputError, GatewayError, InternalServerError

logger = logging.getLogger("gateway.endpoint")

REQUEST_ID_HEADER = "X-Request-ID"


def coded(message: str, code: str) -> dict[str, Any]:
    """One entry of ``errors`` for a failure that is not retryable."""
    return {"message": message, "extensions": {"code": code, "retryable": False}}


class JSONResponse(Response):
    """JSON rendered by orjson: several times faster than the standard library's."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON."""
        return orjson.dumps(content)


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A GraphQL-shaped error response for a request that never reached execution."""
    return JSONResponse(
        {"errors": [coded(message, code)]},
        status_code=status,
        headers={**(headers or {}), REQUEST_ID_HEADER: request_id},
        media_type=media_type,
    )


def rejected(error: GraphQLError, code: str) -> dict[str, Any]:
    formatted = coded(
        error.message, PARSE_FAILED if isinstance(error, GraphQLSyntaxError) else code
    )
    if error.locations:
        formatted["locations"] = [loc._asdict() for loc in error.locations]
    return formatted


def format_result(result: ExecutionResult, request_id: str) -> dict[str, Any]:
    """The response body for an executed operation: data (when execution began) and errors."""
    body: dict[str, Any] = {}
    errors = result.errors or []
    # Variable values that do not fit their types fail before execution: no `data` then.
    if result.data is not None or any(error.path for error in errors):
        body["data"] = result.data
    if errors:
        body["errors"] = [format_error(error, request_id) for error in errors]
    return body


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """One entry of ``errors``, with our code; the unexpected is masked and logged."""
    original = error.original_error
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [loc._asdict() for loc in error.locations]
    if error.path:
        formatted["path"] = error.path
    if isinstance(original, GatewayError):
        formatted["message"] = original.message
        formatted["extensions"] = original.extensions()
        if isinstance(original, InternalServerError):
            formatted["extensions"]["requestId"] = request_id
    elif not error.path:
        # Before any field ran: variables that do not fit their types.
        formatted["extensions"] = {"code": BadUserInputError.code, "retryable": False}
    else:
        logger.error(
            "unexpected error (request %s)",
            request_id,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        formatted["message"] = "Internal server error"
        formatted["extensions"] = {**InternalServerError("").extensions(), "requestId": request_id}
    return formatted
