"""Unit tests for content negotiation and the status of each response."""

from __future__ import annotations

import pytest

from gateway.http.media import GRAPHQL_RESPONSE_JSON, JSON, negotiate, status_for


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("application/json", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json; charset=utf-8", GRAPHQL_RESPONSE_JSON),
        # Apollo Client 4 and graphql-request 7
        ("application/graphql-response+json,application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json, application/json", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json;q=0.5", JSON),
        ("application/graphql-response+json;q=0, */*", JSON),
        ("*/*;q=0.1, application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("APPLICATION/JSON", JSON),
    ],
)
def test_negotiate_picks_the_best_served_type(accept: str | None, chosen: str) -> None:
    """The served type with the highest q wins; exact names beat wildcards, */* means JSON."""
    assert negotiate(accept) == chosen


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/xml, text/plain", "application/json;q=0", "nonsense", "*/*;q=x"],
)
def test_negotiate_finds_nothing_for_an_accept_it_cannot_serve(accept: str) -> None:
    """Accept headers that rule out both JSON types (or only say nonsense) get None: a 406."""
    assert negotiate(accept) is None


def test_status_follows_the_media_type_and_the_presence_of_data() -> None:
    """Without data: 400 in the spec's type, 200 in JSON; with data (even all null): 200."""
    refused = {"errors": [{"message": "no"}]}
    partial = {"data": {"a": 1, "b": None}, "errors": [{"message": "b failed", "path": ["b"]}]}
    assert status_for(GRAPHQL_RESPONSE_JSON, refused) == 400
    assert status_for(JSON, refused) == 200
    assert status_for(GRAPHQL_RESPONSE_JSON, partial) == 200
    assert status_for(GRAPHQL_RESPONSE_JSON, {"data": None, "errors": []}) == 200
