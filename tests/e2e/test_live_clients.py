"""Unmodified subscription clients over real sockets: the first count, then only changes.

graphql-ws (with ``ws``), Apollo Client over ``GraphQLWsLink`` and over its
plain ``HttpLink`` (multipart), graphql-sse, and Python's gql over
websockets; urql's query meanwhile still gets JSON. After upstream 1014 each of the JS
clients gets the error and the subscription's end, and asks no more.
"""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import ACME, Gateway, headers_for
from nodeclients import CLIENTS, NODE, needs_node
from prometheus_client.parser import text_string_to_metric_families

from gateway.simulator import Simulator

pytestmark = pytest.mark.slow

SUBSCRIPTION = "subscription Board { watch(every: 1) { n: callCount(filter: {campaignId: 9101}) } }"
QUERY = "query Now { n: callCount(filter: {campaignId: 9101}) }"
SUBSCRIBERS = ("graphqlWs", "apolloWsLink", "apolloHttpLink", "graphqlSse")
DEADLINE = 60.0
TRANSPORTS = {
    "graphqlWs": "websocket",
    "apolloWsLink": "websocket",
    "apolloHttpLink": "multipart",
    "graphqlSse": "sse",
}
"""Each subscribing client of ``clients/`` and the transport it uses."""


class Lines:
    """The JSON lines a process prints, read by a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.by_client: dict[str, list[dict[str, Any]]] = defaultdict(list)
        assert process.stdout is not None
        self._stdout = process.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stdout:
            if line.startswith("{"):
                self._lines.put(json.loads(line))

    def until(self, done: Callable[[dict[str, list[dict[str, Any]]]], bool]) -> None:
        """Read lines until ``done`` holds for what each client said; fail after DEADLINE."""
        while not done(self.by_client):
            try:
                line = self._lines.get(timeout=DEADLINE)
            except queue.Empty:
                raise AssertionError(f"clients said only {dict(self.by_client)}") from None
            self.by_client[line.pop("client")].append(line)


@contextmanager
def node_clients(gateway: Gateway) -> Iterator[Lines]:
    """``clients/live.mjs`` against ``gateway``, stopped when the test is done."""
    assert NODE is not None
    args = [NODE, "live.mjs", f"{gateway.url}/graphql", json.dumps(headers_for(ACME))]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [*args, SUBSCRIPTION, QUERY],
            cwd=CLIENTS,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            yield Lines(process)
        except AssertionError as failed:
            errors.seek(0)
            raise AssertionError(f"{failed}\nnode said:\n{errors.read()[-4000:]}") from None
        finally:
            process.kill()
            process.wait(timeout=10)
            assert process.stdout is not None
            process.stdout.close()


def counts(said: list[dict[str, Any]]) -> list[Any]:
    return [line.get("data", {}).get("watch", {}).get("n", line) for line in said]


@needs_node
def test_unmodified_js_clients_get_the_first_count_then_only_changes(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """graphql-ws, Apollo's GraphQLWsLink and HttpLink, graphql-sse: 0, then 2 after two new
    calls, and nothing in between; urql's query is answered in JSON; one poller for all."""
    # urql asks queries by GET (within the URL's limit): the setting CDNs and urql want.
    gateway = start_gateway(live_min_every=1, cache_ttl=0.5, allow_get=True)
    with node_clients(gateway) as lines:
        lines.until(lambda said: all(len(said[name]) >= 1 for name in (*SUBSCRIBERS, "urqlQuery")))
        assert lines.by_client["urqlQuery"] == [{"data": {"n": 0}}]
        assert {name: counts(lines.by_client[name]) for name in SUBSCRIBERS} == {
            name: [0] for name in SUBSCRIBERS
        }
        sim.add_calls("acme", 2, campaign_id=9101)
        lines.until(lambda said: all(len(said[name]) >= 2 for name in SUBSCRIBERS))
        assert {name: counts(lines.by_client[name]) for name in SUBSCRIBERS} == {
            name: [0, 2] for name in SUBSCRIBERS
        }
    metrics = gateway.client.get(f"{gateway.url}/metrics").text
    assert 'gateway_live_events_total{transport="websocket"} 4.0' in metrics
    assert 'gateway_live_events_total{transport="sse"} 2.0' in metrics
    assert 'gateway_live_events_total{transport="multipart"} 2.0' in metrics


async def test_gql_over_websockets_gets_the_first_count_then_changes(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Python's gql, its websockets transport on graphql-transport-ws, credentials in the
    init payload: 0, then 5 after five new calls."""
    from gql import Client, gql
    from gql.transport.websockets import WebsocketsTransport

    gateway = start_gateway(live_min_every=1, cache_ttl=0.5)
    transport = WebsocketsTransport(
        url=gateway.url.replace("http", "ws", 1) + "/graphql",
        init_payload=headers_for(ACME),
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    text = SUBSCRIPTION.replace("9101", "9102")
    seen = []
    async with Client(transport=transport) as session:
        async for result in session.subscribe(gql(text)):
            seen.append(result["watch"]["n"])
            if len(seen) == 1:
                sim.add_calls("acme", 5, campaign_id=9102)
            else:
                break
    assert seen == [0, 5]


def subscribed_alone(gateway: Gateway, client: str, subscription: str) -> list[dict[str, Any]]:
    """``clients/subscribe.mjs``: ``client`` subscribes once and is left to itself until its
    process exits (nothing left open or scheduled); what the client reported, in order."""
    assert NODE is not None
    args = [f"{gateway.url}/graphql", json.dumps(headers_for(ACME)), subscription]
    try:
        done = subprocess.run(
            [NODE, "subscribe.mjs", client, *args],
            cwd=CLIENTS,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    except subprocess.TimeoutExpired as running:
        said = running.stdout.decode() if isinstance(running.stdout, bytes) else running.stdout
        raise AssertionError(
            f"{client} still ran after {DEADLINE} s (retrying?), having said:\n{said}\n"
            f"and the gateway counted {streams_seen(gateway, TRANSPORTS[client])}"
        ) from None
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def streams_seen(gateway: Gateway, transport: str) -> dict[str, float]:
    """The gateway's /metrics counts of ``transport``'s streams: open now, events sent, and
    streams ended, by reason (the reasons that ended any)."""
    text = gateway.client.get(f"{gateway.url}/metrics").text
    seen: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("transport") != transport:
                continue
            if sample.name == "gateway_live_streams":
                seen["open"] = sample.value
            elif sample.name == "gateway_live_events_total":
                seen["events"] = sample.value
            elif sample.name == "gateway_live_streams_ended_total" and sample.value:
                seen[f"ended {sample.labels['reason']}"] = sample.value
    return seen


@needs_node
@pytest.mark.parametrize("client", list(TRANSPORTS))
def test_after_upstream_1014_an_unmodified_client_gets_the_error_completes_and_stays_away(
    start_gateway: Callable[..., Gateway], sim: Simulator, client: str
) -> None:
    """Upstream 1014: the client reports one event with UNAUTHENTICATED at its path, then the
    subscription's completion, and its process exits without subscribing again: the gateway
    saw one stream of the client's transport, ended complete, and one upstream call."""
    gateway = start_gateway(live_min_every=1, cache_ttl=0.5)
    sim.faults.error_code = 1014
    said = subscribed_alone(gateway, client, SUBSCRIPTION.replace("9101", "9103"))
    assert [(line.get("errors"), line.get("complete")) for line in said] == [
        ([{"code": "UNAUTHENTICATED", "path": ["watch", "n"]}], None),
        (None, True),
    ]
    assert streams_seen(gateway, TRANSPORTS[client]) == {
        "open": 0.0,
        "events": 1.0,
        "ended complete": 1.0,
    }
    assert sim.request_count == 1
