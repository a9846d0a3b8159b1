"""GraphQL results into response bodies: the one error shape.

Every error carries ``extensions.code`` from the closed set of
``gateway.errors`` and ``extensions.retryable``. Errors nobody planned for are
masked to the client and logged here, once, with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSyntaxError

from gateway.errors import PARSE_FAILED, BadUserInputError, GatewayError, InternalServerError

logger = logging.getLogger("gateway.endpoint")


def rejected(error: GraphQLError, code: str) -> dict[str, Any]:
    """One entry of ``errors`` for a document graphql-core refused (a syntax error: parse)."""
    formatted: dict[str, Any] = {
        "message": error.message,
        "extensions": {
            "code": PARSE_FAILED if isinstance(error, GraphQLSyntaxError) else code,
            "retryable": False,
        },
    }
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
