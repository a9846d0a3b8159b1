"""Test support: serve an ASGI app (the simulator, or the gateway) over real loopback HTTP.

``run_app(app)`` starts uvicorn in a background thread on a free port of
127.0.0.1, returns once it accepts connections, and shuts it down gracefully
(lifespan included) on exit. ``run_simulator(sim)`` does the same for
``create_simulator_app(sim)`` and also releases requests held by ``hang``, so
shutdown never waits on them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from gateway.simulator import Simulator, create_simulator_app

START_TIMEOUT = 10.0
"""Seconds to wait for the server to start (or stop) before failing the test."""
PROCESS_START_TIMEOUT = 30.0
"""Seconds a subprocess gets to show that it is ready before it is killed."""


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
def run_app(
    app: ASGIApp, *, graceful_timeout: int = 2, host: str = "127.0.0.1", **options: Any
) -> Iterator[str]:
    """Serve ``app`` on ``host`` in a thread and yield its base URL ``http://HOST:PORT``.

    ``options`` go to ``uvicorn.Config``; with ``ssl_certfile`` the URL is ``https://``.
    """
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        # As `deepcall-gateway serve`: the app reads X-Forwarded-For itself, or not at all.
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_timeout,
        **options,
    )
    server = _ThreadServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    try:
        thread.start()
        if not server.ready.wait(START_TIMEOUT) or not server.started:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        scheme = "https" if options.get("ssl_certfile") else "http"
        yield f"{scheme}://{host}:{port}"
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(START_TIMEOUT + graceful_timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on {host}:{port} did not stop")


@contextmanager
def run_simulator(sim: Simulator, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``sim`` on ``host`` in a thread and yield its base URL."""
    with run_app(create_simulator_app(sim), host=host) as url:
        try:
            yield url
        finally:
            sim.release_held()  # held requests would otherwise delay shutdown


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def process(
    args: list[str], ready: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run ``args`` until the context ends; return once its output shows ``ready``.

    ``proc.output`` holds every line of its output so far (stderr included).

    A watchdog kills a process that never gets ready, and a thread keeps
    reading its output afterwards so that a full pipe never blocks it.
    """
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    watchdog = threading.Timer(PROCESS_START_TIMEOUT, proc.kill)
    watchdog.start()
    drain: threading.Thread | None = None
    try:
        seen = []
        for line in stdout:  # blocks on the process's own output
            seen.append(line)
            if ready in line:
                break
        else:
            raise AssertionError("".join(seen))
        watchdog.cancel()
        drain = threading.Thread(target=seen.extend, args=(stdout,), daemon=True)
        drain.start()
        proc.output = seen  # type: ignore[attr-defined]  # every line, read on
        yield proc
    finally:
        watchdog.cancel()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drain is not None:
            drain.join(timeout=5)
        stdout.close()
