"""Operations as clients send them: a JSON body (one operation or a batch) or GET parameters.

Each is checked for shape here, before any document is looked at: a
parameter of the wrong type is a ``MalformedRequestError`` (HTTP 400) naming it, as the
GraphQL over HTTP spec asks. A document may be missing when the operation
names a persisted one instead (``extensions.persistedQuery`` or
``documentId``); ``persisted`` resolves those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from gateway.errors import MalformedRequestError, UnsupportedRequestError

#: GET parameters that make a GET an operation rather than a request for GraphiQL.
OPERATION_PARAMS = frozenset({"query", "extensions", "documentId"})


@dataclass(frozen=True)
class OperationRequest:
    """One operation as the client sent it (``query`` is None when only an id was sent)."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None = None
    document_id: str | None = None


def from_params(params: Mapping[str, str]) -> OperationRequest:
    """The operation in GET parameters; ``variables`` and ``extensions`` are JSON text."""
    return operation(
        {
            "query": params.get("query"),
            "variables": _json_param(params, "variables"),
            "operationName": params.get("operationName"),
            "extensions": _json_param(params, "extensions"),
            "documentId": params.get("documentId"),
        }
    )


def from_body(body: bytes, max_batch: int) -> tuple[bool, list[OperationRequest]]:
    """``(is_batch, operations)`` from a POSTed JSON body."""
    try:
        # orjson refuses NaN and Infinity (not JSON) and nesting past 1,024 levels.
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequestError("The body is not valid JSON") from None
    if not isinstance(payload, list):
        return False, [operation(payload)]
    if not payload:
        raise MalformedRequestError("The batch is empty")
    if len(payload) > max_batch:
        raise UnsupportedRequestError(f"A batch of {len(payload)} operations; at most {max_batch}")
    return True, [operation(item) for item in payload]


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a JSON POST, counted against ``limit`` as it streams in.

    Its time is bounded by the server (``gateway.server.protocol``), which
    answers 408 when a body takes longer than ``GATEWAY_BODY_TIMEOUT``.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedRequestError("POST a JSON body (application/json)", status=415)
    too_large = UnsupportedRequestError(f"The body exceeds {limit} bytes", status=413)
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


def operation(payload: object) -> OperationRequest:
    """One operation from its JSON object; every parameter of the wrong type is a 400."""
    if not isinstance(payload, dict):
        raise MalformedRequestError("Each operation must be a JSON object with a query")
    query = payload.get("query")
    variables = payload.get("variables")
    name = payload.get("operationName")
    extensions = payload.get("extensions")
    document_id = payload.get("documentId")
    if query is not None and not isinstance(query, str):
        raise MalformedRequestError("`query` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise MalformedRequestError("`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise MalformedRequestError("`operationName` must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise MalformedRequestError("`extensions` must be a JSON object")
    if document_id is not None and (not isinstance(document_id, str) or not document_id):
        raise MalformedRequestError("`documentId` must be a non-empty string")
    if query is not None and not query.strip():
        query = None
    if query is None and document_id is None and not (extensions or {}).get("persistedQuery"):
        raise MalformedRequestError("Send the GraphQL document as a string `query`")
    return OperationRequest(query, variables, name, extensions, document_id)


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedRequestError(f"`{name}` is not valid JSON") from None
