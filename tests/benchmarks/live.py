"""The live scenarios: N concurrent streams on 100 questions, ``every`` 5 s, ours beside peers.

Ours over SSE beside GraphQL Yoga (SSE), ours over the WebSocket beside Mercurius
(WebSocket); each peer's subscribers poll the stub themselves, as their users'
resolvers do. Per gateway and size, in one fresh process each: resident memory per
stream, CPU per second of steady state, upstream calls per interval, and the delay
from a count's change at the stub to its arrival at each subscriber (and, from the
poll that first saw it). See README.md, "Live scenarios".
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from services import PEER, Server, Services, SetupError, free_port, http_json, wait_ready

QUESTIONS = 100
EVERY = 5
#: Seconds of steady state measured (three intervals).
STEADY = 15.0
#: (gateway, transport) pairs, each run in a process of its own.
PAIRS = (("ours", "sse"), ("yoga", "sse"), ("ours", "ws"), ("mercurius", "ws"))


@dataclass
class LiveRun:
    """What one gateway did with ``streams`` streams over ``transport``."""

    gateway: str
    transport: str
    streams: int
    ready: int = 0
    rss_per_stream_kib: float = 0.0
    cpu_per_second: float = 0.0
    calls_per_interval: float = 0.0
    delay_ms: dict[str, float] = field(default_factory=dict)
    from_poll_ms: dict[str, float] = field(default_factory=dict)
    missing: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON."""
        return asdict(self)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(statistics.median(ordered), 1), "p99": round(pick(0.99), 1)}


def _start(services: Services, name: str, node: str, python: str, stub: Server) -> Server:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if name == "ours":
        env = {
            **base,
            "GATEWAY_UPSTREAM_URL": stub.url,
            "GATEWAY_RATE_LIMIT": "0",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_LIVE_STREAMS": "100000",
            "GATEWAY_LIVE_STREAMS_PER_CREDENTIAL": "100000",
        }
        command = [python, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = services.start(f"live-ours-{port}", command, env, url)
        wait_ready(server, "/readyz")
        return server
    env = {**base, "NODE_ENV": "production", "UPSTREAM_URL": stub.url}
    command = [node, str(PEER / "live.mjs"), "--kind", name, "--port", str(port)]
    server = services.start(f"live-{name}-{port}", command, env, url)
    wait_ready(server, "/graphql", json.dumps({"query": "{ __typename }"}).encode())
    return server


def _line(load: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next JSON line the load prints (it prints nothing else on stdout)."""
    assert load.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = load.stdout.readline()
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
        if not line and load.poll() is not None:
            break
    raise SetupError("the live load said nothing in time")


def live_run(
    services: Services, node: str, python: str, stub: Server, name: str, transport: str, size: int
) -> LiveRun:
    """One gateway, one transport, ``size`` streams: steady state, then one change."""
    gateway = _start(services, name, node, python, stub)
    run = LiveRun(name, transport, size)
    time.sleep(1)
    before_rss = gateway.rss_mb()
    load = subprocess.Popen(
        [
            node,
            str(PEER / "live_load.mjs"),
            "--url",
            f"{gateway.url}/graphql",
            "--transport",
            transport,
            "--streams",
            str(size),
            "--questions",
            str(QUESTIONS),
            "--every",
            str(EVERY),
        ],
        cwd=PEER,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        run.ready = int(_line(load, 120)["ready"])
        time.sleep(EVERY)  # one interval: everything opened has settled
        run.rss_per_stream_kib = round((gateway.rss_mb() - before_rss) * 1024 / size, 2)
        cpu, calls, started = gateway.cpu_ms(), _calls(stub), time.monotonic()
        time.sleep(STEADY)
        elapsed = time.monotonic() - started
        run.cpu_per_second = round((gateway.cpu_ms() - cpu) / 1000 / elapsed, 3)
        run.calls_per_interval = round((_calls(stub) - calls) / (elapsed / EVERY), 1)
        assert load.stdin is not None
        load.stdin.write("bump\n")
        load.stdin.flush()
        time.sleep(0.5)
        _, bumped = http_json(stub.url + "/bump", b"{}")
        arrivals = _line(load, 60)
        _, seen = http_json(stub.url + "/live")
        at = float(bumped["bumpedAt"])
        run.delay_ms = _percentiles([t - at for _, t in arrivals["arrivals"]])
        run.from_poll_ms = _percentiles(
            [t - seen["seen"][str(c)] for c, t in arrivals["arrivals"] if str(c) in seen["seen"]]
        )
        run.missing = int(arrivals["missing"])
    finally:
        load.kill()
        load.wait()
        gateway.process.terminate()
        gateway.process.wait(timeout=20)
    return run


def _calls(stub: Server) -> int:
    _, stats = http_json(stub.url + "/stats")
    return int(stats["requests"])


def benchmark_live(
    services: Services, node: str, python: str, stub: Server, sizes: list[int]
) -> list[LiveRun]:
    """Every pair of ``PAIRS`` at every size, one after the other."""
    runs = []
    for size in sizes:
        for name, transport in PAIRS:
            print(f"live: {name} over {transport}, {size} streams...", flush=True)
            run = live_run(services, node, python, stub, name, transport, size)
            print(f"  {run.as_dict()}", flush=True)
            runs.append(run)
    return runs


def render_live(runs: list[LiveRun]) -> str:
    """The live scenarios' table, markdown."""
    if not runs:
        return ""
    lines = [
        "## Live scenarios",
        "",
        f"{QUESTIONS} questions, `every` {EVERY} s; one process per gateway and size. Delay: "
        "from the count's change at the stub to its arrival at a subscriber; from poll: "
        "from the first poll that saw it.",
        "",
        "| streams | gateway | transport | ready | RSS per stream | CPU s/s steady | upstream "
        "calls per interval | delay p50 / p99 | from poll p50 / p99 | missing |",
        "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        delay = f"{run.delay_ms.get('p50', '-')} / {run.delay_ms.get('p99', '-')} ms"
        poll = f"{run.from_poll_ms.get('p50', '-')} / {run.from_poll_ms.get('p99', '-')} ms"
        lines.append(
            f"| {run.streams} | {run.gateway} | {run.transport} | {run.ready} | "
            f"{run.rss_per_stream_kib} KiB | {run.cpu_per_second} | {run.calls_per_interval} | "
            f"{delay} | {poll} | {run.missing} |"
        )
    return "\n".join(lines) + "\n"
