"""Two replicas sharing one real Redis hold one set of limits, and keep their own without it.

Each test starts two `deepcall-gateway serve` processes on the same Redis and
the session's simulator, and asks through both, as a load balancer would.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from conftest import EXPIRED, headers_for
from support.redis import needs_redis, redis_server, replicas
from support.servers import free_port

from gateway.simulator import Simulator

pytestmark = [needs_redis, pytest.mark.slow]
RATE, BURST = 10.0, 10.0
LIMITS = {"GATEWAY_RATE_LIMIT": str(RATE), "GATEWAY_RATE_BURST": str(BURST)}


def campaign(n: int) -> dict[str, str]:
    """A question never asked before (a cache miss) for campaign ``n``."""
    return {"query": f"{{ callCount(filter: {{campaignId: {n}}}) }}"}


async def paced(
    client: httpx.AsyncClient, urls: list[str], per_second: float, seconds: float, first: int
) -> tuple[int, float]:
    """Ask one session's questions at ``per_second``, alternating replicas, for ``seconds``.

    Returns how many were answered with a count, and the seconds from the first
    question to the last.
    """
    headers = {"X-DeepCall-SSID": "demo-ssid-acme"}
    started = time.monotonic()
    tasks = []
    n = 0
    while (now := time.monotonic()) - started < seconds:
        url = urls[n % len(urls)]
        tasks.append(
            asyncio.create_task(
                client.post(f"{url}/graphql", json=campaign(first + n), headers=headers)
            )
        )
        n += 1
        await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
    took = now - started
    bodies = [(await task).json() for task in tasks]
    answered = sum(isinstance(body.get("data", {}).get("callCount"), int) for body in bodies)
    refused = [body for body in bodies if "errors" in body]
    assert all(body["errors"][0]["extensions"]["code"] == "RATE_LIMITED" for body in refused)
    return answered, took


def allowed(seconds: float, buckets: int = 1) -> float:
    """What ``buckets`` full token buckets let through in ``seconds``."""
    return buckets * (BURST + RATE * seconds)


def metric(text: str, name: str) -> float:
    """The value of a counter in a /metrics exposition (0 when absent)."""
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_one_credential_through_two_replicas_is_held_to_its_one_limit(
    sim: Simulator, upstream_url: str
) -> None:
    """Asking at twice its rate through both replicas, a credential gets its one rate (±10%)."""
    with redis_server() as (redis_url, _), replicas(upstream_url, redis_url, **LIMITS) as urls:
        async with httpx.AsyncClient(timeout=10) as client:
            answered, took = await paced(client, urls, 2 * RATE, 5.0, first=10_000)
            local = [
                metric((await client.get(f"{u}/metrics")).text, "gateway_fleet_limits_local_total")
                for u in urls
            ]

    assert abs(answered - allowed(took)) <= 0.1 * allowed(took), (answered, allowed(took))
    assert sim.request_count == answered
    assert local == [0.0, 0.0]


async def test_made_up_credentials_over_two_replicas_cost_at_most_60_calls(
    sim: Simulator, upstream_url: str
) -> None:
    """300 made-up credentials from one address, spread over both replicas: <= 60 calls."""
    with redis_server() as (redis_url, _), replicas(upstream_url, redis_url) as urls:
        async with httpx.AsyncClient(timeout=30) as client:

            async def made_up(n: int) -> str:
                response = await client.post(
                    f"{urls[n % 2]}/graphql",
                    json=campaign(n),
                    headers={"X-DeepCall-SSID": f"made-up-{n}"},
                )
                return str(response.json()["errors"][0]["extensions"]["code"])

            codes = []
            for start in range(0, 300, 30):
                codes += await asyncio.gather(*(made_up(n) for n in range(start, start + 30)))

    assert sim.request_count <= 60
    assert codes.count("UNAUTHENTICATED") == sim.request_count
    assert codes.count("RATE_LIMITED") == 300 - sim.request_count


async def test_a_1014_seen_by_one_replica_is_refused_by_the_other_without_a_call(
    sim: Simulator, upstream_url: str
) -> None:
    """An expired token, rejected through the first replica: the second refuses it at once."""
    with redis_server() as (redis_url, _), replicas(upstream_url, redis_url) as (first, second):
        async with httpx.AsyncClient(timeout=10) as client:
            one = await client.post(
                f"{first}/graphql", json=campaign(1), headers=headers_for(EXPIRED)
            )
            two = await client.post(
                f"{second}/graphql", json=campaign(2), headers=headers_for(EXPIRED)
            )

    expected = {"code": "UNAUTHENTICATED", "retryable": False, "upstreamCode": 1014}
    assert one.json()["errors"][0]["extensions"] == expected
    assert two.json()["errors"][0]["extensions"] == expected
    assert sim.request_count == 1


async def test_without_redis_each_replica_keeps_its_own_limits_and_returns_to_the_shared(
    sim: Simulator, upstream_url: str
) -> None:
    """Redis stopped: both serve, each within its own limit; restarted: one limit again."""
    port = free_port()
    with (
        redis_server(port) as (redis_url, redis_process),
        replicas(upstream_url, redis_url, **LIMITS) as urls,
    ):
        async with httpx.AsyncClient(timeout=10) as client:
            shared_before, took_before = await paced(client, urls, 2 * RATE, 3.0, 20_000)
            redis_process.kill()
            redis_process.wait()
            alone, took_alone = await paced(client, urls, 2 * RATE, 3.0, 30_000)
            local = [
                metric((await client.get(f"{u}/metrics")).text, "gateway_fleet_limits_local_total")
                for u in urls
            ]
            with redis_server(port):
                await until_shared(client, urls)
                shared_after, took_after = await paced(client, urls, 2 * RATE, 3.0, 40_000)

    assert abs(shared_before - allowed(took_before)) <= 0.1 * allowed(took_before)
    # Alone, each replica has a full bucket of its own: more than one limit, within two.
    assert allowed(took_alone) * 1.1 < alone <= allowed(took_alone, buckets=2) * 1.1
    assert all(count > 0 for count in local)
    assert abs(shared_after - allowed(took_after)) <= 0.1 * allowed(took_after)


async def until_shared(client: httpx.AsyncClient, urls: list[str], within: float = 30.0) -> None:
    """Wait until both replicas decide through Redis again (their local decisions stop)."""
    deadline = time.monotonic() + within

    async def locals_now() -> list[float]:
        texts = [(await client.get(f"{u}/metrics")).text for u in urls]
        return [metric(t, "gateway_fleet_limits_local_total") for t in texts]

    n = 90_000
    while True:
        before = await locals_now()
        for url in urls:  # a question each, decided by Redis if it is back
            await client.post(
                f"{url}/graphql", json=campaign(n), headers={"X-DeepCall-SSID": "demo-ssid-acme"}
            )
            n += 1
        if await locals_now() == before:
            await asyncio.sleep(BURST / RATE)  # let the shared bucket fill again
            return
        assert time.monotonic() < deadline, "the replicas never went back to Redis"
        await asyncio.sleep(0.5)
