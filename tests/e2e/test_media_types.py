"""Content negotiation over HTTP: media types and status codes per the GraphQL over HTTP spec."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import ACME, Gateway, headers_for

from gateway.simulator import Simulator

SPEC = "application/graphql-response+json"
JSON = "application/json"


def send(gateway: Gateway, body: Any, accept: str | None) -> httpx.Response:
    """POST ``body`` with ACME's credential and ``accept`` (no Accept header when None)."""
    headers = headers_for(ACME) | ({"accept": accept} if accept is not None else {})
    return gateway.client.post(f"{gateway.url}/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    """The code of the response's only error."""
    (error,) = response.json()["errors"]
    return str(error["extensions"]["code"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ callCount("}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ callCont }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {"query": "query($f: CallFilterInput!) { callCount(filter: $f) }", "variables": {}},
            "BAD_USER_INPUT",
        ),
    ],
    ids=["parse", "validation", "variables"],
)
def test_failures_before_execution_are_400_only_in_the_spec_media_type(
    gateway: Gateway, sim: Simulator, body: dict[str, Any], code: str
) -> None:
    """No data: 400 as application/graphql-response+json, 200 as JSON; never an upstream call."""
    strict = send(gateway, body, SPEC)
    assert (strict.status_code, strict.headers["content-type"]) == (400, SPEC)
    assert "data" not in strict.json()
    assert code_of(strict) == code
    for accept in (JSON, "*/*", None):
        legacy = send(gateway, body, accept)
        assert (legacy.status_code, legacy.headers["content-type"]) == (200, JSON)
        assert legacy.json() == strict.json()
    assert sim.request_count == 0


@pytest.mark.parametrize("accept", [SPEC, JSON, None])
def test_a_partial_result_is_200_in_either_media_type(
    gateway: Gateway, sim: Simulator, accept: str | None
) -> None:
    """One alias failing beside one answering is 200 with data, whatever the client accepts."""
    query = (
        '{ ok: callCount(filter: {statuses: ["answered"]}) '
        'bad: callCount(filter: {from: "2025-01-02 00:00:00", to: "2025-01-01 00:00:00"}) }'
    )
    response = send(gateway, {"query": query}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == (accept or JSON)
    body = response.json()
    assert body["data"] == {"ok": sim.count("acme", {"st": ["answered"]}), "bad": None}
    assert [error["path"] for error in body["errors"]] == [["bad"]]


def test_an_accept_that_allows_neither_json_type_is_406(gateway: Gateway, sim: Simulator) -> None:
    """text/html (or anything without JSON) on a query is 406 with a coded error; nothing runs."""
    response = send(gateway, {"query": "{ callCount }"}, "text/html, application/xml;q=0.9")
    assert response.status_code == 406
    assert code_of(response) == "BAD_USER_INPUT"
    assert sim.request_count == 0


def test_wrongly_typed_parameters_are_400(gateway: Gateway, sim: Simulator) -> None:
    """A query, variables, operationName or extensions of the wrong type is a 400, in any type."""
    for body in (
        {"query": ["{ callCount }"]},
        {"query": "{ callCount }", "variables": "x"},
        {"query": "{ callCount }", "operationName": 0},
        {"query": "{ callCount }", "extensions": ["x"]},
        {"query": "{ callCount }", "documentId": 7},
        {"notquery": "{ callCount }"},
    ):
        for accept in (SPEC, JSON):
            assert send(gateway, body, accept).status_code == 400, body
    assert sim.request_count == 0


def test_a_batch_is_200_and_answered_in_the_negotiated_type(
    gateway: Gateway, sim: Simulator
) -> None:
    """A JSON array of operations is 200 even when one entry has no data; each entry says why."""
    response = send(gateway, [{"query": "{ __typename }"}, {"query": "{"}], SPEC)
    assert (response.status_code, response.headers["content-type"]) == (200, SPEC)
    first, second = response.json()
    assert first == {"data": {"__typename": "Query"}}
    assert second["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert response.headers["vary"] == "Accept"
