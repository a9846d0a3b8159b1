"""The simulator's fault switches, request record and loopback helper, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from support.servers import run_app, run_simulator
from support.simulator import error, post, success

from gateway.simulator import Simulator

NOW = datetime(2025, 11, 23, 15, 30)
PATH = "/api/v2/CallReport/reportCount"
ACME = {"ssid": "demo-ssid-acme"}
GLOBEX = {"userId": "2001", "token": "demo-token-globex"}
NOTHING: dict[str, list[str]] = {"st": []}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A small simulator with a fixed ``now``, shared by this module."""
    with Simulator(seed=7, calls=5_000, now=NOW) as simulator:
        yield simulator


pytestmark = pytest.mark.usefixtures("clean_sim")


# -- fault switches ----------------------------------------------------------


def test_latency_delays_the_answer(client: httpx.Client, sim: Simulator) -> None:
    """``latency`` holds the answer back at least that long, then answers normally."""
    sim.faults.latency = 0.3
    started = time.perf_counter()
    body = post(client, {**ACME, "filter": NOTHING})
    assert time.perf_counter() - started >= 0.3
    assert body == success(0)


def test_hang_makes_the_client_time_out(base_url: str, sim: Simulator) -> None:
    """With ``hang`` on, a client with a 0.2 s timeout times out and the request stays held."""
    sim.faults.hang = True
    with (
        httpx.Client(base_url=base_url, timeout=0.2) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(PATH, json=ACME)
    assert sim.faults.wait_hanging(1)
    assert sim.request_count == 1
    sim.faults.reset()
    assert sim.faults.wait_hanging(0)
    assert sim.faults.hanging == 0


def test_a_held_request_does_not_block_others(client: httpx.Client, sim: Simulator) -> None:
    """While one request hangs, later ones are served; the held one answers on release."""
    sim.faults.hang = True
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(post, client, {**ACME, "filter": NOTHING})
        assert sim.faults.wait_hanging(1, timeout=5.0)
        sim.faults.hang = False
        assert post(client, GLOBEX) == success(sim.count("globex"))
        assert not held.done()
        sim.faults.release()
        assert held.result(timeout=5.0) == success(0)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (1009, "Something went wrong"),
        (1010, "Error in DB connect"),
        (1000, "Invalid parameters"),
        (1047, "Invalid Request Data"),
        (4242, "Unknown error"),
    ],
)
def test_error_code_fault(client: httpx.Client, sim: Simulator, code: int, message: str) -> None:
    """``error_code`` answers that code with HTTP 200, even to a valid request."""
    sim.faults.error_code = code
    assert post(client, {**ACME, "filter": NOTHING}) == error(code, message)


def test_non_json_fault(client: httpx.Client, sim: Simulator) -> None:
    """``non_json`` answers HTTP 200 with an HTML body that does not parse as JSON."""
    sim.faults.non_json = True
    response = client.post(PATH, json=ACME)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()


def test_wrong_shape_fault(client: httpx.Client, sim: Simulator) -> None:
    """``wrong_shape`` answers HTTP 200 JSON whose ``cnt`` is not a number."""
    sim.faults.wrong_shape = True
    assert post(client, ACME) == {"code": 200, "status": "success", "cnt": "many"}


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_http_status_fault(client: httpx.Client, sim: Simulator, status: int) -> None:
    """``http_status`` answers with that status and a small non-JSON body."""
    sim.faults.http_status = status
    response = client.post(PATH, json=ACME)
    assert response.status_code == status
    assert f"<h1>{status} " in response.text
    assert len(response.content) < 200


def test_reset_turns_every_fault_off(client: httpx.Client, sim: Simulator) -> None:
    """After ``reset()`` a request that was faulted is answered normally again."""
    sim.faults.error_code = 1010
    sim.faults.http_status = 502
    assert client.post(PATH, json=ACME).status_code == 502
    sim.faults.reset()
    assert post(client, {**ACME, "filter": NOTHING}) == success(0)


# -- the request record ------------------------------------------------------


def test_requests_are_recorded_in_order_including_rejected_ones(
    client: httpx.Client, sim: Simulator
) -> None:
    """Every JSON-object body is kept in order, rejected or faulted ones too."""
    bodies: list[dict[str, Any]] = [
        {**ACME, "filter": NOTHING},
        {"ssid": "no-such-session"},
        {**GLOBEX, "filter": {"campId": "x"}, "priorityFilter": "YWJj"},
    ]
    for body in bodies:
        post(client, body)
    sim.faults.error_code = 1009
    post(client, ACME)
    assert sim.requests == [*bodies, ACME]
    assert sim.request_count == 4


def test_non_json_bodies_are_counted_but_not_kept(client: httpx.Client, sim: Simulator) -> None:
    """Empty, non-JSON and non-object bodies count as requests but add no record."""
    for content in (b"", b"<xml/>", b"[1, 2]"):
        client.post(PATH, content=content)
    client.post(PATH, json=ACME)
    assert sim.request_count == 4
    assert sim.requests == [ACME]
    sim.clear_requests()
    assert sim.request_count == 0
    assert sim.requests == []


# -- the loopback server helper ----------------------------------------------


def test_run_app_fails_fast_when_start_up_fails() -> None:
    """``run_app`` raises instead of yielding a URL when the app's lifespan start-up fails."""

    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("start-up failed")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="did not start"), run_app(Starlette(lifespan=broken)):
        pytest.fail("run_app yielded for an app that could not start")


def test_run_simulator_answers_held_requests_on_shutdown() -> None:
    """Leaving ``run_simulator`` releases a held request, which is answered, not cut off."""
    with (
        Simulator(calls=0, now=NOW) as small,
        httpx.Client(timeout=10.0) as http,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        with run_simulator(small) as url:
            small.faults.hang = True
            held = pool.submit(post, http, ACME, f"{url}{PATH}")
            assert small.faults.wait_hanging(1)
        assert held.result(timeout=10.0) == success(0)
