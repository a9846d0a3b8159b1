"""Test support: serve an ASGI app (the simulator, or the gateway) over real loopback HTTP.

``run_app(app)`` starts uvicorn in a background thread on a free port of
127.0.0.1, returns once it accepts connections, and shuts it down gracefully
(lifespan included) on exit. ``run_simulator(sim)`` does the same for
``create_simulator_app(sim)`` and also releases requests held by ``hang``, so
shutdown never waits on them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from gateway.simulator import Simulator, create_simulator_app

START_TIMEOUT = 10.0
"""Seconds to wait for the server to start (or stop) before failing the test."""


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that signals a thread-safe event once it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets)
        except SystemExit:
            pass  # uvicorn's way of failing start-up; run_app reports it
        finally:
            self.ready.set()  # also when start-up failed before listening


@contextmanager
def run_app(app: ASGIApp, *, graceful_timeout: int = 2) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a thread and yield its base URL ``http://127.0.0.1:PORT``."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = _ThreadServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    try:
        thread.start()
        if not server.ready.wait(START_TIMEOUT) or not server.started:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(START_TIMEOUT + graceful_timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on 127.0.0.1:{port} did not stop")


@contextmanager
def run_simulator(sim: Simulator) -> Iterator[str]:
    """Serve ``sim`` on 127.0.0.1 in a thread and yield its base URL."""
    with run_app(create_simulator_app(sim)) as url:
        try:
            yield url
        finally:
            sim.faults.release()  # held requests would otherwise delay shutdown
