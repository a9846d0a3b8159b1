"""Operations as clients send them: a JSON body (one operation or a batch) or GET parameters.

Each is checked for shape here, before any document is looked at: a
parameter of the wrong type is a ``RequestError`` (HTTP 400) naming it, as the
GraphQL over HTTP spec asks. A document may be missing when the operation
names a persisted one instead (``extensions.persistedQuery`` or
``documentId``); ``gateway.persisted`` resolves those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import Request

from gateway.errors import PARSE_FAILED, BadUserInputError

#: GET parameters that make a GET an operation rather than a request for GraphiQL.
OPERATION_PARAMS = frozenset({"query", "extensions", "documentId"})


class RequestError(Exception):
    """The HTTP request itself is unusable; answered with ``status`` and one coded error."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


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
        raise RequestError(400, PARSE_FAILED, "The body is not valid JSON") from None
    if not isinstance(payload, list):
        return False, [operation(payload)]
    if not payload:
        raise RequestError(400, PARSE_FAILED, "The batch is empty")
    if len(payload) > max_batch:
        raise RequestError(
            400,
            BadUserInputError.code,
            f"A batch of {len(payload)} operations; at most {max_batch}",
        )
    return True, [operation(item) for item in payload]


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a JSON POST, counted against ``limit`` as it streams in."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise RequestError(415, BadUserInputError.code, "POST a JSON body (application/json)")
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


def operation(payload: object) -> OperationRequest:
    """One operation from its JSON object; every parameter of the wrong type is a 400."""
    if not isinstance(payload, dict):
        raise RequestError(400, PARSE_FAILED, "Each operation must be a JSON object with a query")
    query = payload.get("query")
    variables = payload.get("variables")
    name = payload.get("operationName")
    extensions = payload.get("extensions")
    document_id = payload.get("documentId")
    if query is not None and not isinstance(query, str):
        raise RequestError(400, PARSE_FAILED, "`query` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, PARSE_FAILED, "`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise RequestError(400, PARSE_FAILED, "`operationName` must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, PARSE_FAILED, "`extensions` must be a JSON object")
    if document_id is not None and (not isinstance(document_id, str) or not document_id):
        raise RequestError(400, PARSE_FAILED, "`documentId` must be a non-empty string")
    if query is not None and not query.strip():
        query = None
    if query is None and document_id is None and not (extensions or {}).get("persistedQuery"):
        raise RequestError(400, PARSE_FAILED, "Send the GraphQL document as a string `query`")
    return OperationRequest(query, variables, name, extensions, document_id)


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, PARSE_FAILED, f"`{name}` is not valid JSON") from None


def operation_type(text: str, name: str | None, max_tokens: int) -> OperationType | None:
    """The type of the operation ``name`` selects in ``text``; None if it cannot be told.

    For GET, which may carry only queries: parsed apart from ``gateway.documents``,
    whose verdict (a mutation does not validate against this schema) says no more.
    """
    try:
        document = parse(text, max_tokens=max_tokens, no_location=True)
    except GraphQLError:
        return None
    chosen = [
        definition.operation
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        and (name is None or (definition.name is not None and definition.name.value == name))
    ]
    return chosen[0] if len(chosen) == 1 else None
