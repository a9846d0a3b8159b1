"""The processes a benchmark run needs: prerequisites, start-up, readiness, CPU, clean-up.

Servers on loopback ports, each its own process so that its CPU can be read from
``/proc/<pid>/stat``: the upstream stub (``peer/stub.mjs``), our gateway (``python -m
gateway serve``, one process) and the peers: Apollo (``peer/server.mjs``), Mercurius
(``peer/mercurius.mjs``) and Strawberry (``peer/strawberry_peer.py``).
Every process is started in its own session with a parent-death signal, and
``Services.close`` stops them all, so nothing outlives the run (Ctrl-C included).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "benchmarks"
PEER = BENCH / "peer"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
START_TIMEOUT = 60.0
SSID = "bench-ssid"
#: The peers, by name, and their servers in peer/: ``.mjs`` on Node, ``.py`` on our Python.
PEER_SCRIPTS = {
    "apollo": "server.mjs",
    "mercurius": "mercurius.mjs",
    "strawberry": "strawberry_peer.py",
}


class SetupError(RuntimeError):
    """A prerequisite is missing or a server did not start; the message says what to do."""


# ---------------------------------------------------------------- prerequisites


def ensure_wrk() -> str:
    """The path of ``wrk``, installing the Debian package when running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SetupError("wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu)")
    print("wrk not found: installing it with apt-get", flush=True)
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(apt, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(apt, env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SetupError("apt-get ran but wrk is still not on PATH")
    return found


def ensure_node_deps() -> str:
    """The path of ``node`` (>= 20), with ``peer/node_modules`` installed from the lockfile."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise SetupError("Node.js 20 or newer (node and npm) is needed for the Apollo peer")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < 20:
        raise SetupError(f"Node.js 20 or newer is needed, found {version.stdout.strip()}")
    lock, installed = PEER / "package-lock.json", PEER / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        print("installing the Apollo peer's packages (npm ci)", flush=True)
        command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(command, cwd=PEER, check=True)
    return node


def gateway_python() -> str:
    """A Python that can import the gateway: the repository's .venv, else this interpreter."""
    venv = ROOT / ".venv" / "bin" / "python"
    for candidate in (str(venv), sys.executable):
        if not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import gateway.server.runtime"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    raise SetupError(
        "the gateway is not importable: python3 -m venv .venv && .venv/bin/pip install -e ."
    )


# ---------------------------------------------------------------- processes


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if this harness is killed outright, its servers get SIGTERM.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def http_json(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """``(status, parsed JSON body)`` of a GET (no body) or a POST; raises OSError."""
    request = urllib.request.Request(url, data=body, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text.decode(errors="replace")


@dataclass
class Server:
    """One started server: its name, process, base URL and log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        """The server's process id (the process itself, not a wrapper)."""
        return self.process.pid

    def cpu_ms(self) -> float:
        """User plus system CPU time the process has used so far, in milliseconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS

    def rss_mb(self) -> float:
        """Resident set size in MiB."""
        resident = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return resident * PAGE_SIZE / 2**20

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` of the server's output, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Services:
    """Starts the servers and stops every one of them on ``close`` (or leaving ``with``)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[Server] = []
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(
        self, name: str, command: list[str], env: dict[str, str], url: str, cwd: Path = ROOT
    ) -> Server:
        """Start ``command`` in ``cwd`` with its output in ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the harness, which stops them in order
            preexec_fn=_die_with_parent,  # safe: the harness has one thread
        )
        server = Server(name, process, url, log_path)
        self.servers.append(server)
        return server

    def close(self) -> None:
        """SIGTERM every server, then SIGKILL whatever has not exited within 10 s."""
        for server in self.servers:
            if server.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for server in self.servers:
            try:
                server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        self.servers.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


def wait_ready(server: Server, probe: str, body: bytes | None = None) -> None:
    """Wait until ``probe`` (a path) answers 200, or fail with the server's log."""
    deadline = time.monotonic() + START_TIMEOUT
    headers = {"Content-Type": "application/json", "X-DeepCall-SSID": SSID}
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SetupError(
                f"{server.name} exited with status {server.process.returncode}:\n"
                + server.log_tail()
            )
        try:
            status, _ = http_json(server.url + probe, body, headers)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SetupError(
        f"{server.name} did not become ready in {START_TIMEOUT}s:\n{server.log_tail()}"
    )


def _start_ours(
    services: Services, name: str, python: str, stub: Server, env: dict[str, str], home: Path
) -> Server:
    """Our gateway from the checkout at ``home`` (its ``gateway/`` first on the path)."""
    port = free_port()
    return services.start(
        name,
        [python, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)],
        {
            **env,
            "PYTHONPATH": str(home),
            "GATEWAY_UPSTREAM_URL": stub.url,
            "GATEWAY_RATE_LIMIT": "0",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_MAX_FANOUT": "1000",
        },
        f"http://127.0.0.1:{port}",
        cwd=home,
    )


def start_all(
    services: Services,
    node: str,
    python: str,
    *,
    peers: tuple[str, ...] = tuple(PEER_SCRIPTS),
    baseline: Path | None = None,
) -> tuple[Server, list[Server]]:
    """Start the stub, our gateway, the baseline checkout's and the peers; once all answer.

    Returns the stub and the gateways, ours first.
    """
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    stub_port = free_port()
    stub = services.start(
        "stub",
        [node, str(PEER / "stub.mjs"), "--port", str(stub_port)],
        {**base_env, "NODE_ENV": "production"},
        f"http://127.0.0.1:{stub_port}",
    )
    wait_ready(stub, "/stats")
    ours = [_start_ours(services, "ours", python, stub, base_env, ROOT)]
    if baseline is not None:
        ours.append(_start_ours(services, "baseline", python, stub, base_env, baseline))
    started = []
    for name in peers:
        port = free_port()
        script = PEER / PEER_SCRIPTS[name]
        runtime = python if script.suffix == ".py" else node
        started.append(
            services.start(
                name,
                [runtime, str(script), "--host", "127.0.0.1", "--port", str(port)],
                {**base_env, "NODE_ENV": "production", "UPSTREAM_URL": stub.url},
                f"http://127.0.0.1:{port}",
            )
        )
    for gateway in ours:
        wait_ready(gateway, "/readyz")
    probe = json.dumps({"query": "{ __typename }"}).encode()
    for peer in started:
        wait_ready(peer, "/graphql", probe)
    return stub, ours + started


def set_stub_latency(stub: Server, latency_ms: float) -> None:
    """Make the stub delay each reportCount answer by ``latency_ms`` from now on."""
    status, _ = http_json(stub.url + "/config", json.dumps({"latencyMs": latency_ms}).encode())
    if status != 200:
        raise SetupError(f"the stub refused latency {latency_ms}")


def stub_counts(stub: Server) -> tuple[int, int]:
    """reportCount calls the stub has had since it started, and connections that carried them."""
    _, stats = http_json(stub.url + "/stats")
    return int(stats["requests"]), int(stats["connections"])


def machine_cpus() -> int:
    """CPUs counted in /proc/stat (what ``machine_busy_ms`` sums over)."""
    lines = Path("/proc/stat").read_text().splitlines()
    return sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())


def machine_busy_ms() -> float:
    """CPU time all cores have spent busy since boot, in milliseconds (from /proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) * 1000 / CLOCK_TICKS
