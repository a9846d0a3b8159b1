"""Two gateway processes sharing one real Redis: one upstream call for many replicas, and no
failed request when Redis goes away."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import ACME, GLOBEX, headers_for
from support.servers import free_port, process

from gateway.simulator import Simulator

CLI = str(Path(sys.executable).parent / "deepcall-gateway")
SECRET = "shared-hmac-secret-for-tests"
pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (installed by .ci/run)"
)


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A throwaway redis-server on loopback, no persistence."""
    port = free_port()
    args = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with process(args, "Ready to accept connections") as proc:
        yield f"redis://127.0.0.1:{port}/0", proc


@contextmanager
def gateways(upstream_url: str, redis_url: str, count: int = 2) -> Iterator[list[str]]:
    """``count`` gateway processes sharing ``redis_url`` and one HMAC secret."""
    with ExitStack() as stack:
        urls = []
        for _ in range(count):
            port = free_port()
            env = {
                "GATEWAY_UPSTREAM_URL": upstream_url,
                "GATEWAY_REDIS_URL": redis_url,
                "GATEWAY_CACHE_KEY_SECRET": SECRET,
                "GATEWAY_RATE_LIMIT": "0",
                "GATEWAY_LOG_LEVEL": "INFO",
            }
            stack.enter_context(
                process([CLI, "serve", "--port", str(port)], "Application startup complete", env)
            )
            urls.append(f"http://127.0.0.1:{port}")
        yield urls


async def test_twenty_cold_requests_over_two_replicas_make_one_upstream_call(
    sim: Simulator, upstream_url: str
) -> None:
    """20 concurrent identical cold requests spread over two replicas cause one upstream call."""
    sim.faults.latency = 0.3
    query = {"query": "{ callCount(filter: {campaignId: 123}) }"}
    with redis_server() as (redis_url, _), gateways(upstream_url, redis_url) as urls:
        async with httpx.AsyncClient(timeout=10) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"{urls[n % 2]}/graphql", json=query, headers=headers_for(ACME))
                    for n in range(20)
                )
            )
        expected = sim.count("acme", {"campId": 123})
        assert [r.json() for r in responses] == [{"data": {"callCount": expected}}] * 20
        assert sim.request_count == 1
        keys = (
            await asyncio.to_thread(
                subprocess.run,
                ["redis-cli", "-u", redis_url, "--scan"],
                capture_output=True,
                text=True,
                check=True,
            )
        ).stdout
        assert keys.strip()
        assert ACME.ssid not in keys
        assert "123" not in keys  # the question is hashed too


async def test_a_count_cached_by_one_replica_is_served_by_the_other(
    sim: Simulator, upstream_url: str
) -> None:
    """What one replica fetched, the other answers from Redis without an upstream call."""
    query = {"query": '{ callCount(filter: {statuses: ["missed"]}) }'}
    with redis_server() as (redis_url, _), gateways(upstream_url, redis_url) as (first, second):
        async with httpx.AsyncClient(timeout=10) as client:
            one = await client.post(f"{first}/graphql", json=query, headers=headers_for(GLOBEX))
            two = await client.post(f"{second}/graphql", json=query, headers=headers_for(GLOBEX))
            metrics = (await client.get(f"{second}/metrics")).text
    assert (
        one.json() == two.json() == {"data": {"callCount": sim.count("globex", {"st": ["missed"]})}}
    )
    assert sim.request_count == 1
    assert 'gateway_cache_lookups_total{result="shared"} 1.0' in metrics


def campaign_query(campaign: int) -> str:
    """A callCount for one campaign."""
    return f"{{ callCount(filter: {{campaignId: {campaign}}}) }}"


async def test_stopping_redis_mid_test_fails_no_request(sim: Simulator, upstream_url: str) -> None:
    """Redis killed between waves of requests: every request still gets its numbers."""
    sim.faults.latency = 0.05
    with redis_server() as (redis_url, redis_process), gateways(upstream_url, redis_url) as urls:
        async with httpx.AsyncClient(timeout=10) as client:

            async def wave(offset: int) -> list[dict[str, object]]:
                responses = await asyncio.gather(
                    *(
                        client.post(
                            f"{urls[n % 2]}/graphql",
                            json={"query": campaign_query(offset + n % 5)},
                            headers=headers_for(ACME),
                        )
                        for n in range(20)
                    )
                )
                return [r.json() for r in responses]

            before = await wave(0)
            redis_process.kill()
            redis_process.wait()
            during = await wave(100)
            after = await wave(200)
            metrics = (await client.get(f"{urls[0]}/metrics")).text
    for body in before + during + after:
        assert "errors" not in body, body
        assert isinstance(body["data"]["callCount"], int)  # type: ignore[index]
    # Redis really was in the path, and its loss was noticed, counted and survived.
    assert re.search(r"^gateway_shared_cache_errors_total [1-9]", metrics, re.MULTILINE)
