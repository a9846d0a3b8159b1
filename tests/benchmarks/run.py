"""Benchmark deepcall-gateway against Apollo, Mercurius and Strawberry doing the same job.

    .venv/bin/python tests/benchmarks/run.py [--runs 3] [--duration 6] \\
        [--scenarios hit,miss_vars,...] [--out tests/benchmarks/results.md]

It installs what it needs (wrk from apt when root, the Node peers' npm packages from
their lockfile), starts an upstream stub, our gateway and the peers (Apollo Server 5,
Mercurius 16 + graphql-jit, Strawberry's ASGI app) on loopback ports, checks one
response of each gateway per scenario and run, drives each with wrk back to back
(ours, Apollo, Mercurius, Strawberry, ours, ...), measures the
cache's bytes per key, and prints and writes a markdown report (plus the raw
runs as JSON next to it). See tests/benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from live import benchmark_live, render_live
from load import (
    SCENARIOS,
    BenchmarkError,
    Measurement,
    check_sample,
    measure,
    run_wrk,
    wait_quiet,
)
from report import render
from services import (
    BENCH,
    PEER,
    PEER_SCRIPTS,
    ROOT,
    Server,
    Services,
    SetupError,
    ensure_node_deps,
    ensure_wrk,
    gateway_python,
    set_stub_latency,
    start_all,
)

FIRST_CAMPAIGN_ID = 1_000_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs per gateway (>= 1)")
    parser.add_argument("--duration", type=float, default=6, help="seconds per wrk run")
    parser.add_argument(
        "--warmup", type=float, default=2, help="unmeasured seconds per scenario and gateway"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--live",
        default="1000,5000",
        help="stream counts of the live scenarios (comma-separated); 'none' for none",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results.md")
    parser.add_argument("--skip-memory", action="store_true", help="skip bytes per cached key")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEER_SCRIPTS),
        help=f"comma-separated peers from {', '.join(PEER_SCRIPTS)}; 'none' for none "
        "(default: all)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run the gateway of this checkout (e.g. a git worktree of an earlier commit)",
    )
    args = parser.parse_args(argv)
    names = [
        n.strip()
        for n in args.scenarios.replace(" ", ",").split(",")
        if n.strip() and n.strip() != "none"
    ]
    unknown = [n for n in names if n not in SCENARIOS]
    live = [n.strip() for n in args.live.split(",") if n.strip() and n.strip() != "none"]
    if not all(n.isdigit() and int(n) > 0 for n in live):
        parser.error(f"--live {args.live!r}: stream counts, or none")
    args.live = [int(n) for n in live]
    if unknown or not (names or args.live) or args.runs < 1 or args.duration < 1:
        parser.error(
            f"unknown scenarios {unknown}"
            if unknown
            else "need scenarios, --runs >= 1, --duration >= 1"
        )
    args.scenarios = names
    peers = [p.strip() for p in args.peers.split(",") if p.strip() and p.strip() != "none"]
    if any(p not in PEER_SCRIPTS for p in peers):
        parser.error(f"unknown peers in {args.peers!r}: choose from {', '.join(PEER_SCRIPTS)}")
    if args.baseline is not None and not (args.baseline / "gateway" / "__init__.py").exists():
        parser.error(f"--baseline {args.baseline}: no gateway/ package there")
    args.peers = tuple(peers)
    return args


def _output(command: list[str], cwd: Path = ROOT) -> str:
    """The first line a command prints (wrk --version prints to stderr), or n/a."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        return "n/a"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _baseline_commit(path: Path) -> str:
    """The baseline checkout's commit, as ``git describe`` would name it briefly."""
    return _output(["git", "rev-parse", "--short", "HEAD"], cwd=path)


def machine_info(python: str, node: str, wrk: str) -> dict[str, str]:
    """What the numbers were measured on and with."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    dirty = _output(["git", "status", "--porcelain", "--", "gateway"])
    commit = _output(["git", "rev-parse", "--short", "HEAD"])
    versions = _output(
        [
            python,
            "-c",
            "import sys, importlib.metadata as m; print(sys.version.split()[0], "
            "*(f'{p} {m.version(p)}' for p in "
            "('strawberry-graphql', 'uvicorn', 'httpx', 'cachetools')), "
            "sep=', ')",
        ]
    )
    apollo = json.loads((PEER / "node_modules/@apollo/server/package.json").read_text())["version"]
    mercurius = json.loads((PEER / "node_modules/mercurius/package.json").read_text())["version"]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": model,
        "load average at start": load,
        "kernel": platform.release(),
        "Python": versions,
        "Node": f"{_output([node, '--version'])}, @apollo/server {apollo}, mercurius {mercurius}",
        "wrk": _output([wrk, "--version"]).split(" [")[0].removeprefix("wrk "),
        "gateway": f"commit {commit}" + (" with uncommitted changes in gateway/" if dirty else ""),
    }


def measure_memory(python: str, node: str) -> dict[str, Any]:
    """Bytes per cached key at 100,000 keys (ours two ways, the peer's); RSS under new documents."""
    out: dict[str, Any] = {"keys": 100_000}
    for mode in ("tracemalloc", "rss"):
        done = subprocess.run(
            [python, str(BENCH / "memory_per_key.py"), "--keys", "100000", "--mode", mode],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            out[f"ours_{mode}"] = json.loads(done.stdout)["bytes_per_key"]
        except (ValueError, KeyError):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            out[f"ours_{mode}"] = f"failed: {last}"
    done = subprocess.run(
        [node, "--expose-gc", str(PEER / "memory.mjs"), "100000"],
        cwd=PEER,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        peer = json.loads(done.stdout)
        out["apollo_heap"] = peer["heap_bytes_per_key"]
        out["apollo_rss"] = peer["rss_bytes_per_key"]
    except (ValueError, KeyError):
        out["apollo_heap"] = f"failed: {done.stderr.strip()[-200:]}"
    done = subprocess.run(
        [python, str(BENCH / "memory_documents.py"), "--documents", "100000", "--early", "1000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        out["documents"] = json.loads(done.stdout)
    except ValueError:
        out["documents"] = f"failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}"
    return out


def _progress(m: Measurement, total_runs: int) -> None:
    print(
        f"  [{m.scenario} {m.run}/{total_runs}] {m.gateway:<6} {m.rps:9.0f} ok rps  "
        f"p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  "
        f"CPU {m.cpu_ms_per_request:6.3f} ms/req  "
        f"upstream {m.upstream_calls_per_request:6.3f}/req  "
        f"new upstream conns {m.upstream_connections}  failed {m.failures}  "
        f"background {m.background_cpu_share:.0%}",
        flush=True,
    )
    if m.failures:
        print(
            f"      failed: {m.timeouts} timeouts, {m.socket_errors} socket errors, "
            f"{m.bad_status} non-200, {m.graphql_errors} GraphQL errors; "
            f"first: {m.first_error[:300] or '(no body)'}",
            flush=True,
        )


def benchmark(
    args: argparse.Namespace, wrk: str, stub: Server, gateways: tuple[Server, ...]
) -> list[Measurement]:
    """Every scenario, every run, each gateway back to back; the measurements."""
    measurements: list[Measurement] = []
    next_id = FIRST_CAMPAIGN_ID
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        print(f"{name}: {scenario.title}", flush=True)
        set_stub_latency(stub, scenario.latency_ms)
        for gateway in gateways:
            check_sample(gateway, scenario, next_id)
            next_id += scenario.aliases
            if args.warmup > 0:
                result, _ = run_wrk(wrk, gateway, scenario, args.warmup, next_id)
                next_id = max(next_id, result.max_id + 1)
                wait_quiet(gateway, stub)
        for run in range(1, args.runs + 1):
            for gateway in gateways:
                check_sample(gateway, scenario, next_id)
                next_id += scenario.aliases
                m, next_id = measure(wrk, gateway, stub, scenario, args.duration, next_id, run)
                measurements.append(m)
                _progress(m, args.runs)
    set_stub_latency(stub, 0)
    return measurements


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 when it completed (and, with --check, every target passed)."""
    args = parse_args(argv)
    # SIGINT too: a shell starting us in the background may have set it to "ignore".
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started = time.monotonic()
    try:
        wrk, node, python = ensure_wrk(), ensure_node_deps(), gateway_python()
    except (SetupError, subprocess.CalledProcessError) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    machine = machine_info(python, node, wrk)
    settings = {
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs": args.runs,
        "duration": args.duration,
        "warmup": args.warmup,
        "scenarios": args.scenarios,
        "baseline": _baseline_commit(args.baseline) if args.baseline else None,
    }
    memory: dict[str, Any] = {}
    if not args.skip_memory:
        print("memory per cached key (100,000 keys), under 100,000 new documents...", flush=True)
        memory = measure_memory(python, node)
    log_dir = Path(tempfile.mkdtemp(prefix="deepcall-bench-"))
    failed = True
    try:
        with Services(log_dir) as services:
            stub, running = start_all(
                services, node, python, peers=args.peers, baseline=args.baseline
            )
            gateways = tuple(running)
            shown = ", ".join(f"{gateway.name} {gateway.url}" for gateway in gateways)
            print(f"stub {stub.url}, {shown}; logs in {log_dir}")
            measurements = benchmark(args, wrk, stub, gateways) if args.scenarios else []
            live_runs = benchmark_live(services, node, python, stub, args.live)
        failed = False
    except (SetupError, BenchmarkError) as exc:
        print(f"benchmark: {exc}\n(server logs kept in {log_dir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nbenchmark: interrupted; servers stopped (logs in {log_dir})", file=sys.stderr)
        return 130
    finally:
        if not failed and not args.keep_logs:
            for log in log_dir.iterdir():
                log.unlink()
            log_dir.rmdir()

    report, targets = render(measurements, memory, machine, settings)
    report += "\n" + render_live(live_runs)
    wall = time.monotonic() - started
    report += f"\nWall time of this invocation: {wall:.0f} s.\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    raw = {
        "settings": settings,
        "machine": machine,
        "memory": memory,
        "measurements": [m.as_dict() for m in measurements],
        "live": [run.as_dict() for run in live_runs],
    }
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print("\n" + report)
    print(f"written to {args.out} and {args.out.with_suffix('.json')}")
    missed = [t.what for t in targets if t.missed]
    if missed:
        print(f"{len(missed)} targets missed: " + "; ".join(missed))
    if args.check and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
