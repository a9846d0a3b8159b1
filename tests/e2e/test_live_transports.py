"""Live counts over real sockets: SSE, multipart and the WebSocket, by the rules queries go by.

Each test watches a campaign no generated call has (9xxx), so counts start at 0
and move only when the test adds calls to the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import ACME, GLOBEX, Gateway, headers_for
from support.live import SSE_ACCEPT, body, multipart, socket, sse

from gateway.simulator import Simulator

pytestmark = pytest.mark.slow

LIVE = {"live_min_every": 1, "cache_ttl": 0.5}


def watching(campaign: int, every: int = 1) -> str:
    """A wallboard of one count: campaign ``campaign``'s calls, at most every ``every`` s."""
    field = f"n: callCount(filter: {{campaignId: {campaign}}})"
    return f"subscription Board {{ watch(every: {every}) {{ {field} }} }}"


def count_of(part: Any) -> Any:
    data = part.data.get("payload", part.data) if isinstance(part.data, dict) else None
    return data["data"]["watch"]["n"]


@pytest.fixture
def live(start_gateway: Callable[..., Gateway], sim: Simulator) -> Gateway:
    """A gateway whose streams may poll every second."""
    return start_gateway(**LIVE)


async def test_sse_sends_the_first_count_then_each_change(live: Gateway, sim: Simulator) -> None:
    """GraphQL over SSE: the count at once, then the new count once calls come in; the
    stream is neither compressed nor buffered by proxies."""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        sse(client, f"{live.url}/graphql", body(watching(9001)), headers_for(ACME)) as stream,
    ):
        headers = stream.response.headers
        assert stream.response.status_code == 200
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["x-accel-buffering"] == "no"
        assert "no-transform" in headers["cache-control"]
        assert headers.get("content-encoding", "identity") == "identity"
        first = await stream.next_event()
        assert (first.event, count_of(first)) == ("next", 0)
        sim.add_calls("acme", 3, campaign_id=9001)
        second = await stream.next_event()
        assert count_of(second) == 3


async def test_multipart_sends_heartbeats_and_payloads(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Apollo's multipart subscriptions: a heartbeat at once and while quiet, each event as
    {"payload": result}."""
    gateway = start_gateway(**LIVE, live_heartbeat=0.3)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        multipart(
            client, f"{gateway.url}/graphql", body(watching(9002)), headers_for(ACME)
        ) as stream,
    ):
        assert stream.response.headers["content-type"].startswith("multipart/mixed")
        assert (await stream.next()).event == "heartbeat"
        first = await stream.next_event()
        assert first.data == {"payload": {"data": {"watch": {"n": 0}}}}
        assert (await stream.next()).event == "heartbeat"  # quiet: heartbeats only
        sim.add_calls("acme", 2, campaign_id=9002)
        assert count_of(await stream.next_event()) == 2


async def test_sse_heartbeats_are_comments(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A quiet SSE stream carries a comment every GATEWAY_LIVE_HEARTBEAT seconds."""
    gateway = start_gateway(**LIVE, live_heartbeat=0.3)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        sse(client, f"{gateway.url}/graphql", body(watching(9003)), headers_for(ACME)) as stream,
    ):
        await stream.next_event()
        assert [(await stream.next()).event for _ in range(2)] == ["heartbeat", "heartbeat"]


def test_a_query_that_accepts_a_stream_still_gets_json(live: Gateway, sim: Simulator) -> None:
    """Only subscriptions stream: a query with Accept: text/event-stream is answered in JSON."""
    response = live.client.post(
        f"{live.url}/graphql",
        json={"query": "{ n: callCount(filter: {campaignId: 9004}) }"},
        headers={**headers_for(ACME), "Accept": SSE_ACCEPT},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"data": {"n": 0}}


def test_a_subscription_over_plain_json_or_get_is_refused(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A subscription POSTed for JSON is refused as before (saying how to stream it); by GET,
    405; nothing is asked upstream."""
    gateway = start_gateway(**LIVE, allow_get=True)
    answer = gateway.query(watching(9005), headers_for(ACME))
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "text/event-stream" in error["message"]
    got = gateway.client.get(
        f"{gateway.url}/graphql", params={"query": watching(9005)}, headers=headers_for(ACME)
    )
    assert got.status_code == 405
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("payload", "headers", "code"),
    [
        (body(watching(9006)), {}, "UNAUTHENTICATED"),
        (body("subscription { watch { nope } }"), headers_for(ACME), "GRAPHQL_VALIDATION_FAILED"),
        (
            body("subscription { watch(every: 0) { callCount } }"),
            headers_for(ACME),
            "BAD_USER_INPUT",
        ),
        (body("subscription {"), headers_for(ACME), "GRAPHQL_PARSE_FAILED"),
    ],
)
async def test_sse_refusals_are_one_error_event_then_complete(
    live: Gateway, sim: Simulator, payload: dict[str, Any], headers: dict[str, str], code: str
) -> None:
    """A stream that cannot start answers 200 with one next event of errors, then complete:
    graphql-sse does not retry that."""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        sse(client, f"{live.url}/graphql", payload, headers) as stream,
    ):
        assert stream.response.status_code == 200
        refused = await stream.next_event()
        assert refused.event == "next"
        assert [error["extensions"]["code"] for error in refused.data["errors"]] == [code]
        assert (await stream.next_event()).event == "complete"
    assert sim.request_count == 0


async def test_document_rules_apply_to_subscriptions(
    start_gateway: Callable[..., Gateway], sim: Simulator, tmp_path: Any
) -> None:
    """Persisted-only mode, introspection off and the fan-out budget refuse subscriptions as
    they refuse queries; a listed subscription runs by its id."""
    listed = watching(9007)
    manifest = tmp_path / "documents.json"
    manifest.write_text('{"board": ' + __import__("json").dumps(listed) + "}")
    gateway = start_gateway(
        **LIVE,
        persisted_documents=str(manifest),
        persisted_only=True,
        introspection=False,
        max_fanout=1,
    )
    cases = [
        (body(listed), "PERSISTED_QUERY_ID_REQUIRED"),
        ({"documentId": "nope"}, "PERSISTED_QUERY_NOT_IN_LIST"),
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        for payload, code in cases:
            async with sse(client, f"{gateway.url}/graphql", payload, headers_for(ACME)) as stream:
                refused = await stream.next_event()
                assert refused.data["errors"][0]["extensions"]["code"] == code
        async with sse(
            client, f"{gateway.url}/graphql", {"documentId": "board"}, headers_for(ACME)
        ) as stream:
            assert count_of(await stream.next_event()) == 0
    open_gateway = start_gateway(**LIVE, introspection=False, max_fanout=1)
    refused_documents = [
        "subscription { watch { __schema { types { name } } } }",
        "subscription { watch(every: 1) { a: callCount b: callCount(filter: {campaignId: 1}) } }",
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        for text in refused_documents:
            async with sse(
                client, f"{open_gateway.url}/graphql", body(text), headers_for(ACME)
            ) as stream:
                refused = await stream.next_event()
                assert (
                    refused.data["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
                )


async def test_websocket_takes_credentials_from_init_or_the_upgrade(
    live: Gateway, sim: Simulator
) -> None:
    """connection_init's payload (flat, or under headers) carries the credential; without
    one, the upgrade request's headers do; each caller gets its own count."""
    sim.add_calls("globex", 4, campaign_id=9008)
    async with socket(live.url) as ws:
        assert await ws.init(headers_for(ACME)) == {"type": "connection_ack"}
        await ws.subscribe("a", watching(9008))
        assert await ws.receive() == {
            "id": "a",
            "type": "next",
            "payload": {"data": {"watch": {"n": 0}}},
        }
    async with socket(live.url) as ws:
        assert (await ws.init({"headers": headers_for(GLOBEX)}))["type"] == "connection_ack"
        await ws.subscribe("b", watching(9008))
        assert (await ws.receive())["payload"] == {"data": {"watch": {"n": 4}}}
    async with socket(live.url, headers=headers_for(GLOBEX)) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.subscribe("c", watching(9008))
        assert (await ws.receive())["payload"] == {"data": {"watch": {"n": 4}}}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, 4403),
        ({"X-DeepCall-SSID": "a", "X-DeepCall-Token": "b"}, 4400),
        ({"X-DeepCall-User-Id": "2001"}, 4400),
    ],
)
async def test_websocket_without_a_usable_credential_is_closed(
    live: Gateway, sim: Simulator, payload: dict[str, str], code: int
) -> None:
    """No credential closes with 4403 (the protocol's rejection); a malformed one with 4400."""
    async with socket(live.url) as ws:
        await ws.send({"type": "connection_init", "payload": payload})
        closed_code, reason = await ws.closed()
        assert closed_code == code
        assert "X-DeepCall" in reason


async def test_websocket_origin_must_be_this_host_or_a_cors_origin(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A browser page on another origin cannot open the socket (403 at the handshake) unless
    GATEWAY_CORS_ORIGINS lists it; the gateway's own pages and non-browsers can."""
    import websockets

    gateway = start_gateway(**LIVE, cors_origins=("https://dash.example.com",))
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with socket(gateway.url, origin="https://evil.example.com"):
            pass
    assert refused.value.response.status_code == 403
    for origin in ("https://dash.example.com", gateway.url, None):
        async with socket(gateway.url, origin=origin) as ws:
            assert (await ws.init(headers_for(ACME)))["type"] == "connection_ack"


async def test_the_legacy_subprotocol_is_refused_clearly(live: Gateway, sim: Simulator) -> None:
    """subscriptions-transport-ws's graphql-ws subprotocol: the socket closes with 4406,
    saying which protocol to use."""
    async with socket(live.url, subprotocols=["graphql-ws"]) as ws:
        code, reason = await ws.closed()
    assert code == 4406
    assert "graphql-transport-ws" in reason


async def test_websocket_refusals_are_error_messages_and_the_socket_stays(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Past the connection's subscriptions, or for a bad document or a query, the subscribe
    gets an error message with our code; the socket and its other streams go on."""
    gateway = start_gateway(**LIVE, live_streams_per_connection=1)
    async with socket(gateway.url) as ws:
        await ws.init(headers_for(ACME))
        await ws.subscribe("1", watching(9009))
        assert (await ws.receive())["payload"] == {"data": {"watch": {"n": 0}}}
        await ws.subscribe("2", watching(9009))
        limited = await ws.receive()
        assert (limited["id"], limited["type"]) == ("2", "error")
        assert limited["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        await ws.send({"id": "1", "type": "complete"})
        await ws.subscribe("3", "{ callCount }")
        query = await ws.receive()
        assert (query["type"], query["payload"][0]["extensions"]["code"]) == (
            "error",
            "GRAPHQL_VALIDATION_FAILED",
        )
        await ws.subscribe("4", watching(9009))
        assert (await ws.receive())["payload"] == {"data": {"watch": {"n": 0}}}
        sim.add_calls("acme", 1, campaign_id=9009)
        assert (await ws.receive())["payload"] == {"data": {"watch": {"n": 1}}}


async def test_a_settled_window_completes_on_every_transport(live: Gateway, sim: Simulator) -> None:
    """A window long past sends its one event and completes: SSE, multipart and WebSocket."""
    text = (
        'subscription { watch { n: callCount(filter: {from: "2020-01-01 00:00:00", '
        'to: "2020-01-01 23:59:59"}) } }'
    )
    async with httpx.AsyncClient(timeout=30) as client:
        for opened in (sse, multipart):
            async with opened(
                client, f"{live.url}/graphql", body(text), headers_for(ACME)
            ) as stream:
                assert count_of(await stream.next_event()) == 0
                assert (await stream.next_event()).event == "complete"
    async with socket(live.url) as ws:
        await ws.init(headers_for(ACME))
        await ws.subscribe("s", text)
        assert (await ws.receive())["type"] == "next"
        assert await ws.receive() == {"id": "s", "type": "complete"}
