"""Unmodified clients against a served gateway: the spec's audits, Apollo, graphql-request, gql."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest
from conftest import ACME, Gateway, headers_for
from nodeclients import needs_node, run_node

from gateway.simulator import Simulator

pytestmark = pytest.mark.slow

QUERY = """query Counts($statuses: [String!]) {
  answered: callCount(filter: {statuses: $statuses})
  all: callCount
}"""
VARIABLES = {"statuses": ["answered"]}


@needs_node
def test_graphql_http_audits_pass_every_must_should_and_may(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """graphql-http's serverAudits, GET allowed: MUST 13/13, SHOULD 23/23, MAY 25/25, no call."""
    gateway = start_gateway(allow_get=True)
    results = run_node("audit.mjs", f"{gateway.url}/graphql")
    failed = [result for result in results if result["status"] != "ok"]
    assert failed == []
    levels = Counter(result["name"].split(" ", 1)[0] for result in results)
    assert levels == {"MUST": 13, "SHOULD": 23, "MAY": 25}
    assert sim.request_count == 0


@needs_node
def test_apollo_http_links_and_graphql_request_get_a_direct_posts_counts(
    gateway: Gateway, sim: Simulator
) -> None:
    """Apollo Client's HttpLink and BatchHttpLink, and graphql-request, answer as a POST does."""
    direct = gateway.query(QUERY, headers_for(ACME), VARIABLES)["data"]
    assert direct["all"] > direct["answered"] > 0
    answers = run_node(
        "clients.mjs",
        f"{gateway.url}/graphql",
        json.dumps(headers_for(ACME)),
        QUERY,
        json.dumps(VARIABLES),
    )
    assert answers == {
        "httpLink": direct,
        "batchHttpLink": [direct, direct],
        "graphqlRequest": direct,
    }
    assert sim.request_count == 2  # the two questions, once each; the rest from the cache


def test_gql_gets_a_direct_posts_counts(gateway: Gateway, sim: Simulator) -> None:
    """The Python client gql (over httpx) answers as a direct POST does."""
    from gql import Client, GraphQLRequest
    from gql.transport.httpx import HTTPXTransport

    direct = gateway.query(QUERY, headers_for(ACME), VARIABLES)["data"]
    transport = HTTPXTransport(url=f"{gateway.url}/graphql", headers=headers_for(ACME))
    with Client(transport=transport) as session:
        answer = session.execute(GraphQLRequest(QUERY, variable_values=VARIABLES))
    assert answer == direct
    assert sim.request_count == 2
