"""A failing upstream over real HTTP: retries, breaker, stale values, overload, rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from conftest import ACME, GLOBEX, INITECH, Gateway, headers_for
from support.clock import FakeClock

from gateway.simulator import Simulator


def campaign(n: int) -> str:
    """A one-field query for campaign ``n``: a distinct cache key per ``n``."""
    return f"{{ callCount(filter: {{campaignId: {n}}}) }}"


def code_of(body: dict[str, object]) -> str:
    """The code of the first error of ``body``."""
    errors = body["errors"]
    assert isinstance(errors, list)
    return str(errors[0]["extensions"]["code"])


def test_transient_failures_are_retried_twice_at_most(gateway: Gateway, sim: Simulator) -> None:
    """1009 is tried three times in all; an unknown code and 1014 once, then 1014 not at all."""
    for upstream_code, calls in ((1009, 3), (4242, 1), (1014, 1)):
        sim.clear_requests()
        sim.faults.error_code = upstream_code
        gateway.query(campaign(upstream_code), headers_for(ACME))
        assert sim.request_count == calls, upstream_code
    sim.clear_requests()
    # A 1014 is remembered for a while: the same credential is refused without a call.
    refused = gateway.query(campaign(1), headers_for(ACME))
    assert refused["errors"][0]["extensions"]["upstreamCode"] == 1014
    assert sim.request_count == 0


def test_a_callers_circuit_opens_fails_fast_for_it_and_probes_once(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """After min_calls failed calls one caller's questions fail fast, others' don't; one probe."""
    clock = FakeClock()
    gateway = start_gateway(
        clock=clock, breaker_min_calls=3, breaker_cooldown=30, upstream_retries=0
    )
    sim.faults.error_code = 1010
    for n in range(3):
        assert code_of(gateway.query(campaign(n), headers_for(ACME))) == "UPSTREAM_UNAVAILABLE"
    assert sim.request_count == 3
    sim.faults.error_code = None
    refused = gateway.query(campaign(10), headers_for(ACME))
    assert refused["errors"][0]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "retryable": True}
    assert sim.request_count == 3  # failed fast: not called
    assert gateway.query(campaign(10), headers_for(GLOBEX)) == {
        "data": {"callCount": sim.count("globex", {"campId": 10})}
    }
    clock.advance(31)
    assert gateway.query(campaign(11), headers_for(ACME)) == {
        "data": {"callCount": sim.count("acme", {"campId": 11})}
    }
    assert sim.request_count == 5
    gateway.query(campaign(12), headers_for(ACME))
    assert sim.request_count == 6  # closed again


def test_upstream_failing_for_everyone_opens_the_circuit_for_all_and_a_probe_closes_it(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Two callers' failures open the upstream's circuit: a third is refused unasked; one probe."""
    clock = FakeClock()
    gateway = start_gateway(
        clock=clock, breaker_min_calls=3, breaker_cooldown=30, upstream_retries=0
    )
    sim.faults.error_code = 1010
    for n in range(3):
        for caller in (ACME, GLOBEX):
            assert code_of(gateway.query(campaign(n), headers_for(caller))) == (
                "UPSTREAM_UNAVAILABLE"
            )
    assert sim.request_count == 6
    sim.faults.error_code = None
    refused = gateway.query(campaign(10), headers_for(INITECH))
    assert code_of(refused) == "UPSTREAM_UNAVAILABLE"
    assert sim.request_count == 6  # INITECH never failed, yet it is not asked either
    metrics = gateway.client.get(f"{gateway.url}/metrics").text
    assert "gateway_breaker_state 2.0" in metrics
    assert 'gateway_upstream_refusals_total{reason="circuit_open"} 1.0' in metrics
    clock.advance(31)
    assert gateway.query(campaign(11), headers_for(INITECH)) == {
        "data": {"callCount": sim.count("initech", {"campId": 11})}
    }
    assert "errors" not in gateway.query(campaign(12), headers_for(GLOBEX))
    assert sim.request_count == 8


def test_stale_values_are_served_with_a_warning_within_the_window(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """After the TTL a failed refresh serves the old value, marked STALE_DATA; later, the error."""
    clock = FakeClock()
    gateway = start_gateway(clock=clock, cache_ttl=10, cache_stale=60, breaker_min_calls=100)
    query = "{ fresh: callCount(filter: {campaignId: 123}) }"
    value = gateway.query(query, headers_for(ACME))["data"]["fresh"]
    clock.advance(40)
    sim.faults.error_code = 1009
    body = gateway.query(query, headers_for(ACME))
    assert body["data"] == {"fresh": value}
    assert body["extensions"]["warnings"] == [
        {
            "path": ["fresh"],
            "code": "STALE_DATA",
            "message": "DeepCall failed; this value is from the cache, past its TTL",
            "ageSeconds": 40.0,
        }
    ]
    stale_served = gateway.client.get(f"{gateway.url}/metrics").text
    assert "gateway_cache_stale_served_total 1.0" in stale_served
    clock.advance(30)
    body = gateway.query(query, headers_for(ACME))
    assert body["data"] == {"fresh": None}
    assert code_of(body) == "UPSTREAM_ERROR"
    assert "extensions" not in body


def test_permanent_errors_are_not_masked_by_stale_values(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A 1015 after the TTL is reported, not papered over with the stale count."""
    clock = FakeClock()
    gateway = start_gateway(clock=clock, cache_ttl=10, cache_stale=60)
    gateway.query(campaign(123), headers_for(ACME))
    clock.advance(20)
    sim.faults.error_code = 1015
    assert code_of(gateway.query(campaign(123), headers_for(ACME))) == "FORBIDDEN"


async def test_overload_is_refused_quickly_not_queued(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """With one upstream slot and no queue, a second concurrent call is refused at once."""
    gateway = start_gateway(upstream_concurrency=1, upstream_caller_concurrency=1, upstream_queue=0)
    # Known first: a credential DeepCall never accepted is tried one call at a time.
    assert "errors" not in gateway.query(campaign(0), headers_for(ACME))
    sim.clear_requests()
    sim.faults.latency = 0.5
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        slow = asyncio.create_task(
            client.post("/graphql", json={"query": campaign(1)}, headers=headers_for(ACME))
        )
        await asyncio.to_thread(sim.wait_requests, 1)
        started = time.perf_counter()
        refused = await client.post(
            "/graphql", json={"query": campaign(2)}, headers=headers_for(ACME)
        )
        refused_after = time.perf_counter() - started
        assert code_of(refused.json()) == "UPSTREAM_UNAVAILABLE"
        assert refused_after < 0.25
        assert "errors" not in (await slow).json()
    assert sim.request_count == 1


def test_per_request_concurrency_is_bounded(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Six aliases with two slots per request take three round trips, not one."""
    gateway = start_gateway(request_concurrency=2)
    sim.faults.latency = 0.2
    query = (
        "{ " + " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(6)) + " }"
    )
    started = time.perf_counter()
    body = gateway.query(query, headers_for(ACME))
    elapsed = time.perf_counter() - started
    assert "errors" not in body
    assert elapsed >= 3 * 0.2


def test_rate_limit_counts_upstream_calls_per_client(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Past its burst a client gets RATE_LIMITED with retryAfter; hits stay free; others go on."""
    clock = FakeClock()
    gateway = start_gateway(clock=clock, rate_limit=0.5, rate_burst=3)
    query = (
        "{ " + " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(5)) + " }"
    )
    body = gateway.query(query, headers_for(ACME))
    limited = [e for e in body["errors"] if e["extensions"]["code"] == "RATE_LIMITED"]
    assert len(limited) == 2
    assert all(e["extensions"]["retryAfter"] == 2 for e in limited)
    assert all(e["extensions"]["retryable"] is True for e in limited)
    served = {alias: value for alias, value in body["data"].items() if value is not None}
    assert len(served) == 3
    assert sim.request_count == 3
    again = gateway.query(query, headers_for(ACME))
    assert {a: v for a, v in again["data"].items() if v is not None} == served
    assert sim.request_count == 3  # cache hits cost nothing
    assert "errors" not in gateway.query(campaign(1), headers_for(GLOBEX))
    clock.advance(2)
    refilled = gateway.query(query, headers_for(ACME))
    assert sum(v is not None for v in refilled["data"].values()) == 4


def test_a_dead_upstream_gets_at_most_the_retry_budget(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Against an upstream failing every call, calls stay within 1.2x plus the budget's cap."""
    gateway = start_gateway(breaker_min_calls=1000, rate_limit=0)
    sim.faults.error_code = 1010
    client_calls = 100
    for n in range(client_calls):
        gateway.query(campaign(n), headers_for(ACME))
    assert client_calls < sim.request_count <= 1.2 * client_calls + 10


def test_a_dead_upstream_serves_cached_keys_stale_and_fails_others_by_the_deadline(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Upstream silent: the cached key comes back stale with a warning, the new one times out."""
    clock = FakeClock()
    gateway = start_gateway(
        clock=clock, cache_ttl=10, cache_stale=300, upstream_timeout=0.3, upstream_deadline=1.0
    )
    cached = gateway.query(campaign(123), headers_for(ACME))["data"]["callCount"]
    sim.clear_requests()
    clock.advance(20)
    sim.faults.hang = True
    started = time.perf_counter()
    body = gateway.query(
        "{ cached: callCount(filter: {campaignId: 123})"
        " new: callCount(filter: {campaignId: 124}) }",
        headers_for(ACME),
    )
    elapsed = time.perf_counter() - started
    assert body["data"] == {"cached": cached, "new": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_TIMEOUT"]
    assert body["extensions"]["warnings"][0]["path"] == ["cached"]
    assert body["extensions"]["warnings"][0]["ageSeconds"] == 20.0
    assert elapsed <= 1.0 * 1.1
    # Two keys, three tries each at most, all within the retry budget.
    assert 2 < sim.request_count <= 6
