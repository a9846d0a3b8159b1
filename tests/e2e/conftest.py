"""Fixtures for end-to-end tests: one simulator over loopback, gateways started per test."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support.servers import run_app, run_simulator

from gateway.config import Settings
from gateway.server import create_app
from gateway.simulator import DEMO_CREDENTIALS, DemoCredential, Simulator

ACME = next(c for c in DEMO_CREDENTIALS if c.name == "acme-admin")
GLOBEX = next(c for c in DEMO_CREDENTIALS if c.name == "globex-api")
INITECH = next(c for c in DEMO_CREDENTIALS if c.name == "initech-admin")
VIEWER = next(c for c in DEMO_CREDENTIALS if not c.can_list)
EXPIRED = next(c for c in DEMO_CREDENTIALS if c.expired)


def headers_for(credential: DemoCredential) -> dict[str, str]:
    """The gateway request headers that carry ``credential``."""
    if credential.ssid is not None:
        return {"X-DeepCall-SSID": credential.ssid}
    assert credential.user_id is not None
    assert credential.token is not None
    return {"X-DeepCall-User-Id": credential.user_id, "X-DeepCall-Token": credential.token}


@dataclass
class Gateway:
    """A gateway served over loopback, with a client for it."""

    url: str
    client: httpx.Client

    def post(
        self,
        query: str,
        headers: dict[str, str] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """POST one GraphQL operation and return the raw response."""
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return self.client.post(f"{self.url}/graphql", json=body, headers=headers or {})

    def query(
        self,
        query: str,
        headers: dict[str, str] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST one operation, check it got a JSON 200, return the body."""
        response = self.post(query, headers, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="session")
def session_simulator() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(scope="session")
def upstream_url(session_simulator: Simulator) -> Iterator[str]:
    with run_simulator(session_simulator) as url:
        yield url


@pytest.fixture
def sim(session_simulator: Simulator, upstream_url: str) -> Iterator[Simulator]:
    """The shared simulator, faults off and its request log empty."""
    session_simulator.reset_faults()
    session_simulator.clear_requests()
    yield session_simulator
    session_simulator.reset_faults()


# For the modules that build their own module-scoped ``sim`` (test_simulator_*.py).


@pytest.fixture(scope="module")
def base_url(sim: Simulator) -> Iterator[str]:
    """The module's simulator served by uvicorn on loopback."""
    with run_simulator(sim) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the served simulator."""
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        yield http


@pytest.fixture
def clean_sim(sim: Simulator) -> Iterator[None]:
    """The test starts with faults off and an empty request record, and leaves faults off."""
    sim.reset_faults()
    sim.clear_requests()
    yield
    sim.reset_faults()


@pytest.fixture
def start_gateway(upstream_url: str) -> Iterator[Callable[..., Gateway]]:
    """Start gateways against the simulator: ``start_gateway(**settings, clock=, transport=)``."""
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=30))

        def start(
            clock: Callable[[], float] | None = None,
            transport: httpx.AsyncBaseTransport | None = None,
            tracer_provider: Any = None,
            **overrides: Any,
        ) -> Gateway:
            settings = dataclasses.replace(Settings(upstream_url=upstream_url), **overrides)
            extra: dict[str, Any] = {"transport": transport, "tracer_provider": tracer_provider}
            if clock is not None:
                extra["clock"] = clock
            url = stack.enter_context(run_app(create_app(settings, **extra)))
            return Gateway(url, client)

        yield start


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway], sim: Simulator) -> Gateway:
    """A gateway with default settings in front of the (reset) simulator."""
    return start_gateway()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
