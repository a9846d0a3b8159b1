"""Tenants over real HTTP: one caller's failing, hanging or made-up questions never fail another.

Tenant A's questions are made to fail, hang or crawl by the simulator's faults
for A's credential alone (``Simulator.faults_for``), while tenant B asks as
usual; or DeepCall fails for everyone. Each test is a case the gateway once got
wrong: one caller's bad day became everyone's.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from conftest import ACME, GLOBEX, INITECH, Gateway, headers_for

from gateway.simulator import DemoCredential, Simulator

TENANT_A, TENANT_B = ACME, GLOBEX
A_FAULTS = "demo-ssid-acme"


def campaign(n: int) -> dict[str, str]:
    """A one-field request for campaign ``n``: a distinct question (a cache miss) per ``n``."""
    return {"query": f"{{ callCount(filter: {{campaignId: {n}}}) }}"}


async def ask(
    client: httpx.AsyncClient, caller: DemoCredential, n: int, **headers: str
) -> tuple[dict[str, Any], float]:
    """Ask for campaign ``n`` as ``caller``: the response body and the seconds it took."""
    started = time.perf_counter()
    response = await client.post(
        "/graphql", json=campaign(n), headers={**headers_for(caller), **headers}
    )
    assert response.status_code == 200, response.text
    return response.json(), time.perf_counter() - started


def code_of(body: dict[str, Any]) -> str:
    """The code of the first error of ``body``."""
    return str(body["errors"][0]["extensions"]["code"])


def counted(sim: Simulator, caller: DemoCredential, n: int) -> dict[str, Any]:
    """What the gateway must answer for ``caller`` asking for campaign ``n``."""
    return {"data": {"callCount": sim.count(caller.account, {"campId": n})}}


def metric(gateway: Gateway, line_start: str) -> float:
    """The value of the first /metrics line that starts with ``line_start``."""
    for line in gateway.client.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starts with {line_start!r}")


def poll(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition`` holds: a state of the gateway only its /metrics can show."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def client_for(gateway: Gateway, timeout: float = 30.0) -> httpx.AsyncClient:
    """An async client for ``gateway`` that opens as many connections as the test needs."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    return httpx.AsyncClient(base_url=gateway.url, timeout=timeout, limits=limits)


async def test_tenant_a_failing_60_questions_never_fails_tenant_b(
    gateway: Gateway, sim: Simulator
) -> None:
    """A's 60 questions all fail (1009, 1010) while B asks every 50 ms: all of B's succeed."""
    a_faults = sim.faults_for(A_FAULTS)
    b_bodies: list[dict[str, Any]] = []
    b_expected: list[dict[str, Any]] = []
    a_done = asyncio.Event()

    async with client_for(gateway) as client:

        async def tenant_a() -> list[dict[str, Any]]:
            bodies = []
            for batch in range(6):
                a_faults.error_code = 1009 if batch % 2 == 0 else 1010
                answers = await asyncio.gather(
                    *(ask(client, TENANT_A, batch * 10 + i) for i in range(10))
                )
                bodies += [body for body, _ in answers]
            a_done.set()
            return bodies

        async def tenant_b() -> None:
            n = 1000
            after = None
            while after is None or time.monotonic() < after:
                body, _ = await ask(client, TENANT_B, n)
                b_bodies.append(body)
                b_expected.append(counted(sim, TENANT_B, n))
                n += 1
                if a_done.is_set() and after is None:
                    after = time.monotonic() + 1.0  # and a second after A stops
                await asyncio.sleep(0.05)

        a_bodies, _ = await asyncio.gather(tenant_a(), tenant_b())

    assert len(a_bodies) == 60
    assert {code_of(body) for body in a_bodies} <= {"UPSTREAM_ERROR", "UPSTREAM_UNAVAILABLE"}
    assert len(b_bodies) >= 20
    assert b_bodies == b_expected
    assert metric(gateway, "gateway_breaker_state") == 0
    assert metric(gateway, "gateway_caller_circuits_open") == 1  # A's own, only


async def test_tenant_a_holding_200_hanging_questions_leaves_slots_for_tenant_b(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A's 200 unanswered questions hold at most A's 64 slots: B's 20 answer, quickly."""
    gateway = start_gateway(rate_limit=0)
    async with client_for(gateway) as client:
        assert "errors" not in (await ask(client, TENANT_A, 0))[0]  # A is a known caller
        a_faults = sim.faults_for(A_FAULTS)
        a_faults.hang = True
        hanging = [asyncio.create_task(ask(client, TENANT_A, n)) for n in range(1, 201)]
        try:
            assert await asyncio.to_thread(a_faults.wait_hanging, 64, 20.0)

            answers = [await ask(client, TENANT_B, 2000 + n) for n in range(20)]
            # The gateway's own count: the simulator's also holds tries the gateway gave up on.
            held_meanwhile = await asyncio.to_thread(
                metric, gateway, "gateway_upstream_slots_in_use"
            )
        finally:
            a_faults.reset()
            await asyncio.gather(*hanging, return_exceptions=True)

    assert [body for body, _ in answers] == [counted(sim, TENANT_B, 2000 + n) for n in range(20)]
    seconds = [took for _, took in answers]
    assert statistics.median(seconds) < 0.5, seconds
    assert max(seconds) < 2.0, seconds
    assert held_meanwhile == 64  # the per-caller cap, not every one of the 100 slots


async def test_a_caller_with_300_calls_queued_delays_another_by_one_turn_at_most(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """16 slots, A's 300 calls of 0.3 s queued: B's calls answer within a turn; A's all succeed."""
    gateway = start_gateway(
        rate_limit=0,
        upstream_concurrency=16,
        upstream_caller_concurrency=16,
        upstream_queue=1000,
        upstream_queue_timeout=30,
    )

    async def a_batch(client: httpx.AsyncClient, first: int) -> dict[str, Any]:
        # Ten aliases per request, as services send them: 300 calls arrive at once.
        fields = " ".join(
            f"c{n}: callCount(filter: {{campaignId: {n}}})" for n in range(first, first + 10)
        )
        response = await client.post(
            "/graphql", json={"query": f"{{ {fields} }}"}, headers=headers_for(TENANT_A)
        )
        body: dict[str, Any] = response.json()
        return body

    async with client_for(gateway, timeout=60) as client:
        assert "errors" not in (await ask(client, TENANT_A, 0))[0]
        sim.faults_for(A_FAULTS).latency = 0.3
        a_calls = [asyncio.create_task(a_batch(client, first)) for first in range(1, 301, 10)]
        await asyncio.to_thread(poll, lambda: metric(gateway, "gateway_upstream_waiting") >= 250)

        b_answers = [await ask(client, TENANT_B, 3000 + n) for n in range(5)]
        still_waiting = metric(gateway, "gateway_upstream_waiting")
        a_answers = await asyncio.gather(*a_calls)

    assert [body for body, _ in b_answers] == [counted(sim, TENANT_B, 3000 + n) for n in range(5)]
    assert max(took for _, took in b_answers) < 1.5, [took for _, took in b_answers]
    assert still_waiting >= 150  # B went ahead of most of A's queue, not after it
    expected = {f"c{n}": sim.count(TENANT_A.account, {"campId": n}) for n in range(1, 301)}
    assert {alias: value for body in a_answers for alias, value in body["data"].items()} == expected
    assert not any("errors" in body for body in a_answers)


async def test_two_failing_questions_then_a_good_one_from_the_same_caller(
    gateway: Gateway, sim: Simulator
) -> None:
    """Two questions DeepCall fails, then one it answers: the third gets its count."""
    async with client_for(gateway) as client:
        sim.faults.error_code = 1009
        first, _ = await ask(client, TENANT_A, 1)
        sim.faults.error_code = 1010
        second, _ = await ask(client, TENANT_A, 2)
        sim.faults.error_code = None
        third, _ = await ask(client, TENANT_A, 3)

    assert (code_of(first), code_of(second)) == ("UPSTREAM_ERROR", "UPSTREAM_UNAVAILABLE")
    assert third == counted(sim, TENANT_A, 3)


async def test_a_dead_upstream_opens_the_circuit_for_three_callers_within_the_budget(
    gateway: Gateway, sim: Simulator
) -> None:
    """90 calls of three callers to a dead DeepCall: <= 1.2 x 90 + 10 tries, the last 30 fast."""
    sim.faults.error_code = 1010
    callers = (ACME, GLOBEX, INITECH)
    results = []
    async with client_for(gateway) as client:
        for n in range(30):
            for caller in callers:
                results.append(await ask(client, caller, n))

    assert [code_of(body) for body, _ in results] == ["UPSTREAM_UNAVAILABLE"] * 90
    assert sim.request_count <= 1.2 * 90 + 10
    last = [took for _, took in results[-30:]]
    assert statistics.median(last) < 0.05, last
    assert metric(gateway, "gateway_breaker_state") == 2  # open


async def test_made_up_credentials_from_one_address_are_limited_without_calls(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """300 made-up credentials behind one forwarded address: <= 60 calls; real callers served."""
    gateway = start_gateway(trusted_proxies=("127.0.0.1/32",), rate_limit=0)
    attacker, elsewhere = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "203.0.113.9"}
    async with client_for(gateway) as client:
        known, _ = await ask(client, GLOBEX, 1, **attacker)  # a real user behind that address
        sim.clear_requests()

        async def made_up(n: int) -> httpx.Response:
            headers = {"X-DeepCall-SSID": f"made-up-{n}", **attacker}
            return await client.post("/graphql", json=campaign(n), headers=headers)

        responses = []
        for start in range(0, 300, 30):
            responses += await asyncio.gather(*(made_up(n) for n in range(start, start + 30)))
        made_up_calls = sim.request_count

        same_address, _ = await ask(client, GLOBEX, 2, **attacker)
        other_address, _ = await ask(client, INITECH, 3, **elsewhere)

    assert made_up_calls <= 60
    codes = [code_of(response.json()) for response in responses]
    assert set(codes) == {"UNAUTHENTICATED", "RATE_LIMITED"}
    assert codes.count("UNAUTHENTICATED") == made_up_calls
    limited = [r.json()["errors"][0]["extensions"] for r in responses]
    assert all(e["retryAfter"] >= 1 for e in limited if e["code"] == "RATE_LIMITED")
    assert known == counted(sim, GLOBEX, 1)
    assert same_address == counted(sim, GLOBEX, 2)
    assert other_address == counted(sim, INITECH, 3)
    refused = 'gateway_upstream_refusals_total{reason="new_credentials"}'
    assert metric(gateway, refused) == codes.count("RATE_LIMITED")


async def test_a_new_credentials_200_hanging_questions_leave_its_neighbour_served(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """One new credential's 200 questions hang: another new one at its address is served."""
    gateway = start_gateway(new_credentials_per_minute=2, rate_limit=0)
    sim.sessions.update({"new-hanging": "acme", "new-neighbour": "globex"})
    sim.faults_for("new-hanging").hang = True
    async with client_for(gateway) as client:

        async def hanging(batch: int) -> httpx.Response:
            fields = " ".join(
                f"a{i}: callCount(filter: {{campaignId: {batch * 10 + i}}})" for i in range(10)
            )
            return await client.post(
                "/graphql",
                json={"query": f"{{ {fields} }}"},
                headers={"X-DeepCall-SSID": "new-hanging"},
            )

        held = [asyncio.create_task(hanging(batch)) for batch in range(20)]
        await asyncio.to_thread(sim.wait_requests, 1)  # its trial is at DeepCall, hanging
        neighbour = [
            (
                await client.post(
                    "/graphql",
                    json=campaign(5000 + n),
                    headers={"X-DeepCall-SSID": "new-neighbour"},
                )
            ).json()
            for n in range(20)
        ]
        sim.release_held()
        sim.faults_for("new-hanging").hang = False
        await asyncio.gather(*held)

    assert neighbour == [
        {"data": {"callCount": sim.count("globex", {"campId": 5000 + n})}} for n in range(20)
    ]


async def test_sixty_valid_new_users_at_one_address_are_all_served_while_deepcall_is_slow(
    gateway: Gateway, sim: Simulator
) -> None:
    """60 real users new to the gateway, one address, DeepCall slow: none is RATE_LIMITED."""
    users = [f"new-user-{n}" for n in range(60)]
    sim.sessions.update(dict.fromkeys(users, "initech"))
    sim.faults.latency = 0.5
    async with client_for(gateway) as client:
        bodies = await asyncio.gather(
            *(
                client.post("/graphql", json=campaign(n), headers={"X-DeepCall-SSID": user})
                for n, user in enumerate(users)
            )
        )

    assert [body.json() for body in bodies] == [counted(sim, INITECH, n) for n in range(60)]
    assert sim.request_count == 60


async def test_forwarded_addresses_are_ignored_unless_the_peer_is_a_trusted_proxy(
    gateway: Gateway, sim: Simulator
) -> None:
    """No trusted proxies: a fresh X-Forwarded-For per request does not buy a fresh budget."""
    async with client_for(gateway) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/graphql",
                    json=campaign(n),
                    headers={"X-DeepCall-SSID": f"made-up-{n}", "X-Forwarded-For": f"10.0.0.{n}"},
                )
                for n in range(100)
            )
        )

    assert sim.request_count <= 30
    assert sum(code_of(r.json()) == "RATE_LIMITED" for r in responses) >= 70


async def test_a_rejected_credential_is_remembered_and_not_sent_again(
    gateway: Gateway, sim: Simulator
) -> None:
    """The same invalid credential ten times, with ten aliases each: DeepCall hears it once."""
    aliases = " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(10))
    async with client_for(gateway) as client:
        bodies = [
            (
                await client.post(
                    "/graphql",
                    json={"query": f"{{ {aliases} }}"},
                    headers={"X-DeepCall-SSID": "not-a-session"},
                )
            ).json()
            for _ in range(10)
        ]

    assert sim.request_count == 1
    assert all(
        [e["extensions"] for e in body["errors"]]
        == [{"code": "UNAUTHENTICATED", "retryable": False, "upstreamCode": 1014}] * 10
        for body in bodies
    )
    assert metric(gateway, 'gateway_upstream_refusals_total{reason="invalid_credential"}') == 99
