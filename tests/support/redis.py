"""A real redis-server for tests, and gateway processes sharing it as replicas do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from support.servers import free_port, process

CLI = str(Path(sys.executable).parent / "deepcall-gateway")
SECRET = "shared-hmac-secret-for-tests"
#: Marks a module whose tests need redis-server (which .ci/run installs).
needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (installed by .ci/run)"
)


@contextmanager
def redis_server(port: int | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A throwaway redis-server on loopback (on ``port``, or a free one), no persistence."""
    port = port or free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no"]
    with process(args, "Ready to accept connections") as proc:
        yield f"redis://127.0.0.1:{port}/0", proc


@contextmanager
def replicas(
    upstream_url: str, redis_url: str, count: int = 2, **settings: str
) -> Iterator[list[str]]:
    """``count`` gateway processes sharing ``redis_url`` and one HMAC secret; their URLs."""
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
                **settings,
            }
            stack.enter_context(
                process([CLI, "serve", "--port", str(port)], "Application startup complete", env)
            )
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
