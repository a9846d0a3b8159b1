"""callCount end to end: what the upstream receives, credentials, and the HTTP surface."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable

import pytest
from conftest import ACME, GLOBEX, Gateway, headers_for
from graphql.execution import Executor

from gateway.api import RequestBudget, RequestContext
from gateway.simulator import Simulator

COUNT_WITH_FILTER = (
    "query($f: CallFilterInput, $p: String) { callCount(filter: $f, priorityFilter: $p) }"
)


def test_fully_populated_filter_reaches_upstream_mapped(gateway: Gateway, sim: Simulator) -> None:
    """Every filter field arrives under its upstream key, lists sorted and de-duplicated."""
    variables = {
        "f": {
            "from": "2026-11-01T00:00:00+05:30",
            "to": "2026-11-03 23:59:59",
            "agentIds": ["112", "101", "112", "105"],
            "campaignId": 3,
            "statuses": ["missed", "answered", "missed"],
            "extra": {"callType": ["IBD"], "minDuration": 10},
        },
        "p": "cHJpb3JpdHk=",
    }
    body = gateway.query(COUNT_WITH_FILTER, headers_for(ACME), variables)
    assert "errors" not in body
    assert sim.requests == [
        {
            "ssid": ACME.ssid,
            "filter": {
                "dtGte": "2026-11-01 00:00:00",
                "dtLte": "2026-11-03 23:59:59",
                "agtIds": ["101", "105", "112"],
                "campId": 3,
                "st": ["answered", "missed"],
                "callType": ["IBD"],
                "minDuration": 10,
            },
            "priorityFilter": "cHJpb3JpdHk=",
        }
    ]
    assert body["data"]["callCount"] == sim.count("acme", sim.requests[0]["filter"])


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("2026-11-20T00:00:00Z", "2026-11-20 05:30:00"),
        ("2026-11-20T09:00:00-05:00", "2026-11-20 19:30:00"),
        ("2026-11-20T09:00:00+05:30", "2026-11-20 09:00:00"),
        ("2026-11-20T09:00:00", "2026-11-20 09:00:00"),
        ("2026-11-20 09:00:00", "2026-11-20 09:00:00"),
        ("2026-11-20T09:00:00.250+05:30", "2026-11-20 09:00:01"),
    ],
)
def test_datetimes_reach_upstream_in_its_zone(
    gateway: Gateway, sim: Simulator, given: str, sent: str
) -> None:
    """An offset DateTime is converted to the upstream's zone; a naive one is sent as is."""
    gateway.query(COUNT_WITH_FILTER, headers_for(ACME), {"f": {"from": given}})
    assert sim.requests[-1]["filter"] == {"dtGte": sent}


def test_upstream_time_zone_is_a_setting(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """GATEWAY_UPSTREAM_TZ decides the wall-clock time sent for an offset DateTime."""
    gateway = start_gateway(upstream_tz="Europe/Berlin")
    gateway.query(COUNT_WITH_FILTER, headers_for(ACME), {"f": {"to": "2026-07-01T12:00:00Z"}})
    assert sim.requests[-1]["filter"] == {"dtLte": "2026-07-01 14:00:00"}


def test_from_after_to_is_rejected_before_any_upstream_call(
    gateway: Gateway, sim: Simulator
) -> None:
    """from after to is BAD_USER_INPUT, also across offsets, and nothing goes upstream."""
    variables = {"f": {"from": "2026-11-20T10:00:00+05:30", "to": "2026-11-20T04:00:00Z"}}
    body = gateway.query(COUNT_WITH_FILTER, headers_for(ACME), variables)
    assert body["data"] == {"callCount": None}
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert sim.request_count == 0


@pytest.mark.parametrize("key", ["dtGte", "dtLte", "agtIds", "campId", "st"])
def test_extra_clashing_with_a_modelled_key_is_rejected(
    gateway: Gateway, sim: Simulator, key: str
) -> None:
    """extra may not set a key the typed fields model."""
    body = gateway.query(COUNT_WITH_FILTER, headers_for(ACME), {"f": {"extra": {key: 1}}})
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "retryable": False}
    assert key in body["errors"][0]["message"]
    assert sim.request_count == 0


def test_user_id_and_token_are_forwarded_without_ssid(gateway: Gateway, sim: Simulator) -> None:
    """The user id + token form reaches the upstream as userId and token only."""
    body = gateway.query("{ callCount }", headers_for(GLOBEX))
    assert body == {"data": {"callCount": sim.count("globex", {})}}
    assert sim.requests == [{"userId": GLOBEX.user_id, "token": GLOBEX.token}]


def test_ssid_is_forwarded_alone(gateway: Gateway, sim: Simulator) -> None:
    """The session form reaches the upstream as ssid only, with no filter when none is given."""
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body == {"data": {"callCount": sim.count("acme", {})}}
    assert sim.requests == [{"ssid": ACME.ssid}]


@pytest.mark.parametrize(
    ("headers", "code", "says"),
    [
        ({}, "UNAUTHENTICATED", "X-DeepCall-SSID"),
        ({"X-DeepCall-SSID": ""}, "UNAUTHENTICATED", "X-DeepCall-SSID"),
        ({"X-DeepCall-User-Id": "2001"}, "BAD_USER_INPUT", "X-DeepCall-Token"),
        ({"X-DeepCall-Token": "t"}, "BAD_USER_INPUT", "X-DeepCall-User-Id"),
        (
            {"X-DeepCall-SSID": "s", "X-DeepCall-User-Id": "2001", "X-DeepCall-Token": "t"},
            "BAD_USER_INPUT",
            "not both",
        ),
        ({"X-DeepCall-SSID": "s", "X-DeepCall-Token": "t"}, "BAD_USER_INPUT", "not both"),
    ],
)
def test_missing_half_or_mixed_credentials_cause_no_upstream_call(
    gateway: Gateway, sim: Simulator, headers: dict[str, str], code: str, says: str
) -> None:
    """Credential problems are reported per field with the designed code; nothing goes upstream."""
    body = gateway.query("{ a: callCount b: callCount(filter: {campaignId: 1}) }", headers)
    assert body["data"] == {"a": None, "b": None}
    assert [e["path"] for e in body["errors"]] == [["a"], ["b"]]
    for error in body["errors"]:
        assert error["extensions"] == {"code": code, "retryable": False}
        assert says in error["message"]
    assert sim.request_count == 0


def test_introspection_needs_no_credentials(gateway: Gateway, sim: Simulator) -> None:
    """GraphiQL can load the schema without credentials."""
    body = gateway.query("{ __schema { queryType { fields { name } } } }")
    fields = body["data"]["__schema"]["queryType"]["fields"]
    assert [f["name"] for f in fields] == ["callCount", "callCountSeries"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ callCount(", "GRAPHQL_PARSE_FAILED"),
        ("{ callCounts }", "GRAPHQL_VALIDATION_FAILED"),
        ('{ callCount(filter: {from: "yesterday"}) }', "GRAPHQL_VALIDATION_FAILED"),
        ("mutation { callCount }", "GRAPHQL_VALIDATION_FAILED"),
        ("subscription { callCount }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
def test_bad_documents_get_coded_errors_without_data(
    gateway: Gateway, sim: Simulator, query: str, code: str
) -> None:
    """Parse and validation failures carry their code and no data, and call nothing upstream."""
    body = gateway.query(query, headers_for(ACME))
    assert "data" not in body
    assert [e["extensions"] for e in body["errors"]] == [{"code": code, "retryable": False}]
    assert sim.request_count == 0


def test_bad_variable_is_bad_user_input(gateway: Gateway, sim: Simulator) -> None:
    """A variable that does not fit its type is BAD_USER_INPUT and says what DateTime accepts."""
    body = gateway.query(COUNT_WITH_FILTER, headers_for(ACME), {"f": {"to": "next week"}})
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "retryable": False}
    assert "ISO 8601" in error["message"]
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "GRAPHQL_PARSE_FAILED"),
        (b"[1, 2]", "application/json", 400, "GRAPHQL_PARSE_FAILED"),
        (b'{"query": 42}', "application/json", 400, "GRAPHQL_PARSE_FAILED"),
        (
            b'{"query": "{ callCount }", "variables": []}',
            "application/json",
            400,
            "GRAPHQL_PARSE_FAILED",
        ),
        (b"query={callCount}", "application/x-www-form-urlencoded", 415, "BAD_USER_INPUT"),
    ],
)
def test_malformed_requests_get_coded_json_errors(
    gateway: Gateway, sim: Simulator, content: bytes, content_type: str, status: int, code: str
) -> None:
    """Requests that are not a GraphQL JSON object get a coded JSON error, never a 500."""
    response = gateway.client.post(
        f"{gateway.url}/graphql", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"] == {"code": code, "retryable": False}
    assert sim.request_count == 0


def test_request_id_is_echoed_or_generated(gateway: Gateway, sim: Simulator) -> None:
    """X-Request-ID comes back as sent, or a fresh one is made when absent or unsafe."""
    echoed = gateway.client.post(
        f"{gateway.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"X-Request-ID": "abc-1"},
    )
    assert echoed.headers["X-Request-ID"] == "abc-1"
    for sent in ({}, {"X-Request-ID": "bad id\twith spaces"}):
        made = gateway.client.post(
            f"{gateway.url}/graphql", json={"query": "{ __typename }"}, headers=sent
        )
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])


def test_graphiql_is_served_on_get_when_enabled(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """GET with Accept: text/html returns GraphiQL when enabled, a coded 405 when not."""
    on = start_gateway(graphiql=True)
    page = on.client.get(f"{on.url}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "GraphiQL" in page.text
    assert "callCount" in page.text
    off = start_gateway(graphiql=False)
    refused = off.client.get(f"{off.url}/graphql", headers={"accept": "text/html"})
    assert refused.status_code == 405
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_health_endpoints_never_touch_upstream(gateway: Gateway, sim: Simulator) -> None:
    """/healthz and /readyz answer 200 without an upstream call."""
    assert gateway.client.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert gateway.client.get(f"{gateway.url}/readyz").json() == {"status": "ready"}
    assert sim.request_count == 0


def test_cors_allows_listed_origins_and_credential_headers(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A preflight from a listed origin may send the credential headers; others get no grant."""
    gateway = start_gateway(cors_origins=("https://dash.example.com",))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-deepcall-ssid",
    }
    allowed = gateway.client.options(
        f"{gateway.url}/graphql", headers={"Origin": "https://dash.example.com", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
    assert "x-deepcall-ssid" in allowed.headers["access-control-allow-headers"].lower()
    denied = gateway.client.options(
        f"{gateway.url}/graphql", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in denied.headers


def test_graphiql_page_loads_only_its_packaged_assets_under_a_strict_policy(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """The page runs no inline script, its CSP names only 'self', and what it loads is served."""
    gateway = start_gateway(graphiql=True)
    page = gateway.client.get(f"{gateway.url}/graphql", headers={"accept": "text/html"})
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["worker-src"] == policy["connect-src"] == "'self'"
    assert all("http" not in sources and "*" not in sources for sources in policy.values())
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.DOTALL)
    assert [attrs for attrs, body in scripts if body.strip()] == [
        ' type="application/json" id="graphiql-config"'
    ]
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert set(loaded) == {"/graphql/ide/graphiql.js", "/graphql/ide/graphiql.css"}
    for path in [*loaded, "/graphql/ide/workers/graphql.worker.js"]:
        asset = gateway.client.get(f"{gateway.url}{path}")
        assert asset.status_code == 200, path
        assert asset.headers["content-type"].split(";")[0] in ("text/javascript", "text/css")
    assert sim.request_count == 0


def test_finished_requests_are_freed_without_the_cycle_collector(
    gateway: Gateway, sim: Simulator
) -> None:
    """No request leaves its execution to the cyclic GC (whose passes were the latency tail).

    With the collector off, anything a finished request left in a reference
    cycle stays in memory; graphql-core's executor used to, with everything
    reachable from it (context, variables, results).
    """
    gateway.query("{ callCount }", headers_for(ACME))  # warm: documents, pools, caches
    gc.collect()
    gc.disable()
    try:
        for campaign in range(20):
            body = gateway.query(
                COUNT_WITH_FILTER, headers_for(ACME), {"f": {"campaignId": 500 + campaign}}
            )
            assert isinstance(body["data"]["callCount"], int)
        left = [
            type(o).__name__
            for o in gc.get_objects()
            if isinstance(o, Executor | RequestContext | RequestBudget)
        ]
    finally:
        gc.enable()
    assert left == []
    assert len(sim.requests) == 1 + 20
