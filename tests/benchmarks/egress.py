"""What GATEWAY_UPSTREAM_PROXY costs per upstream call: the gateway's CPU, direct vs. tinyproxy.

    flock /tmp/bench.lock .venv/bin/python tests/benchmarks/egress.py [--runs 5] [--duration 5]

Four gateways (``python -m gateway serve``, one process each) ask the same
upstream stub (``peer/stub.mjs``, over http and, with a throwaway CA's
certificate, over https): straight, and through one tinyproxy (absolute-form
requests for http, ``CONNECT`` tunnels for https). Each is driven with wrk on
the ``miss_vars`` scenario (every request one new upstream call; 32 wrk
connections, or ``--connections``), the four in turn, ``--runs`` times. Per
run: the gateway's CPU (user + system) over the upstream calls the stub
counted, and the proxy's own CPU over the same calls.
It prints the medians as a markdown table, and every run as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from load import SCENARIOS, check_sample, measure
from services import (
    ROOT,
    Server,
    Services,
    SetupError,
    ensure_node_deps,
    ensure_wrk,
    free_port,
    gateway_python,
    wait_ready,
)

sys.path.insert(0, str(ROOT / "tests"))
from support.proxy import config_text, tinyproxy_binary

SCENARIO = SCENARIOS["miss_vars"]
FIRST_CAMPAIGN_ID = 5_000_000


@dataclass(frozen=True)
class Route:
    """One way for upstream calls to go: which scheme, and whether through the proxy."""

    name: str
    scheme: str
    proxied: bool


ROUTES = [
    Route("http direct", "http", proxied=False),
    Route("http via tinyproxy", "http", proxied=True),
    Route("https direct", "https", proxied=False),
    Route("https via tinyproxy (CONNECT)", "https", proxied=True),
]


def start(services: Services, workdir: Path) -> tuple[Server, Server, dict[Route, Server]]:
    """The stub (http and https), tinyproxy, and one gateway per route."""
    node, python = ensure_node_deps(), gateway_python()
    authority = trustme.CA()
    leaf = authority.issue_cert("localhost")
    cert, key, ca = workdir / "cert.pem", workdir / "key.pem", workdir / "ca.pem"
    for blob, path in ((leaf.cert_chain_pems[0], cert), (leaf.private_key_pem, key)):
        blob.write_to_path(str(path))
    authority.cert_pem.write_to_path(str(ca))
    stub_port, tls_port, proxy_port = free_port(), free_port(), free_port()
    stub = services.start(
        "stub",
        [
            *(node, str(ROOT / "tests/benchmarks/peer/stub.mjs"), "--port", str(stub_port)),
            *("--tls-port", str(tls_port), "--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        {"PATH": "/usr/bin:/bin", "NODE_ENV": "production"},
        f"http://127.0.0.1:{stub_port}",
    )
    wait_ready(stub, "/stats")
    conf = workdir / "tinyproxy.conf"
    # MaxClients above the pool: absolute-form requests take one proxy connection each.
    text = config_text(proxy_port, workdir / "tinyproxy.log", max_clients=400, log_level="Warning")
    conf.write_text(text)
    proxy = services.start(
        "tinyproxy",
        [tinyproxy_binary(), "-d", "-c", str(conf)],
        {},
        f"http://127.0.0.1:{proxy_port}",
    )
    wait_listening(proxy, proxy_port)
    gateways = {}
    for route in ROUTES:
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "GATEWAY_UPSTREAM_URL": stub.url
            if route.scheme == "http"
            else f"https://localhost:{tls_port}",
            "GATEWAY_UPSTREAM_CA_FILE": str(ca),
            "GATEWAY_RATE_LIMIT": "0",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_MAX_FANOUT": "1000",
        }
        if route.proxied:
            env["GATEWAY_UPSTREAM_PROXY"] = proxy.url
        command = [python, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
        gateways[route] = services.start(route.name, command, env, f"http://127.0.0.1:{port}")
    for server in gateways.values():
        wait_ready(server, "/readyz")
    return stub, proxy, gateways


def wait_listening(server: Server, port: int) -> None:
    """Wait until ``port`` accepts connections (tinyproxy answers no probe with a 200)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SetupError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SetupError(f"{server.name} did not listen on {port}")


def main(argv: list[str] | None = None) -> None:
    """Measure every route ``--runs`` times, in turn, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=SCENARIO.connections)
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args(argv)
    scenario = dataclasses.replace(SCENARIO, connections=args.connections)
    wrk = ensure_wrk()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, Services(Path(tmp)) as services:
        stub, proxy, gateways = start(services, Path(tmp))
        first_id = FIRST_CAMPAIGN_ID
        for gateway in gateways.values():  # warm-up: connections, documents
            check_sample(gateway, scenario, first_id)
            _, first_id = measure(wrk, gateway, stub, scenario, 2, first_id + 1, run=-1)
        for run in range(args.runs):
            for route, gateway in gateways.items():
                check_sample(gateway, scenario, first_id)
                proxy_before = proxy.cpu_ms()
                result, first_id = measure(
                    wrk, gateway, stub, scenario, args.duration, first_id + 1, run
                )
                calls = result.upstream_calls_per_request * result.sent
                runs.append(
                    {
                        "route": route.name,
                        "run": run,
                        "gateway_cpu_ms_per_call": result.cpu_ms_per_request
                        / result.upstream_calls_per_request,
                        "proxy_cpu_ms_per_call": (proxy.cpu_ms() - proxy_before) / calls,
                        "rps": result.rps,
                        "p99_ms": result.p99_ms,
                        "failures": result.failures,
                        "upstream_connections": result.upstream_connections,
                        "calls": calls,
                    }
                )
                print(json.dumps(runs[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    print(table(runs))


def table(runs: list[dict[str, Any]]) -> str:
    """The medians per route as markdown, with the difference to the direct route."""

    def median(route: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["route"] == route)

    lines = [
        "| route | gateway CPU ms/call | vs direct | proxy CPU ms/call | rps | p99 ms | failures |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for route in ROUTES:
        direct = next(r for r in ROUTES if r.scheme == route.scheme and not r.proxied)
        cpu = median(route.name, "gateway_cpu_ms_per_call")
        extra = cpu - median(direct.name, "gateway_cpu_ms_per_call")
        failures = sum(r["failures"] for r in runs if r["route"] == route.name)
        lines.append(
            f"| {route.name} | {cpu:.3f} | {extra:+.3f} | "
            f"{median(route.name, 'proxy_cpu_ms_per_call'):.3f} | "
            f"{median(route.name, 'rps'):,.0f} | {median(route.name, 'p99_ms'):.1f} | {failures} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
