"""Test support: a real forward proxy, Debian's tinyproxy, on a free loopback port.

``run_tinyproxy(directory)`` writes a config of its own into ``directory``,
starts ``tinyproxy -d -c <config>`` in the foreground, returns once the port
accepts connections, and stops it on exit. The proxy connects out from
``OUTBOUND_ADDRESS`` (``Bind``), so that an upstream can tell a proxied call
from a direct one even inside a TLS tunnel, adds ``Via: 1.1 egress-test`` to
what it forwards, and logs each request line to ``Tinyproxy.log``: tinyproxy
writes each line before it connects onwards, so once an answer has come back
its line is in the file.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.servers import START_TIMEOUT, free_port

VIA_NAME = "egress-test"
#: The loopback address tinyproxy's own connections come from.
OUTBOUND_ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Tinyproxy:
    """A running tinyproxy: where it listens and what it has logged."""

    port: int
    log: Path

    @property
    def url(self) -> str:
        """The proxy's URL, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URL carrying ``user:password``."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def request_lines(self) -> list[str]:
        """Every request line the proxy has received, e.g. ``CONNECT localhost:443 HTTP/1.1``."""
        marker = "): "
        return [
            line.split(marker, 1)[1]
            for line in self.log.read_text().splitlines()
            if "Request (file descriptor" in line
        ]


def config_text(
    port: int,
    log: Path,
    *,
    auth: tuple[str, str] | None = None,
    connect_ports: Iterable[int] = (),
    max_clients: int = 50,
    log_level: str = "Connect",
) -> str:
    """A tinyproxy config for loopback only; no ``ConnectPort`` lines allow CONNECT to any port."""
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Allow 127.0.0.1",
        f"Bind {OUTBOUND_ADDRESS}",
        "Timeout 30",
        f"MaxClients {max_clients}",
        f'LogFile "{log}"',
        f"LogLevel {log_level}",
        f'ViaProxyName "{VIA_NAME}"',
        "DisableViaHeader No",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    lines.extend(f"ConnectPort {allowed}" for allowed in connect_ports)
    return "\n".join(lines) + "\n"


def tinyproxy_binary() -> str:
    """The tinyproxy executable (Debian's ``tinyproxy`` package; .ci/run installs it)."""
    found = shutil.which("tinyproxy") or shutil.which("tinyproxy", path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError("tinyproxy is not installed: apt-get install tinyproxy")
    return found


@contextmanager
def run_tinyproxy(
    directory: Path,
    *,
    auth: tuple[str, str] | None = None,
    connect_ports: Iterable[int] = (),
) -> Iterator[Tinyproxy]:
    """Run tinyproxy on a free port of 127.0.0.1 until the context ends."""
    port = free_port()
    log = directory / f"tinyproxy-{port}.log"
    config = directory / f"tinyproxy-{port}.conf"
    config.write_text(config_text(port, log, auth=auth, connect_ports=connect_ports))
    proc = subprocess.Popen(
        [tinyproxy_binary(), "-d", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(proc, port, log)
        yield Tinyproxy(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _wait_listening(proc: subprocess.Popen[str], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr is not None else ""
            shown = log.read_text() if log.exists() else ""
            raise RuntimeError(f"tinyproxy exited with {proc.returncode}: {stderr}{shown}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)  # not listening yet: tinyproxy is still reading its config
    raise RuntimeError(f"tinyproxy did not listen on 127.0.0.1:{port}")
