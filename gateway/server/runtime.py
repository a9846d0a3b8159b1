"""Running the gateway in a process: settings from the environment, uvicorn, a graceful stop."""

from __future__ import annotations

import gc
import inspect
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from gateway.config import Settings
from gateway.observe import configure_logging
from gateway.server import protocol
from gateway.server.app import create_app

logger = logging.getLogger("gateway")


def start_process(environ: Mapping[str, str]) -> Settings:
    """Settings from ``environ``, with logging and the collector set up for serving.

    Raises ``SettingsError`` naming every bad value.
    """
    settings = Settings.from_environ(environ)
    configure_logging(settings.log_level, settings.log_format)
    tune_garbage_collection()
    return settings


def app_from_environ() -> Starlette:
    """The app for ``os.environ``: what each of several uvicorn workers builds."""
    return create_app(start_process(os.environ))


def uvicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """What every gateway server is run with, one process or several."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; the gateway
        # reads it itself, from GATEWAY_TRUSTED_PROXIES only (gateway.http.callers).
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        # Live streams over the WebSocket: pinged as other streams get heartbeats, never
        # compressed, and no message longer than a request body may be.
        "ws_ping_interval": settings.live_heartbeat,
        "ws_per_message_deflate": False,
        "ws_max_size": settings.max_body_bytes,
    }


def bounded(config: uvicorn.Config, settings: Settings) -> uvicorn.Config:
    """``config`` serving HTTP with the request bounds of ``settings``."""
    return protocol.configure(
        config,
        head_limit=settings.max_header_bytes,
        head_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )


def run_workers(config: uvicorn.Config) -> int:
    """Run ``config.workers`` processes under uvicorn's supervisor, as ``uvicorn.run`` does."""
    supervisor = Multiprocess
    extra: dict[str, Any] = {}
    if "target" in inspect.signature(supervisor).parameters:  # uvicorn before 0.36
        extra["target"] = uvicorn.Server(config).run
    supervisor(config, sockets=[config.bind_socket()], **extra).run()
    return 0


def tune_garbage_collection() -> None:
    """Collect the young generation less often: fewer pauses in the latency tail.

    A request allocates thousands of short-lived objects; with CPython's default
    threshold (700) the collector interrupts the event loop every few requests.
    """
    gc.collect()
    gc.freeze()  # what start-up built lives for the whole process: never scan it again
    gc.set_threshold(50_000, 20, 20)


def run(server: GracefulServer) -> int:
    """Run ``server`` until it stops; the exit status (uvicorn's 3 if it never started)."""
    server.run()
    return 0 if server.started else STARTUP_FAILURE


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with a drain before it stops and a clean exit on a signal.

    On the first SIGTERM or SIGINT, ``on_drain`` runs at once (the gateway's
    ``/readyz`` turns 503) while the server goes on accepting and serving for
    ``drain_seconds``, so that a load balancer (Kubernetes endpoints) has time
    to stop routing here. Then uvicorn's graceful shutdown: the listening
    sockets close (new connections are refused), in-flight requests finish
    within ``timeout_graceful_shutdown``, the lifespan shuts down, and ``run``
    returns. A second signal during the drain ends the drain early (in-flight
    requests still finish); a SIGINT after that stops waiting for them, as in
    plain uvicorn.

    Unlike plain uvicorn, the signal is not raised again once the server has
    stopped, so a graceful stop exits with status 0 (what Kubernetes and
    systemd expect), not 143 or 130.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain_seconds: float = 0.0,
        on_drain: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.on_drain = on_drain
        self.drain_deadline: float | None = None
        """``time.monotonic()`` at which the drain ends; ``None`` until a signal."""
        self._signal_name = ""
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the drain, or cut it short; never block (this is the signal handler)."""
        # This runs on the main thread between two bytecodes of the event loop,
        # so it only sets flags; on_tick acts on them. Not calling super() keeps
        # the signal out of uvicorn's list of signals to raise again at exit.
        if self.drain_deadline is None:
            self._signal_name = signal.Signals(sig).name
            self.drain_deadline = time.monotonic() + self.drain_seconds
            if self.on_drain is not None:
                self.on_drain()
            if self.drain_seconds <= 0:
                self.should_exit = True
        elif not self.should_exit:
            self.should_exit = True
        elif sig == signal.SIGINT:
            self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        """End the drain once its deadline has passed; uvicorn calls this every 0.1 s."""
        deadline = self.drain_deadline
        if deadline is not None:
            if not self._announced:
                self._announced = True
                logger.info(
                    "%s received: draining for %.1fs, then refusing new connections",
                    self._signal_name,
                    0 if self.should_exit else max(0.0, deadline - time.monotonic()),
                )
            if time.monotonic() >= deadline:
                self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening, say so, then let uvicorn finish in-flight requests and the lifespan."""
        # uvicorn closes the listeners too, but only after logging; closing them
        # first makes the log line below a promise that new connections fail.
        for server in self.servers:
            server.close()
        timeout = self.config.timeout_graceful_shutdown
        limit = "" if timeout is None else f" up to {timeout}s"
        logger.info("Refusing new connections; waiting%s for in-flight requests", limit)
        await super().shutdown(sockets)
