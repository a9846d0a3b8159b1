"""Instructions per request, by callgrind: a measure of CPU cost that noise cannot move.

    .venv/bin/python tests/benchmarks/instructions.py [--baseline DIR] [--scenarios hit,...]

Each scenario runs the gateway's ASGI app in one process, without sockets: the
requests go straight to the app, the upstream is an ``httpx.MockTransport``
answering at once. The process runs twice under ``valgrind --tool=callgrind``,
with ``--requests`` and with twice as many; the difference, divided by the
extra requests, is what one request costs, start-up and warm-up excluded. With
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


async def _drive(scenario: str, requests: int) -> None:
    import httpx

    from gateway.config import Settings

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 200, "status": "success", "cnt": 7})

    settings = Settings(
        upstream_url="http://stub.invalid", rate_limit=0, max_fanout=1000, log_level="WARNING"
    )
    app = _create_app()(settings, transport=httpx.MockTransport(upstream))
    headers = [
        (b"content-type", b"application/json"),
        (b"x-deepcall-ssid", SSID.encode()),
        (b"host", b"bench"),
    ]
    async with app.router.lifespan_context(app):
        for n in range(1, requests + 1):
            status = await _request(app, headers, _body(scenario, n))
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


def _instructions(home: Path, scenario: str, requests: int) -> int:
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
        ]
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        totals = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise SystemExit("callgrind wrote no summary")
        return int(totals.group(1))


def per_request(home: Path, scenario: str, requests: int) -> float:
    """Instructions one request costs: the difference between ``2 n`` and ``n`` requests."""
    few = _instructions(home, scenario, requests)
    many = _instructions(home, scenario, 2 * requests)
    return (many - few) / requests


def main(argv: list[str] | None = None) -> int:
    """Measure each scenario (and the baseline's), print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        asyncio.run(_drive(args.drive, args.requests))
        return 0
    homes = {"ours": ROOT}
    if args.baseline is not None:
        homes["baseline"] = args.baseline.resolve()
    print("| scenario | " + " | ".join(f"{name} instructions/request" for name in homes), end="")
    print(" | ours / baseline |" if args.baseline else " |")
    print("|---|" + "--:|" * (len(homes) + (1 if args.baseline else 0)))
    for scenario in args.scenarios.split(","):
        counts = {name: per_request(home, scenario, args.requests) for name, home in homes.items()}
        row = f"| {scenario} | " + " | ".join(f"{counts[name]:,.0f}" for name in homes) + " |"
        if args.baseline:
            row += f" {counts['ours'] / counts['baseline']:.3f}x |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
