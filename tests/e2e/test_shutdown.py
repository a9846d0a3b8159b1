"""Graceful shutdown of the real command line: drain, finish in-flight requests, exit 0.

Each test runs `deepcall-gateway` as a subprocess on a loopback port of its own
choosing and follows it through its log lines, which the server writes after
the fact they report (see ``gateway.server.runtime.GracefulServer``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ACME, headers_for

from gateway.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "deepcall-gateway")
WAIT = 10.0
"""Seconds any one awaited event (a log line, a response, an exit) may take."""
LATENCY = 1.0
"""Seconds the simulator takes per upstream call, so requests are in flight at the signal."""
PROMPT = 5.0
"""Seconds an idle server may take from the signal to its exit, with room for a loaded machine."""
CAMPAIGNS = range(20)
STARTED = re.compile(r"Uvicorn running on (http://\S+)")
DRAINING = "received: draining"
REFUSING = "Refusing new connections"

pytestmark = pytest.mark.slow


class Running:
    """A command-line server process, its base URL, and the output it has written so far.

    A task reads the output as it comes, so the process never blocks on a full pipe.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.url = ""
        self.lines: list[str] = []
        self._searched = 0
        self._ended = False
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @property
    def log(self) -> str:
        """Everything the process has written so far."""
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode():
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        async with self._changed:
            self._ended = True
            self._changed.notify_all()

    async def line_with(self, text: str) -> str:
        """Wait for the next output line (after the last one found) containing ``text``."""
        async with asyncio.timeout(WAIT), self._changed:
            while True:
                for index in range(self._searched, len(self.lines)):
                    if text in self.lines[index]:
                        self._searched = index + 1
                        return self.lines[index]
                self._searched = len(self.lines)
                if self._ended:
                    raise AssertionError(f"output ended without {text!r}:\n{self.log}")
                await self._changed.wait()

    async def close(self) -> None:
        """Kill the process if it still runs; read its output to the end and reap it."""
        if self.process.returncode is None:
            self.process.kill()
        await self._reader  # to the end of the pipe, so its transport closes
        await self.process.wait()

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` to the process."""
        self.process.send_signal(sig)

    async def exit_status(self, within: float = WAIT) -> int:
        """Wait at most ``within`` seconds for the process to end; its exit status."""
        async with asyncio.timeout(within):
            await self._reader  # the output ends when the process does
            return await self.process.wait()


@asynccontextmanager
async def running(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """Start ``deepcall-gateway *args --port 0`` and yield it once it listens; kill it if left."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    process = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**base, **(env or {})},
        cwd=ROOT,
    )
    server = Running(process)
    try:
        match = STARTED.search(await server.line_with("Uvicorn running"))
        assert match is not None
        server.url = match.group(1)
        yield server
    finally:
        await server.close()


class Countdown:
    """Counts requests whose body httpcore has written to the socket, and says when all have."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` extension hook: called at each step of sending a request."""
        if event == "http11.send_request_body.complete":
            self.left -= 1
            if self.left == 0:
                self.done.set()


def gateway_env(upstream_url: str, drain_seconds: float) -> dict[str, str]:
    """Settings for a gateway in front of the test simulator, limited only by the test."""
    return {
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_DRAIN_SECONDS": str(drain_seconds),
        "GATEWAY_UPSTREAM_CONCURRENCY": "256",
        "GATEWAY_UPSTREAM_CALLER_CONCURRENCY": "256",
        "GATEWAY_UPSTREAM_MAX_CONNECTIONS": "256",
        "GATEWAY_RATE_LIMIT": "0",
    }


def count_query(campaign: int) -> dict[str, str]:
    """The GraphQL body asking for acme's calls in ``campaign``."""
    return {"query": f"{{ callCount(filter: {{campaignId: {campaign}}}) }}"}


async def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(
    sim: Simulator, upstream_url: str
) -> None:
    """On SIGTERM: /readyz 503 at once, 200 in-flight requests counted, then refusal, exit 0."""
    expected = {n: sim.count("acme", {"campId": n}) for n in CAMPAIGNS}
    sim.faults.latency = LATENCY
    # A connection per request, none kept alive: reusing one the server is just closing
    # for idleness would fail a request for reasons that have nothing to do with shutdown.
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
    async with (
        running("serve", env=gateway_env(upstream_url, drain_seconds=2)) as gateway,
        httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=WAIT) as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
        plan = [n % len(CAMPAIGNS) for n in range(200)]
        sent = Countdown(len(plan))
        async with asyncio.TaskGroup() as in_flight:  # a failure below cancels the requests
            requests = [
                in_flight.create_task(
                    client.post(
                        "/graphql",
                        json=count_query(n),
                        headers=headers_for(ACME),
                        extensions={"trace": sent.trace},
                    )
                )
                for n in plan
            ]
            async with asyncio.timeout(WAIT):
                await sent.done.wait()
            assert await asyncio.to_thread(sim.wait_requests, len(CAMPAIGNS), WAIT)

            gateway.signal(signal.SIGTERM)
            # A client of its own, so these are new connections: answered, they were
            # accepted during the drain, since the listener closes when it ends.
            async with httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as probe:
                readyz, healthz, late = await asyncio.gather(
                    probe.get("/readyz"),
                    probe.get("/healthz"),
                    probe.post("/graphql", json=count_query(0), headers=headers_for(ACME)),
                )
            assert readyz.status_code == 503
            assert healthz.status_code == 200
            assert late.json() == {"data": {"callCount": expected[0]}}

        responses = [request.result() for request in requests]
        assert [r.status_code for r in responses] == [200] * len(plan)
        assert [r.json() for r in responses] == [{"data": {"callCount": expected[n]}} for n in plan]

        await gateway.line_with(REFUSING)
        async with httpx.AsyncClient(timeout=WAIT) as fresh:
            with pytest.raises(httpx.ConnectError):
                await fresh.get(f"{gateway.url}/healthz")
        assert await gateway.exit_status() == 0


async def test_second_sigterm_ends_the_drain_but_not_in_flight_requests(
    sim: Simulator, upstream_url: str
) -> None:
    """A second SIGTERM cuts a minute-long drain short; the request in flight still finishes."""
    expected = sim.count("acme", {"campId": 3})
    sim.faults.latency = 2 * LATENCY  # a margin for the request to outlast the second signal
    async with (
        running("serve", env=gateway_env(upstream_url, drain_seconds=60)) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=WAIT) as client,
    ):
        async with asyncio.TaskGroup() as in_flight:
            request = in_flight.create_task(
                client.post("/graphql", json=count_query(3), headers=headers_for(ACME))
            )
            assert await asyncio.to_thread(sim.wait_requests, 1, WAIT)
            gateway.signal(signal.SIGTERM)
            # Wait until the first signal is handled, lest the kernel merge the two.
            await gateway.line_with(DRAINING)
            gateway.signal(signal.SIGTERM)
            await gateway.line_with(REFUSING)
            assert not request.done()
        assert request.result().json() == {"data": {"callCount": expected}}
        assert await gateway.exit_status() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_without_drain_exits_0_promptly(
    sig: signal.Signals, upstream_url: str
) -> None:
    """Idle and with no drain, the gateway stops on the signal with status 0 at once."""
    async with running("serve", env=gateway_env(upstream_url, drain_seconds=0)) as gateway:
        gateway.signal(sig)
        assert await gateway.exit_status(within=PROMPT) == 0
    assert REFUSING in gateway.log
    assert "Application shutdown complete" in gateway.log


async def test_simulate_exits_0_on_sigterm() -> None:
    """`deepcall-gateway simulate` stops with status 0 on SIGTERM."""
    async with running("simulate", "--calls", "2000") as simulator:
        simulator.signal(signal.SIGTERM)
        assert await simulator.exit_status(within=PROMPT) == 0
