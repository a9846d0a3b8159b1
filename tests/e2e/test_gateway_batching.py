"""Aliases as a batch, the cache, single flight, isolation between users, and log hygiene."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import pytest
from conftest import ACME, GLOBEX, Gateway, headers_for
from support.clock import FakeClock

from gateway.simulator import Simulator

LATENCY = 0.3


def aliases(count: int, distinct: bool = True) -> str:
    """A query of ``count`` aliases, each with its own campaign filter unless not ``distinct``."""
    fields = (
        f"a{i}: callCount(filter: {{campaignId: {i if distinct else 0}}})" for i in range(count)
    )
    return "{ " + " ".join(fields) + " }"


def test_ten_aliases_cost_about_one_round_trip(gateway: Gateway, sim: Simulator) -> None:
    """10 distinct aliases against a 300 ms upstream finish in well under twice the latency."""
    # A caller DeepCall has accepted (a new one's first call goes alone, as its trial).
    assert "errors" not in gateway.query(
        "{ callCount(filter: {campaignId: 99}) }", headers_for(ACME)
    )
    sim.clear_requests()
    sim.faults.latency = LATENCY
    started = time.perf_counter()
    body = gateway.query(aliases(10), headers_for(ACME))
    elapsed = time.perf_counter() - started
    assert "errors" not in body
    assert body["data"] == {f"a{i}": sim.count("acme", {"campId": i}) for i in range(10)}
    assert sim.request_count == 10
    # One round trip is LATENCY plus a few ms; ten in sequence would be 10x.
    assert elapsed < 1.8 * LATENCY, f"10 aliases took {elapsed:.3f}s"


def test_identical_aliases_reach_upstream_once(gateway: Gateway, sim: Simulator) -> None:
    """10 aliases with the same filter (in any spelling) cause one upstream call."""
    query = (
        "{ "
        + " ".join(
            f'x{i}: callCount(filter: {{agentIds: ["{a}", "{b}"]}})'
            for i, (a, b) in enumerate([("101", "102"), ("102", "101")] * 5)
        )
        + " }"
    )
    body = gateway.query(query, headers_for(ACME))
    assert len(set(body["data"].values())) == 1
    assert sim.request_count == 1


async def test_concurrent_identical_requests_share_one_upstream_call(
    gateway: Gateway, sim: Simulator
) -> None:
    """20 concurrent identical requests cause one upstream call and all get the number."""
    sim.faults.latency = LATENCY
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        responses = await asyncio.gather(
            *(
                client.post("/graphql", json={"query": aliases(1)}, headers=headers_for(ACME))
                for _ in range(20)
            )
        )
    expected = sim.count("acme", {"campId": 0})
    assert [r.json() for r in responses] == [{"data": {"a0": expected}}] * 20
    assert sim.request_count == 1


async def test_two_users_never_see_each_others_numbers(gateway: Gateway, sim: Simulator) -> None:
    """200 interleaved concurrent requests of two accounts, same filters: each its own counts."""
    users = [(ACME, "acme"), (GLOBEX, "globex")]
    filters = [{"statuses": ["answered"]}, {"statuses": ["missed"]}, {}]
    query = "query($f: CallFilterInput) { callCount(filter: $f) }"
    wire = [{"st": ["answered"]}, {"st": ["missed"]}, {}]
    expected = {(account, i): sim.count(account, wire[i]) for _, account in users for i in range(3)}
    assert expected[("acme", 2)] != expected[("globex", 2)]
    plan = [(users[n % 2], n % 3) for n in range(200)]
    sim.faults.latency = 0.02
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/graphql",
                    json={"query": query, "variables": {"f": filters[i]}},
                    headers=headers_for(user),
                )
                for (user, _), i in plan
            )
        )
    got = [r.json()["data"]["callCount"] for r in responses]
    assert got == [expected[(account, i)] for (_, account), i in plan]
    assert sim.request_count == 6


def test_right_user_id_with_wrong_token_misses_the_cache(gateway: Gateway, sim: Simulator) -> None:
    """A cached count for a user id is not served to a caller with the wrong token."""
    good = gateway.query("{ callCount }", headers_for(GLOBEX))
    assert good["data"]["callCount"] == sim.count("globex", {})
    wrong = {"X-DeepCall-User-Id": GLOBEX.user_id or "", "X-DeepCall-Token": "guessed"}
    body = gateway.query("{ callCount }", wrong)
    assert body["data"] == {"callCount": None}
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert sim.request_count == 2


def test_cache_entries_expire_after_the_ttl(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Within the TTL the cache answers; past it, the upstream is asked again."""
    clock = FakeClock()
    gateway = start_gateway(clock=clock, cache_ttl=15.0)
    for _ in range(3):
        gateway.query("{ callCount }", headers_for(ACME))
    assert sim.request_count == 1
    clock.advance(14.9)
    gateway.query("{ callCount }", headers_for(ACME))
    assert sim.request_count == 1
    clock.advance(0.2)
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body == {"data": {"callCount": sim.count("acme", {})}}
    assert sim.request_count == 2


def test_errors_are_not_cached(gateway: Gateway, sim: Simulator) -> None:
    """After an upstream failure, the next request asks again and gets the number."""
    sim.faults.error_code = 1009
    failed = gateway.query("{ callCount }", headers_for(ACME))
    assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_ERROR"
    sim.faults.error_code = None
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body == {"data": {"callCount": sim.count("acme", {})}}
    assert sim.request_count == 3 + 1  # the failure was tried three times


SENTINELS = {
    "X-DeepCall-SSID": "sentinel-ssid-7f3a9c",
}
USER_SENTINELS = {
    "X-DeepCall-User-Id": "sentinel-user-51d2",
    "X-DeepCall-Token": "sentinel-token-e8b0",
}


def test_no_credential_appears_in_debug_logs(
    gateway: Gateway, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, across successes and failures, no credential value is ever logged."""
    caplog.set_level(logging.DEBUG)
    gateway.query("{ callCount }", SENTINELS)
    gateway.query("{ callCount }", USER_SENTINELS)
    gateway.query("{ callCount(filter: {extra: {unknownKey: 1}}) }", headers_for(ACME))
    gateway.query("{ callCount }", headers_for(GLOBEX))
    sim.faults.error_code = 1009
    gateway.query("{ callCount(filter: {campaignId: 9}) }", headers_for(ACME))
    assert sim.request_count == 4 + 3  # the 1009 was tried three times
    assert len(caplog.records) > 0
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    secrets = [*SENTINELS.values(), *USER_SENTINELS.values(), ACME.ssid, GLOBEX.token]
    for secret in secrets:
        assert secret is not None
        assert secret not in logged


def test_a_repeated_request_is_replayed_until_a_count_expires(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """The same body and credential get the same answer without execution; not past the TTL."""
    clock = FakeClock()
    gateway = start_gateway(clock=clock, cache_ttl=15.0)
    query = "query Dash { a: callCount(filter: {campaignId: 123}) b: callCount }"
    first = gateway.post(query, headers_for(ACME))
    again = gateway.post(query, headers_for(ACME))
    assert first.content == again.content
    assert again.json() == {
        "data": {"a": sim.count("acme", {"campId": 123}), "b": sim.count("acme", {})}
    }
    assert sim.request_count == 2
    metrics = gateway.client.get(f"{gateway.url}/metrics").text
    assert 'gateway_cache_lookups_total{result="hit"} 2.0' in metrics  # the replay's counts
    other = gateway.post(query, headers_for(GLOBEX))  # another credential: its own numbers
    assert other.json()["data"]["b"] == sim.count("globex", {})
    clock.advance(16)
    gateway.post(query, headers_for(ACME))
    assert sim.request_count == 2 + 2 + 2  # globex's two, then acme's two again


def test_answers_with_errors_are_never_replayed(gateway: Gateway, sim: Simulator) -> None:
    """A response that carried an error is executed again the next time."""
    # 1015, not 1014: a 1014 is remembered for a while and refused without a call.
    sim.faults.error_code = 1015
    gateway.query("{ callCount(filter: {campaignId: 5}) }", headers_for(ACME))
    sim.faults.error_code = None
    body = gateway.query("{ callCount(filter: {campaignId: 5}) }", headers_for(ACME))
    assert body == {"data": {"callCount": sim.count("acme", {"campId": 5})}}
    assert sim.request_count == 2
