"""A new document of a known shape answers over HTTP exactly as a gateway that never saw it.

Two gateways in front of one simulator: one has first been asked a document of
the same shape (so it serves the new one from that shape), the other has not
(so it parses and validates it in full). Their response bodies must be equal,
byte for byte once parsed: data, errors, their codes, paths and locations
(the new document's literals are longer or shorter than the first's, so every
location after them moves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import ACME, VIEWER, Gateway, headers_for

from gateway.documents.literals import split
from gateway.simulator import Simulator

SERIES = (
    'callCountSeries(filter: {{from: "{0}", to: "{1}"}}, interval: DAY, timeZone: "{2}")'
    " {{ from count }}"
)

#: (first document, a new one of its shape, variables, credential) — each pair its own shape.
PAIRS: list[tuple[str, str, dict[str, Any] | None, Any]] = [
    (  # every alias fails upstream (no permission): one error per alias, each located
        "{ " + " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(5)) + " }",
        "{ "
        + " ".join(f"a{i}: callCount(filter: {{campaignId: {10**i}}})" for i in range(5))
        + " }",
        None,
        VIEWER,
    ),
    (  # counts, and a resolver's own error (from after to) after longer literals
        '{ ok: callCount(filter: {statuses: ["a"], campaignId: 1})\n'
        '  bad: callCount(filter: {from: "2025-01-02", to: "2025-01-03"}) }',
        '{ ok: callCount(filter: {statuses: ["answered"], campaignId: 100000})\n'
        '  bad: callCount(filter: {from: "2025-01-09 10:00:00", to: "2025-01-03"}) }',
        None,
        ACME,
    ),
    (  # a priorityFilter that is a String but not base64, refused at execution
        '{ x: callCount(priorityFilter: "QUJD") y: callCount(filter: {agentIds: [1, "2"]}) }',
        '{ x: callCount(priorityFilter: "%%%") y: callCount(filter: {agentIds: [3000, "4"]}) }',
        None,
        ACME,
    ),
    (  # a series in a zone, and a series in a zone that does not exist
        "{ s: " + SERIES.format("2025-03-29", "2025-03-31", "Europe/Berlin") + " }",
        "{ s: " + SERIES.format("2025-03-28 00:00:00", "2025-03-31", "Nowhere/City") + " }",
        None,
        ACME,
    ),
    (  # a literal the type refuses: rejected before execution, located in the new text
        "{ one: callCount(filter: {campaignId: 1}) two: callCount(filter: {campaignId: 2}) }",
        "{ one: callCount(filter: {campaignId: 11})"
        " two: callCount(filter: {campaignId: 99999999999}) }",
        None,
        ACME,
    ),
    (  # a variable that does not fit its type, after a longer default value
        "query($f: CallFilterInput = {campaignId: 1}, $c: Int) {"
        " a: callCount(filter: $f) b: callCount(filter: {campaignId: $c}) }",
        "query($f: CallFilterInput = {campaignId: 123456789}, $c: Int) {"
        " a: callCount(filter: $f) b: callCount(filter: {campaignId: $c}) }",
        {"c": "not a number"},
        ACME,
    ),
    (  # a JSON number no JSON document can carry, refused by the resolver
        "{ e: callCount(filter: {extra: {minDuration: 1.5}}) }",
        "{ e: callCount(filter: {extra: {minDuration: 1e400}}) }",
        None,
        ACME,
    ),
]


@pytest.fixture
def two_gateways(start_gateway: Callable[..., Gateway], sim: Simulator) -> tuple[Gateway, Gateway]:
    """A gateway that learns shapes from the first documents, and one that never sees them."""
    return start_gateway(rate_limit=0), start_gateway(rate_limit=0)


def test_every_pair_is_its_own_shape() -> None:
    """The corpus pairs share a shape within a pair and no shape across pairs."""
    keys = []
    for first, then, _, _ in PAIRS:
        known, variant = split(first), split(then)
        assert known is not None
        assert variant is not None
        assert known.key == variant.key
        keys.append(known.key)
    assert len(set(keys)) == len(keys)


def test_a_document_served_from_its_shape_answers_as_a_cold_gateway(
    two_gateways: tuple[Gateway, Gateway],
) -> None:
    """Data, errors, codes, paths and locations match a gateway that validated it in full."""
    warm, cold = two_gateways
    located = 0
    for first, then, variables, credential in PAIRS:
        headers = headers_for(credential)
        learned = warm.query(first, headers)
        assert all(
            e["extensions"]["code"] not in ("GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED")
            for e in learned.get("errors", [])
        ), learned
        served = warm.query(then, headers, variables)
        expected = cold.query(then, headers, variables)
        assert served == expected, then
        located += sum(1 for error in expected.get("errors", []) if "locations" in error)
    assert located >= 8  # the comparison covered errors whose locations moved


def test_the_fan_out_limit_holds_for_documents_served_from_their_shape(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Six inline aliases against a fan-out of five: refused every time, before any call."""
    gateway = start_gateway(rate_limit=0, max_fanout=5)
    headers = headers_for(ACME)
    for first in (1, 1_000, 2_000_000):  # a new document each time, one shape
        text = (
            "{ "
            + " ".join(f"a{i}: callCount(filter: {{campaignId: {first + i}}})" for i in range(6))
            + " }"
        )
        body = gateway.query(text, headers)
        assert body == {
            "errors": [
                {
                    "message": "The request may cause 6 upstream calls; at most 5",
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED", "retryable": False},
                }
            ]
        }
    assert sim.requests == []
