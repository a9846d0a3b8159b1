"""Persisted documents over HTTP: APQ by hand and through Apollo's link, and trusted documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ACME, Gateway, headers_for
from nodeclients import needs_node, run_node

from gateway.http.persisted import sha256_hex
from gateway.simulator import Simulator

ANSWERED = '{ callCount(filter: {statuses: ["answered"]}) }'
GRAPHQL_RESPONSE = {"accept": "application/graphql-response+json"}


def apq(digest: str) -> dict[str, Any]:
    """The extensions of an APQ request for ``digest``."""
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def post(gateway: Gateway, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    """POST ``body`` with ACME's credential; the status and the JSON answer."""
    response = gateway.client.post(
        f"{gateway.url}/graphql", json=body, headers={**headers_for(ACME), **headers}
    )
    return response.status_code, response.json()


def codes(body: dict[str, Any]) -> list[str]:
    """The extensions.code of every error in ``body``."""
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def test_apq_miss_register_replay_over_post(gateway: Gateway, sim: Simulator) -> None:
    """A hash alone is NOT_FOUND with no upstream call; with its document it runs and is kept."""
    digest = sha256_hex(ANSWERED)
    status, body = post(gateway, {"extensions": apq(digest)})
    assert (status, codes(body), "data" in body) == (200, ["PERSISTED_QUERY_NOT_FOUND"], False)
    assert sim.request_count == 0

    status, body = post(gateway, {"query": ANSWERED, "extensions": apq(digest)})
    expected = {"data": {"callCount": sim.count("acme", {"st": ["answered"]})}}
    assert (status, body) == (200, expected)
    assert sim.request_count == 1

    status, body = post(gateway, {"extensions": apq(digest)})
    assert (status, body) == (200, expected)
    assert sim.request_count == 1  # the count itself comes from the cache


def test_apq_miss_is_400_in_the_spec_media_type_and_not_cached(
    gateway: Gateway, sim: Simulator
) -> None:
    """Asked for application/graphql-response+json, the miss is a 400 that no CDN may keep."""
    response = gateway.client.post(
        f"{gateway.url}/graphql",
        json={"extensions": apq(sha256_hex("{ __typename }"))},
        headers=GRAPHQL_RESPONSE,
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert "no-cache" in response.headers["cache-control"]
    assert codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_apq_hash_that_does_not_match_its_document_is_refused(
    gateway: Gateway, sim: Simulator
) -> None:
    """A document sent under another document's hash is refused, not run, and not registered."""
    other = sha256_hex("{ callCount }")
    status, body = post(gateway, {"query": ANSWERED, "extensions": apq(other)})
    assert (status, codes(body), "data" in body) == (200, ["BAD_USER_INPUT"], False)
    _, again = post(gateway, {"extensions": apq(other)})
    assert codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert sim.request_count == 0


def test_apq_over_get(start_gateway: Callable[..., Gateway], sim: Simulator) -> None:
    """With GATEWAY_ALLOW_GET, a hash-only GET runs a document registered by POST."""
    gateway = start_gateway(allow_get=True)
    digest = sha256_hex(ANSWERED)
    params = {"extensions": json.dumps(apq(digest))}
    url = f"{gateway.url}/graphql"
    miss = gateway.client.get(url, params=params, headers=headers_for(ACME))
    assert codes(miss.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert sim.request_count == 0
    post(gateway, {"query": ANSWERED, "extensions": apq(digest)})
    hit = gateway.client.get(url, params=params, headers=headers_for(ACME))
    assert hit.status_code == 200
    assert hit.json() == {"data": {"callCount": sim.count("acme", {"st": ["answered"]})}}


@pytest.mark.slow
@needs_node
@pytest.mark.parametrize("method", ["post", "get"])
def test_apollo_persisted_query_link(
    start_gateway: Callable[..., Gateway], sim: Simulator, method: str
) -> None:
    """Apollo Client's createPersistedQueryLink, unmodified: miss, register, then hash alone."""
    gateway = start_gateway(allow_get=True)
    query = f'query Apq{method} {{ callCount(filter: {{statuses: ["{method}-status"]}}) }}'
    report = run_node(
        "apq.mjs", f"{gateway.url}/graphql", json.dumps(headers_for(ACME)), query, method
    )
    direct = gateway.query(query, headers_for(ACME))["data"]
    assert report["data"] == [direct, direct]
    digest = sha256_hex(report["printed"])  # the link hashes its own printing of the query
    verb = method.upper()
    # Apollo Client 4 asks for application/graphql-response+json: the miss is a 400.
    assert report["sent"] == [
        {"method": verb, "hash": digest, "query": False, "status": 400},
        {"method": "POST", "hash": digest, "query": True, "status": 200},
        {"method": verb, "hash": digest, "query": False, "status": 200},
    ]
    assert sim.request_count == 1


# Trusted documents: GATEWAY_PERSISTED_DOCUMENTS (+ GATEWAY_PERSISTED_ONLY)

ALL = "query All { callCount }"


def manifest(tmp_path: Path, apollo: bool) -> str:
    """A file listing ALL and ANSWERED, as Apollo's generator or GraphQL Codegen writes it."""
    bodies = {"All": ALL, "Answered": ANSWERED}
    if apollo:
        content: object = {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha256_hex(body), "name": name, "type": "query", "body": body}
                for name, body in bodies.items()
            ],
        }
    else:
        content = {sha256_hex(body): body for body in bodies.values()}
    path = tmp_path / "persisted.json"
    path.write_text(json.dumps(content))
    return str(path)


@pytest.mark.parametrize("apollo", [True, False], ids=["apollo-manifest", "id-map"])
def test_trusted_only_runs_listed_ids_and_refuses_the_rest(
    start_gateway: Callable[..., Gateway], sim: Simulator, tmp_path: Path, apollo: bool
) -> None:
    """Listed ids run (documentId or persistedQuery); text and unknown ids never reach upstream."""
    gateway = start_gateway(
        persisted_documents=manifest(tmp_path, apollo), persisted_only=True, allow_get=True
    )
    status, text = post(gateway, {"query": ALL})
    assert (status, codes(text)) == (200, ["PERSISTED_QUERY_ID_REQUIRED"])
    status, registering = post(gateway, {"query": ALL, "extensions": apq(sha256_hex(ALL))})
    assert codes(registering) == ["PERSISTED_QUERY_ID_REQUIRED"]
    unknown = sha256_hex("{ callCount(filter: {campaignId: 9}) }")
    status, body = post(gateway, {"documentId": f"sha256:{unknown}"}, **GRAPHQL_RESPONSE)
    assert (status, codes(body)) == (400, ["PERSISTED_QUERY_NOT_IN_LIST"])
    _, body = post(gateway, {"extensions": apq(unknown)})
    assert codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert sim.request_count == 0

    everything = {"data": {"callCount": sim.count("acme")}}
    assert post(gateway, {"documentId": f"sha256:{sha256_hex(ALL)}"}) == (200, everything)
    assert post(gateway, {"extensions": apq(sha256_hex(ALL))}) == (200, everything)
    by_get = gateway.client.get(
        f"{gateway.url}/graphql",
        params={"documentId": sha256_hex(ANSWERED)},
        headers=headers_for(ACME),
    )
    assert by_get.json() == {"data": {"callCount": sim.count("acme", {"st": ["answered"]})}}
    assert sim.request_count == 2


def test_listed_documents_run_by_id_beside_free_form_ones(
    start_gateway: Callable[..., Gateway], sim: Simulator, tmp_path: Path
) -> None:
    """Without GATEWAY_PERSISTED_ONLY, listed ids run and documents sent as text still run."""
    gateway = start_gateway(persisted_documents=manifest(tmp_path, apollo=True))
    assert post(gateway, {"documentId": sha256_hex(ALL)}) == (
        200,
        {"data": {"callCount": sim.count("acme")}},
    )
    assert post(gateway, {"query": "{ __typename }"}) == (200, {"data": {"__typename": "Query"}})
