"""Instructions per request, by callgrind: a measure of CPU cost that noise cannot move.

    .venv/bin/python tests/benchmarks/instructions.py [--baseline DIR] [--scenarios hit,...]
        [--server]

Each scenario runs the gateway's ASGI app in one process, without sockets: the
requests go straight to the app, the upstream is an ``httpx.MockTransport``
answering at once. With ``--server`` they go through the server's HTTP/1.1
protocol instead (bytes in, bytes out, on a transport in memory), so what the
server does before and after the app counts too. The process runs twice under
``valgrind --tool=callgrind``, with ``--requests`` and with twice as many; the
difference, divided by the extra requests, is what one request costs, start-up
and warm-up excluded. With
``--baseline``, the same for an earlier checkout's gateway (first on
PYTHONPATH), and the ratio. The same binary, inputs and environment give the
same counts whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SSID = "bench-ssid"
SERVER = False  # --server: through the HTTP/1.1 protocol, not straight into the app
SCENARIOS = ("hit", "miss_vars", "miss_inline", "batch10_miss", "batch10_miss_inline")


def _body(scenario: str, n: int) -> bytes:
    """The request body of ``scenario``'s ``n``-th request (misses never repeat a filter)."""
    if scenario == "hit":
        return b'{"query":"{ callCount(filter: {campaignId: 1}) }"}'
    if scenario == "miss_vars":
        query = "query($f: CallFilterInput) { callCount(filter: $f) }"
        return json.dumps({"query": query, "variables": {"f": {"campaignId": n}}}).encode()
    if scenario == "miss_inline":
        return json.dumps({"query": f"{{ callCount(filter: {{campaignId: {n}}}) }}"}).encode()
    if scenario == "batch10_miss":
        declared = ", ".join(f"$f{i}: CallFilterInput" for i in range(10))
        fields = " ".join(f"a{i}: callCount(filter: $f{i})" for i in range(10))
        variables = {f"f{i}": {"campaignId": n * 10 + i} for i in range(10)}
        query = f"query({declared}) {{ {fields} }}"
        return json.dumps({"query": query, "variables": variables}).encode()
    if scenario == "batch10_miss_inline":
        fields = " ".join(
            f"a{i}: callCount(filter: {{campaignId: {n * 10 + i}}})" for i in range(10)
        )
        return json.dumps({"query": f"{{ {fields} }}"}).encode()
    raise ValueError(scenario)


def _create_app() -> Callable[..., Any]:
    """``create_app`` wherever this checkout keeps it."""
    try:
        from gateway.server import create_app
    except ImportError:  # checkouts before the packages
        from gateway.app import create_app  # type: ignore[no-redef]
    return create_app


async def _drive(scenario: str, requests: int, redis_url: str = "", server: bool = False) -> None:
    import httpx

    from gateway.config import Settings

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 200, "status": "success", "cnt": 7})

    settings = Settings(
        upstream_url="http://stub.invalid",
        rate_limit=0 if not redis_url else 1e6,  # with Redis, the fleet's bucket is in the path
        rate_burst=1e6,
        max_fanout=1000,
        log_level="WARNING",
        redis_url=redis_url,
    )
    if redis_url:  # every run starts from an empty Redis: no count left by the one before
        import redis.asyncio as redis

        client = redis.Redis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()
    app = _create_app()(settings, transport=httpx.MockTransport(upstream))
    headers = [
        (b"content-type", b"application/json"),
        (b"x-deepcall-ssid", SSID.encode()),
        (b"host", b"bench"),
    ]
    async with app.router.lifespan_context(app):
        send = _server(app) if server else _request
        for n in range(1, requests + 1):
            status = await send(app, headers, _body(scenario, n))
            if status != 200:
                raise SystemExit(f"{scenario}: request {n} answered {status}")


async def _request(app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST ``body`` to /graphql straight into the ASGI app; the response's status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "app": app,
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the body was all: nothing more ever comes
        return {}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


class _Wire:
    """A transport in memory: what the server writes, and when a whole response is in."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.answered: asyncio.Future[int] | None = None

    def write(self, data: bytes) -> None:
        self.written += data
        head, found, body = self.written.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        if found and length and len(body) >= int(length.group(1)) and self.answered:
            self.answered.set_result(int(head.split(b" ", 2)[1]))
            self.written.clear()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _server(app: Any) -> Callable[..., Any]:
    """A request sender through the server's HTTP/1.1 protocol on one kept connection."""
    import uvicorn
    from uvicorn.server import ServerState

    try:
        from gateway.config import Settings
        from gateway.server.runtime import bounded

        config = bounded(
            uvicorn.Config(app, log_config=None, access_log=False, proxy_headers=False), Settings()
        )
    except ImportError:  # checkouts before the bounded protocol
        config = uvicorn.Config(
            app, log_config=None, access_log=False, proxy_headers=False, http="httptools"
        )
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    wire = _Wire()
    protocol.connection_made(wire)

    async def send(_app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        wire.answered = asyncio.get_running_loop().create_future()
        protocol.data_received(
            b"POST /graphql HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s" % (lines, len(body), body)
        )
        return await wire.answered

    return send


def _instructions(home: Path, scenario: str, requests: int, redis_url: str = "") -> int:
    """Callgrind's total instruction count for a process serving ``requests`` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(home), "PYTHONHASHSEED": "0"}
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--drive",
            scenario,
            "--requests",
            str(requests),
            *(["--redis", redis_url] if redis_url else []),
            *(["--server"] if SERVER else []),
        ]
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        totals = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise SystemExit("callgrind wrote no summary")
        return int(totals.group(1))


def per_request(home: Path, scenario: str, requests: int, redis_url: str = "") -> float:
    """Instructions one request costs: the difference between ``2 n`` and ``n`` requests."""
    few = _instructions(home, scenario, requests, redis_url)
    many = _instructions(home, scenario, 2 * requests, redis_url)
    return (many - few) / requests


def main(argv: list[str] | None = None) -> int:
    """Measure each scenario (and the baseline's), print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--redis", default="", help="a Redis URL: measure with the fleet tier on")
    parser.add_argument("--server", action="store_true", help="through the HTTP/1.1 protocol")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global SERVER
    SERVER = args.server
    if args.drive:
        asyncio.run(_drive(args.drive, args.requests, args.redis, args.server))
        return 0
    homes = {"ours": ROOT}
    if args.baseline is not None:
        homes["baseline"] = args.baseline.resolve()
    print("| scenario | " + " | ".join(f"{name} instructions/request" for name in homes), end="")
    print(" | ours / baseline |" if args.baseline else " |")
    print("|---|" + "--:|" * (len(homes) + (1 if args.baseline else 0)))
    for scenario in args.scenarios.split(","):
        counts = {
            name: per_request(home, scenario, args.requests, args.redis)
            for name, home in homes.items()
        }
        row = f"| {scenario} | " + " | ".join(f"{counts[name]:,.0f}" for name in homes) + " |"
        if args.baseline:
            row += f" {counts['ours'] / counts['baseline']:.3f}x |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
