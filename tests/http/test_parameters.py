"""Unit tests for request parameters: their types, GET's JSON parameters, an operation's type."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationType

from gateway.errors import RequestError
from gateway.http.parameters import (
    OperationRequest,
    from_body,
    from_params,
    operation,
)
from gateway.http.safety import operation_type


@pytest.mark.parametrize(
    "payload",
    [
        {"query": 1},
        {"query": "{ a }", "variables": []},
        {"query": "{ a }", "operationName": False},
        {"query": "{ a }", "extensions": "x"},
        {"query": "{ a }", "documentId": ""},
        {"query": "   "},
        {"variables": {}},
        "{ a }",
    ],
)
def test_parameters_of_the_wrong_type_are_400(payload: Any) -> None:
    """Each parameter of the wrong type, or no document nor id at all, is a 400 RequestError."""
    with pytest.raises(RequestError) as raised:
        operation(payload)
    assert raised.value.status == 400


def test_an_id_may_stand_for_the_document() -> None:
    """documentId or extensions.persistedQuery without a query is an operation; nulls are absent."""
    assert operation({"documentId": "abc", "variables": None}) == OperationRequest(
        None, None, None, None, "abc"
    )
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": "f" * 64}}
    assert operation({"extensions": persisted}).extensions == persisted


def test_get_parameters_carry_json_variables_and_extensions() -> None:
    """GET's variables and extensions are JSON text; text that is not JSON is a 400."""
    op = from_params({"query": "{ a }", "variables": '{"x": 1}', "extensions": '{"k": true}'})
    assert (op.variables, op.extensions) == ({"x": 1}, {"k": True})
    with pytest.raises(RequestError):
        from_params({"query": "{ a }", "extensions": "{nope"})


def test_batches_are_bounded() -> None:
    """A JSON array is a batch of at most max_batch operations, and never empty."""
    assert from_body(b'[{"query": "{ a }"}]', 2)[0] is True
    for body in (b"[]", b'[{"query": "{ a }"}, {"query": "{ a }"}, {"query": "{ a }"}]'):
        with pytest.raises(RequestError):
            from_body(body, 2)


@pytest.mark.parametrize(
    ("text", "name", "kind"),
    [
        ("{ a }", None, OperationType.QUERY),
        ("mutation { a }", None, OperationType.MUTATION),
        ("query Q { a } mutation M { b }", "M", OperationType.MUTATION),
        ("query Q { a } mutation M { b }", None, None),
        ("subscription S { a }", "S", OperationType.SUBSCRIPTION),
        ("mutation {", None, None),
    ],
)
def test_operation_type_names_what_would_run(
    text: str, name: str | None, kind: OperationType | None
) -> None:
    """The selected operation's type, or None when the document does not parse or is ambiguous."""
    assert operation_type(text, name, max_tokens=100) is kind
