"""The HTTP surface under hostile input: limits, batching, GET, and the graphql-cop checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from conftest import ACME, Gateway, headers_for

from gateway.simulator import Simulator

PRODUCTION = {"graphiql": False, "introspection": False, "allow_get": False}


@pytest.fixture
def production(start_gateway: Callable[..., Gateway], sim: Simulator) -> Gateway:
    """A gateway with the production switches: no IDE, no introspection, no GET queries."""
    return start_gateway(**PRODUCTION)


def codes(body: dict[str, object]) -> list[str]:
    """The extensions.code of every error in ``body``."""
    errors = body.get("errors") or []
    assert isinstance(errors, list)
    return [error["extensions"]["code"] for error in errors]


# graphql-cop's checks, each answered "not vulnerable" with the production settings.


def test_cop_introspection_is_off(production: Gateway, sim: Simulator) -> None:
    """Introspection query: refused, no schema in the answer."""
    body = production.query("query cop { __schema { types { name } } }")
    assert "data" not in body
    assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}


def test_cop_no_ide(production: Gateway, sim: Simulator) -> None:
    """GraphiQL is not served to a browser."""
    response = production.client.get(f"{production.url}/graphql", headers={"accept": "text/html"})
    assert response.status_code == 405
    assert "graphiql" not in response.text.lower()


def test_cop_get_queries_are_refused(production: Gateway, sim: Simulator) -> None:
    """A query in a GET URL (CSRF, credentials in access logs) is not executed."""
    response = production.client.get(
        f"{production.url}/graphql", params={"query": "{ __typename }"}, headers=headers_for(ACME)
    )
    assert response.status_code == 405
    assert "data" not in response.json()
    assert sim.request_count == 0


def test_cop_alias_overloading(production: Gateway, sim: Simulator) -> None:
    """101 aliases are refused with one error, before any upstream call."""
    query = "query cop { " + " ".join(f"a{i}: callCount" for i in range(101)) + " }"
    body = production.query(query, headers_for(ACME))
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert sim.request_count == 0


def test_cop_array_batching_beyond_the_limit(production: Gateway, sim: Simulator) -> None:
    """A batch longer than GATEWAY_MAX_BATCH is refused whole, nothing executed."""
    batch = [{"query": "query cop { __typename }"}] * 11
    response = production.client.post(f"{production.url}/graphql", json=batch)
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body, dict)
    assert codes(body) == ["BAD_USER_INPUT"]


def test_cop_directive_overloading(production: Gateway, sim: Simulator) -> None:
    """Ten repeated directives give one error, not one per directive."""
    body = production.query("query cop { __typename " + "@aa" * 10 + " }")
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


def test_cop_circular_introspection(start_gateway: Callable[..., Gateway], sim: Simulator) -> None:
    """A deep fields/type/fields introspection is refused, even with introspection on."""
    gateway = start_gateway(introspection=True)
    query = (
        "query cop { __schema { types { fields { type { fields { type { fields "
        "{ type { fields { name } } } } } } } } } }"
    )
    assert codes(gateway.query(query)) == ["GRAPHQL_VALIDATION_FAILED"]


def test_cop_form_urlencoded_post(production: Gateway, sim: Simulator) -> None:
    """A form-encoded POST (a CSRF vector) is refused with 415 and not executed."""
    response = production.client.post(
        f"{production.url}/graphql", data={"query": "{ __typename }"}, headers=headers_for(ACME)
    )
    assert response.status_code == 415
    assert "data" not in response.json()


def test_cop_unhandled_error_detail(production: Gateway, sim: Simulator) -> None:
    """A broken document yields a coded error with no stack trace or exception in it."""
    body = production.query("qwerty cop { abc }")
    assert codes(body) == ["GRAPHQL_PARSE_FAILED"]
    text = str(body)
    for leak in ("Traceback", "exception", "stacktrace", 'File "'):
        assert leak not in text


def test_cop_no_trace_mode(production: Gateway, sim: Simulator) -> None:
    """No tracing extension is ever added to a response."""
    body = production.query("query cop { __typename }")
    assert body == {"data": {"__typename": "Query"}}


def test_cop_no_field_suggestions(production: Gateway, sim: Simulator) -> None:
    """A misspelt field gets no "Did you mean" hint when introspection is off."""
    body = production.query("{ callCont }")
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "Did you mean" not in str(body)
    assert "callCount" not in str(body)


# Limits


def test_body_over_the_limit_is_413_while_streaming(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A chunked body with no Content-Length is cut off at GATEWAY_MAX_BODY_BYTES."""
    gateway = start_gateway(max_body_bytes=4096)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b'{"query": "{ __typename }", "pad": "'
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 1024
        yield b'"}'

    response = gateway.client.post(
        f"{gateway.url}/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert codes(response.json()) == ["BAD_USER_INPUT"]


def test_declared_length_over_the_limit_is_413(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A Content-Length over the limit is refused before the body is read."""
    gateway = start_gateway(max_body_bytes=4096)
    response = gateway.client.post(
        f"{gateway.url}/graphql",
        content=b'{"query": "{ __typename }", "pad": "' + b"x" * 5000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_fanout_budget_refuses_before_any_upstream_call(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A request whose callCount fields exceed GATEWAY_MAX_FANOUT causes no upstream call."""
    gateway = start_gateway(max_fanout=3)
    query = (
        "{ " + " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(4)) + " }"
    )
    body = gateway.query(query, headers_for(ACME))
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "at most 3" in body["errors"][0]["message"]
    assert sim.request_count == 0


def test_fanout_budget_is_shared_by_a_batch(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Two operations of two aliases each exceed a budget of three together."""
    gateway = start_gateway(max_fanout=3)
    op = {
        "query": "{ a: callCount(filter: {campaignId: 1}) b: callCount(filter: {campaignId: 2}) }"
    }
    response = gateway.client.post(
        f"{gateway.url}/graphql", json=[op, op], headers=headers_for(ACME)
    )
    assert response.status_code == 200
    assert [codes(item) for item in response.json()] == [["GRAPHQL_VALIDATION_FAILED"]] * 2
    assert sim.request_count == 0
    single = gateway.client.post(f"{gateway.url}/graphql", json=[op], headers=headers_for(ACME))
    assert "errors" not in single.json()[0]
    assert sim.request_count == 2


def test_array_batching_returns_results_in_order(gateway: Gateway, sim: Simulator) -> None:
    """A batch of operations answers a list in the same order, identical questions asked once."""
    batch = [
        {"query": '{ callCount(filter: {statuses: ["answered"]}) }'},
        {
            "query": "query($c: Int) { callCount(filter: {campaignId: $c}) }",
            "variables": {"c": 123},
        },
        {"query": '{ callCount(filter: {statuses: ["answered"]}) }'},
        {"query": "{ nope }"},
    ]
    response = gateway.client.post(f"{gateway.url}/graphql", json=batch, headers=headers_for(ACME))
    results = response.json()
    answered = sim.count("acme", {"st": ["answered"]})
    assert results[0] == {"data": {"callCount": answered}}
    assert results[1] == {"data": {"callCount": sim.count("acme", {"campId": 123})}}
    assert results[2] == {"data": {"callCount": answered}}
    assert codes(results[3]) == ["GRAPHQL_VALIDATION_FAILED"]
    assert sim.request_count == 2


def test_get_queries_work_when_switched_on(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """With GATEWAY_ALLOW_GET on, a GET query runs; a GET mutation is a 405 and does not."""
    gateway = start_gateway(allow_get=True)
    response = gateway.client.get(
        f"{gateway.url}/graphql",
        params={
            "query": "query($c: Int) { callCount(filter: {campaignId: $c}) }",
            "variables": '{"c": 123}',
        },
        headers=headers_for(ACME),
    )
    assert response.json() == {"data": {"callCount": sim.count("acme", {"campId": 123})}}
    for accept in ("application/json", "application/graphql-response+json"):
        mutation = gateway.client.get(
            f"{gateway.url}/graphql", params={"query": "mutation { x }"}, headers={"accept": accept}
        )
        assert (mutation.status_code, mutation.headers["allow"]) == (405, "POST")
        assert codes(mutation.json()) == ["BAD_USER_INPUT"]
    assert sim.request_count == 1


def test_cors_preflight_is_cached(start_gateway: Callable[..., Gateway], sim: Simulator) -> None:
    """The preflight answer carries a max-age so browsers do not repeat it per request."""
    gateway = start_gateway(cors_origins=("https://dash.example.com",))
    response = gateway.client.options(
        f"{gateway.url}/graphql",
        headers={
            "Origin": "https://dash.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-deepcall-user-id,x-deepcall-token",
        },
    )
    assert int(response.headers["access-control-max-age"]) >= 600
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-deepcall-user-id" in allowed
    assert "x-deepcall-token" in allowed


def test_deeply_nested_variables_are_a_coded_error(gateway: Gateway, sim: Simulator) -> None:
    """Variables nested thousands deep are refused quickly with a code, not a crash."""
    nested = "[" * 5000 + "]" * 5000
    body = (
        '{"query": "query($f: CallFilterInput) { callCount(filter: $f) }", '
        '"variables": {"f": {"extra": {"x": ' + nested + "}}}}"
    )
    response = gateway.client.post(
        f"{gateway.url}/graphql",
        content=body,
        headers={"content-type": "application/json", **headers_for(ACME)},
    )
    assert response.status_code == 400
    assert codes(response.json()) == ["GRAPHQL_PARSE_FAILED"]
    assert sim.request_count == 0


def test_extra_nested_too_deep_is_bad_user_input(gateway: Gateway, sim: Simulator) -> None:
    """extra values nested past the limit are refused before any upstream call."""
    deep: object = 1
    for _ in range(20):
        deep = [deep]
    body = gateway.query(
        "query($f: CallFilterInput) { callCount(filter: $f) }",
        headers_for(ACME),
        {"f": {"extra": {"x": deep}}},
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert sim.request_count == 0
