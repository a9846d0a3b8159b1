"""Where a replay hit's instructions go, step by step, by callgrind.

    .venv/bin/python tests/benchmarks/hit_steps.py [--calls 2000]

One process serves a hit once through the server's protocol (so the replay
cache holds it), then repeats one step of the shortcut's answer ``--calls``
times; callgrind counts it with ``--calls`` and twice as many, and the
difference divided by the extra calls is the step's cost. ``request`` is a
whole request through the protocol (bytes in, bytes out); ``http`` is that
less ``answer``, the shortcut's whole work: what parsing and writing HTTP/1.1
and the event loop cost. The garbage collector is tuned as ``serve`` tunes it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RAW = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"x-deepcall-ssid", b"bench-ssid"),
    (b"content-length", b"52"),
    (b"user-agent", b"wrk"),
]
STEPS = (
    "request",
    "answer",
    "headers",
    "negotiate",
    "identify",
    "replay_lookup",
    "request_id",
    "record",
)


async def _steps(app: Any, body: bytes) -> dict[str, Callable[[], Any]]:
    """Each step of the shortcut as a thunk, with what it needs made once."""
    from gateway.http.media import negotiate
    from gateway.http.record import RequestRecord, request_id_of
    from gateway.http.shortcut import RawHeaders

    shortcut = app.state.shortcut
    services = app.state.services
    callers = shortcut._callers
    headers = RawHeaders(RAW)
    caller = callers.identify(headers, "127.0.0.1")
    replay = services.responses.get(caller.principal, body)
    assert replay is not None, "the first request did not leave a replay"

    def record() -> None:
        done = RequestRecord("0" * 32)
        done.replayed(replay, services.metrics)
        done.close(200, 0.0001, services.metrics, None, "POST")

    return {
        "answer": lambda: shortcut.answer(RAW, body, "127.0.0.1"),
        "headers": lambda: RawHeaders(RAW).get("content-type", ""),
        "negotiate": lambda: negotiate(headers.get("accept")),
        "identify": lambda: callers.identify(headers, "127.0.0.1"),
        "replay_lookup": lambda: services.responses.get(caller.principal, body),
        "request_id": lambda: request_id_of(headers),
        "record": record,
    }


async def _drive(step: str, calls: int) -> None:
    import httpx

    sys.path.insert(0, str(Path(__file__).parent))
    from instructions import _body, _server

    from gateway.config import Settings
    from gateway.server import create_app
    from gateway.server.runtime import tune_garbage_collection

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 200, "status": "success", "cnt": 7})

    settings = Settings(upstream_url="http://stub.invalid", rate_limit=0, log_level="WARNING")
    app = create_app(settings, transport=httpx.MockTransport(upstream))
    body = _body("hit", 1)
    headers = [(name, value) for name, value in RAW if name != b"content-length"]
    async with app.router.lifespan_context(app):
        send = _server(app)
        await send(app, headers, body)
        tune_garbage_collection()  # as `serve` does: collections as rare as in production
        if step == "request":
            for _ in range(calls):
                await send(app, headers, body)
            return
        thunk = (await _steps(app, body))[step]
        for _ in range(calls):
            thunk()


def _instructions(step: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += [sys.executable, __file__, "--drive", step, "--calls", str(calls)]
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        total = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        assert total is not None
        return int(total.group(1))


def main() -> int:
    """Print each step's instructions per call."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        asyncio.run(_drive(args.drive, args.calls))
        return 0
    costs: dict[str, float] = {}
    print("| step | instructions per call |\n|---|--:|")
    for step in args.steps.split(","):
        few = _instructions(step, args.calls)
        costs[step] = (_instructions(step, 2 * args.calls) - few) / args.calls
        print(f"| {step} | {costs[step]:,.0f} |", flush=True)
    if "request" in costs and "answer" in costs:
        print(f"| http (request - answer) | {costs['request'] - costs['answer']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
