"""Scenarios, one checked sample request each, and one measured ``wrk`` run.

A scenario is a GraphQL document, how many connections drive it, and the stub's
latency. Miss scenarios give each alias a ``{campaignId: N}`` filter with N never
repeating within an invocation (``bench.lua`` numbers them from a base that the
harness moves past the last one used), so every alias is a cache miss. They come
in two forms: the filters in variables (the document text repeats), or inline in
the document (a new document text on every request, as services that build alias
batches as strings send them). Hit scenarios send the same body every time, after
the sample request has warmed it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from services import (
    BENCH,
    SSID,
    Server,
    http_json,
    machine_busy_ms,
    machine_cpus,
    stub_counts,
)

LUA = BENCH / "bench.lua"
THREADS = 2
#: wrk's per-request timeout. wrk leaves a response slower than this out of its latency
#: percentiles (it counts it as a timeout instead), so it must exceed any real tail.
WRK_TIMEOUT_S = 10


@dataclass(frozen=True)
class Scenario:
    """What one measured run sends, over how many connections, to how slow an upstream."""

    name: str
    title: str
    connections: int
    latency_ms: float
    aliases: int
    miss: bool
    #: Misses only: the filters inline in the document (a new text per request), not in
    #: variables.
    inline: bool = False
    #: The scenario that sends the same requests with the filters in variables.
    variables_form: str | None = None

    @property
    def variables(self) -> list[str]:
        """The variable names, one per alias, of a miss in variables form; else none."""
        if not self.miss or self.inline:
            return []
        return ["f"] if self.aliases == 1 else [f"f{i}" for i in range(self.aliases)]

    @property
    def query(self) -> str:
        """The GraphQL document; an inline miss has ``INLINE_ID`` where each id goes."""
        if self.miss and not self.inline:
            names = self.variables
            params = ", ".join(f"${n}: CallFilterInput" for n in names)
            if self.aliases == 1:
                return f"query({params}) {{ callCount(filter: $f) }}"
            fields = " ".join(f"a{i}: callCount(filter: ${n})" for i, n in enumerate(names))
            return f"query({params}) {{ {fields} }}"
        ids = [INLINE_ID if self.inline else str(i + 1) for i in range(self.aliases)]
        if self.aliases == 1:
            return f"{{ callCount(filter: {{campaignId: {ids[0]}}}) }}"
        fields = " ".join(
            f"a{i}: callCount(filter: {{campaignId: {id_}}})" for i, id_ in enumerate(ids)
        )
        return f"{{ {fields} }}"

    @property
    def fields(self) -> list[str]:
        """The response keys of ``data``."""
        return ["callCount"] if self.aliases == 1 else [f"a{i}" for i in range(self.aliases)]

    def body(self, first_id: int) -> bytes:
        """The request body, as bench.lua builds it, with campaignIds from ``first_id``."""
        query = self.query
        if self.inline:
            pieces = query.split(INLINE_ID)
            query = pieces[0] + "".join(
                f"{first_id + i}{piece}" for i, piece in enumerate(pieces[1:])
            )
        out: dict[str, Any] = {"query": query}
        if self.variables:
            out["variables"] = {
                name: {"campaignId": first_id + i} for i, name in enumerate(self.variables)
            }
        return json.dumps(out).encode()


#: Where an inline miss's document takes each alias's campaignId (never GraphQL text).
INLINE_ID = "@ID@"

SCENARIOS = {
    s.name: s
    for s in (
        Scenario("hit", "cache hit", 32, 0, 1, miss=False),
        Scenario("miss_vars", "cache miss, filter in variables", 32, 0, 1, miss=True),
        Scenario(
            "miss_inline",
            "cache miss, filter inline (a new document each request)",
            32,
            0,
            1,
            miss=True,
            inline=True,
            variables_form="miss_vars",
        ),
        Scenario("miss_20ms_64c", "cache miss, 20 ms upstream, 64 connections", 64, 20, 1, True),
        Scenario(
            "miss_inline_20ms_64c",
            "cache miss inline, 20 ms upstream, 64 connections",
            64,
            20,
            1,
            miss=True,
            inline=True,
            variables_form="miss_20ms_64c",
        ),
        Scenario("batch10_miss", "10-alias batch of misses", 32, 0, 10, miss=True),
        Scenario(
            "batch10_miss_inline",
            "10-alias batch of misses inline (a new document each request)",
            32,
            0,
            10,
            miss=True,
            inline=True,
            variables_form="batch10_miss",
        ),
        Scenario("batch10_hit", "10-alias batch of hits", 32, 0, 10, miss=False),
    )
}


class BenchmarkError(RuntimeError):
    """A gateway answered wrongly, or wrk failed: the numbers would mean nothing."""


def check_sample(server: Server, scenario: Scenario, first_id: int) -> dict[str, Any]:
    """Send one request as the load will and insist on a GraphQL answer of numbers."""
    headers = {"Content-Type": "application/json", "X-DeepCall-SSID": SSID}
    status, payload = http_json(server.url + "/graphql", scenario.body(first_id), headers)
    problem = None
    if status != 200:
        problem = f"HTTP {status}"
    elif not isinstance(payload, dict) or payload.get("errors"):
        problem = "GraphQL errors"
    else:
        data = payload.get("data") or {}
        values = [data.get(field) for field in scenario.fields]
        if sorted(data) != sorted(scenario.fields) or not all(
            type(v) is int and v >= 0 for v in values
        ):
            problem = "data is not one number per alias"
    if problem:
        shown = json.dumps(payload)[:500]
        raise BenchmarkError(f"{server.name}, {scenario.name}: {problem}: {shown}")
    return payload  # type: ignore[no-any-return]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


@dataclass
class WrkResult:
    """What wrk reported, plus bench.lua's own checks."""

    requests: int
    #: Requests sent, including those still in flight when wrk stopped.
    sent: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    timeouts: int
    non_2xx: int
    bad_status: int
    graphql_errors: int
    max_id: int
    #: The first failed response's status and body (truncated), if any.
    first_error: str = ""

    @property
    def failures(self) -> int:
        """Responses that were not a clean GraphQL answer, or never came."""
        return self.socket_errors + self.timeouts + self.bad_status + self.graphql_errors


def parse_wrk(output: str) -> WrkResult:
    """Parse ``wrk --latency`` output and bench.lua's ``bench:`` lines."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchmarkError(f"wrk output has no {pattern!r}:\n{output}")
        return match

    done = find(r"^\s*(\d+) requests in ([\d.]+\w+)")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    lua = dict(re.findall(r"^bench:(\w+) (-?\d+)$", output, re.MULTILINE))
    return WrkResult(
        requests=int(done.group(1)),
        sent=int(lua.get("sent", done.group(1))),
        seconds=_ms(done.group(2)) / 1000,
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_ms(find(r"^\s+50%\s+([\d.]+\w+)").group(1)),
        p99_ms=_ms(find(r"^\s+99%\s+([\d.]+\w+)").group(1)),
        socket_errors=sum(int(g) for g in sockets.groups()[:3]) if sockets else 0,
        timeouts=int(sockets.group(4)) if sockets else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        bad_status=int(lua.get("bad_status", 0)),
        graphql_errors=int(lua.get("graphql_errors", 0)),
        max_id=int(lua.get("max_id", -1)),
        first_error=(re.findall(r"^bench:first_error (.*)$", output, re.MULTILINE) or [""])[0],
    )


def run_wrk(
    wrk: str, server: Server, scenario: Scenario, seconds: float, first_id: int
) -> tuple[WrkResult, float]:
    """One wrk run against ``server``; also the CPU wrk itself used, in ms."""
    env = {
        **os.environ,
        "BENCH_QUERY": json.dumps(scenario.query),
        "BENCH_VARS": ",".join(scenario.variables),
        "BENCH_INLINE": str(scenario.aliases if scenario.inline else 0),
        "BENCH_BASE": str(first_id),
        "BENCH_THREADS": str(THREADS),
        "BENCH_SSID": SSID,
    }
    command = [
        wrk,
        f"-t{THREADS}",
        f"-c{scenario.connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        f"--timeout={WRK_TIMEOUT_S}s",
        "-s",
        str(LUA),
        server.url + "/graphql",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode != 0:
        raise BenchmarkError(f"wrk failed ({finished.returncode}): {finished.stderr}")
    wrk_cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return parse_wrk(finished.stdout), wrk_cpu


@dataclass
class Measurement:
    """One measured run of one scenario against one gateway."""

    scenario: str
    gateway: str
    run: int
    #: Successful responses per second: wrk's rate less failed responses (a gateway
    #: must not look fast by failing fast).
    rps: float
    #: wrk's own Requests/sec, failed responses included.
    wrk_rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    upstream_calls_per_request: float
    stub_cpu_ms_per_request: float
    requests: int
    sent: int
    #: New connections the gateway opened to the stub during the run.
    upstream_connections: int
    failures: int
    #: The failures by kind: wrk timeouts (no answer in WRK_TIMEOUT_S), socket errors,
    #: HTTP status other than 200, 200s with GraphQL errors.
    timeouts: int
    socket_errors: int
    bad_status: int
    graphql_errors: int
    non_2xx: int
    #: Share of the machine's CPU (all cores) used by processes outside the benchmark.
    background_cpu_share: float
    rss_mb: float
    first_error: str

    def as_dict(self) -> dict[str, Any]:
        """The measurement as JSON-ready values."""
        return asdict(self)


def wait_quiet(gateway: Server, stub: Server, limit: float = 10.0) -> None:
    """Wait for the gateway to finish what wrk left in flight: no upstream calls, no CPU."""
    deadline = time.monotonic() + limit
    calls, cpu = stub_counts(stub)[0], gateway.cpu_ms()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        calls_now, cpu_now = stub_counts(stub)[0], gateway.cpu_ms()
        if calls_now == calls and cpu_now - cpu <= 20:
            return
        calls, cpu = calls_now, cpu_now


def measure(
    wrk: str,
    gateway: Server,
    stub: Server,
    scenario: Scenario,
    seconds: float,
    first_id: int,
    run: int,
) -> tuple[Measurement, int]:
    """Run wrk against ``gateway`` and measure around it; also the next free campaignId.

    CPU and upstream calls are divided by the requests wrk sent (those in flight
    when it stopped included), after the gateway has finished them.
    """
    (calls, conns), cpu, stub_cpu, busy = (
        stub_counts(stub),
        gateway.cpu_ms(),
        stub.cpu_ms(),
        machine_busy_ms(),
    )
    started = time.monotonic()
    result, wrk_cpu = run_wrk(wrk, gateway, scenario, seconds, first_id)
    wait_quiet(gateway, stub)
    wall_ms = (time.monotonic() - started) * 1000
    (calls_after, conns_after), cpu_after, stub_cpu_after, busy_after = (
        stub_counts(stub),
        gateway.cpu_ms(),
        stub.cpu_ms(),
        machine_busy_ms(),
    )
    sent = max(1, result.sent)
    ours = (cpu_after - cpu) + (stub_cpu_after - stub_cpu) + wrk_cpu
    background = max(0.0, (busy_after - busy) - ours) / (wall_ms * machine_cpus())
    measurement = Measurement(
        scenario=scenario.name,
        gateway=gateway.name,
        run=run,
        rps=result.rps
        * max(0, result.requests - result.bad_status - result.graphql_errors)
        / max(1, result.requests),
        wrk_rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        cpu_ms_per_request=(cpu_after - cpu) / sent,
        upstream_calls_per_request=(calls_after - calls) / sent,
        stub_cpu_ms_per_request=(stub_cpu_after - stub_cpu) / sent,
        requests=result.requests,
        sent=result.sent,
        upstream_connections=conns_after - conns,
        failures=result.failures,
        timeouts=result.timeouts,
        socket_errors=result.socket_errors,
        bad_status=result.bad_status,
        graphql_errors=result.graphql_errors,
        non_2xx=result.non_2xx,
        background_cpu_share=background,
        rss_mb=gateway.rss_mb(),
        first_error=result.first_error,
    )
    next_id = max(first_id, result.max_id + 1) if scenario.miss else first_id
    return measurement, next_id
