"""GET must not change anything: only queries may be sent by GET (a 405 otherwise)."""

from __future__ import annotations

from collections.abc import Sequence

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

from gateway.documents import Prepared
from gateway.errors import PARSE_FAILED, GatewayError, UnsupportedRequestError
from gateway.http.parameters import OperationRequest
from gateway.http.persisted import Resolved


def refuse_non_queries(
    resolved: Sequence[Resolved | GatewayError],
    prepared: Sequence[Prepared | GatewayError],
    operations: Sequence[OperationRequest],
    max_tokens: int,
) -> None:
    """Raise a 405 if any operation sent by GET is a mutation or a subscription."""
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
            kind = operation_type(outcome.text, op.operation_name, max_tokens)
        if kind not in (None, OperationType.QUERY):
            raise UnsupportedRequestError(
                "Only queries may be sent by GET; POST anything else",
                status=405,
                headers={"Allow": "POST"},
            )


def _selected_type(prepared: Prepared, name: str | None) -> OperationType | None:
    """The type of the operation ``name`` selects in a valid document; None if none."""
    operations = prepared.operations
    if name is None:
        return next(iter(operations.values())).type if len(operations) == 1 else None
    chosen = operations.get(name)
    return chosen.type if chosen is not None else None


def operation_type(text: str, name: str | None, max_tokens: int) -> OperationType | None:
    """The type of the operation ``name`` selects in ``text``; None if it cannot be told.

    Parsed apart from ``gateway.documents``,
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
