"""The repository's image, built with buildah on a Debian base made here, and run.

The build is an air-gapped builder's: the base is a minbase bookworm from
debootstrap (``python:3.11-slim-bookworm`` cannot be pulled here), the
dependencies are wheels that the base's own Python fetches from PyPI, and the
Dockerfile's offline path installs them inside a network namespace with no
route out. Commands run with buildah's chroot isolation: there is no Docker
daemon, and crun refuses this machine's cgroups ("cgroups in hybrid mode not
supported"), which rules out ``podman run`` and buildah's OCI isolation.

Everything made here lives under one directory (buildah's storage and its
mounts) or dies with a holder process (the network namespace and its veth
pair); ``leftovers`` names whatever a test failed to clean up.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway.simulator import Simulator, create_simulator_app

TOOLS = ("buildah", "debootstrap", "unshare", "nsenter", "ip")
"""Commands the image tests need: .ci/run installs buildah and debootstrap."""

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3")
"""What the Dockerfile asks of its base: ``python`` on PATH, and venv with pip."""
SLIMMED = (
    "dev",
    "usr/share/doc",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/man",
    "var/cache/apt/archives",
    "var/lib/apt/lists",
)
"""Left empty in the base, as Debian's slim images leave them (and /dev is the runtime's)."""

BUILD_TIMEOUT = 900.0
"""Seconds for debootstrap, the wheelhouse or the build: about a minute each here."""
COMMAND_TIMEOUT = 120.0
"""Seconds for any other buildah command."""
WAIT = 30.0
"""Seconds any awaited event (a log line, a process, a response) may take."""

WHEELHOUSE_COMMAND = "pip wheel --no-cache-dir --wheel-dir wheelhouse . setuptools"
"""The README's command for the offline build's wheels, run in the build context."""

CONTEXT_SKIPPED = (".venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache")
"""Left out of the copied build context: local state too big to copy, never built from."""


def missing_tools() -> list[str]:
    """The commands of ``TOOLS`` that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class CommandError(AssertionError):
    """A command the image tests ran failed; the message ends with its output."""


def checked(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run ``argv``; its stdout, stripped. Fails with the output's tail on a non-zero status."""
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise CommandError(f"{' '.join(argv)}\nexited {result.returncode}:\n{tail}")
    return result.stdout.strip()


# ---- a network namespace of its own ------------------------------------------


@dataclass(frozen=True)
class Network:
    """A network namespace joined to the host by a veth pair, and nothing else.

    Inside, the image's command binds port 8000 without meeting anything of
    the host's, and reaches only ``host`` (no default route): a build run in it
    is offline. The namespace lives as long as ``holder``.
    """

    holder: subprocess.Popen[bytes]
    host: str
    guest: str

    def enter(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *argv]


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of 198.18.0.0/15 (RFC 2544, for tests) that no host address or route is in."""
    used = checked(["ip", "-o", "-4", "addr"]) + checked(["ip", "-o", "-4", "route"])
    taken = [
        ipaddress.ip_network(word, strict=False)
        for word in used.split()
        if "/" in word and word[0].isdigit()
    ]
    start = os.getpid() % 256
    for offset in range(256):
        candidate = ipaddress.ip_network(f"198.18.{(start + offset) % 256}.0/30")
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise RuntimeError("no free /30 in 198.18.0.0/16")


@contextmanager
def isolated_network() -> Iterator[Network]:
    """A ``Network``; the namespace and the veth pair are gone on exit."""
    # The holder is `cat` on a pipe of ours: when this process dies, so does it.
    holder = subprocess.Popen(
        ["unshare", "--net", "cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    subnet = _free_subnet()
    host, guest = (str(address) for address in subnet.hosts())
    outside, inside = f"dgw{holder.pid}h", f"dgw{holder.pid}g"
    network = Network(holder, host, guest)
    try:
        checked(["ip", "link", "add", outside, "type", "veth", "peer", "name", inside])
        checked(["ip", "link", "set", inside, "netns", str(holder.pid)])
        checked(["ip", "addr", "add", f"{host}/30", "dev", outside])
        checked(["ip", "link", "set", outside, "up"])
        checked(network.enter(["ip", "addr", "add", f"{guest}/30", "dev", inside]))
        checked(network.enter(["ip", "link", "set", inside, "up"]))
        checked(network.enter(["ip", "link", "set", "lo", "up"]))
        yield network
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(WAIT)  # the namespace goes with it, and the veth pair with the namespace


# ---- buildah, with a storage of its own ----------------------------------------


@dataclass(frozen=True)
class Image:
    """A built image: its name, its Docker config and its layers' sizes."""

    name: str
    config: dict[str, Any]
    layers: list[int]
    """Uncompressed size of each layer, the base's first, in bytes."""
    base_layers: int

    @property
    def size(self) -> int:
        """Bytes of all the layers, uncompressed."""
        return sum(self.layers)

    @property
    def added(self) -> int:
        """Bytes of the layers the Dockerfile adds over its base."""
        return sum(self.layers[self.base_layers :])

    def env(self) -> dict[str, str]:
        """The image's environment."""
        return dict(pair.split("=", 1) for pair in self.config["Env"])


@dataclass(frozen=True)
class Buildah:
    """buildah with a storage under ``root``: nothing shared with the host's images."""

    root: Path

    def argv(self, *args: str) -> list[str]:
        """The command line for ``buildah args``."""
        storage = ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run")]
        return ["buildah", *storage, "--storage-driver", "overlay", *args]

    def __call__(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run ``buildah args``; its stdout. Fails with its output on a non-zero status."""
        return checked(self.argv(*args), timeout)

    def inspect(self, name: str, base: str) -> Image:
        """The image ``name``, built on ``base``."""

        def layers(image: str) -> list[int]:
            manifest = json.loads(self("inspect", "--type", "image", image))["Manifest"]
            return [layer["size"] for layer in json.loads(manifest)["layers"]]

        config = json.loads(self("inspect", "--type", "image", name))["Docker"]["config"]
        return Image(name, config, layers(name), len(layers(base)))

    def remove_everything(self) -> None:
        """Remove every container (unmounting it) and every image of this storage."""
        self("rm", "--all")
        self("rmi", "--all", "--force")


def make_base(buildah: Buildah, rootfs: Path, name: str) -> str:
    """A bookworm image with Python 3.11 from Debian's packages, named ``name``.

    debootstrap writes into a plain directory, so a failure leaves no mount in
    a container; the tree is then copied, ownership and modes kept, into a
    scratch container and committed.
    """
    packages = f"--include={','.join(BASE_PACKAGES)}"
    debootstrap = ["debootstrap", "--variant=minbase", packages, SUITE, str(rootfs), MIRROR]
    checked(debootstrap, BUILD_TIMEOUT)
    for path in SLIMMED:
        for entry in (rootfs / path).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    container = buildah("from", "scratch")
    mountpoint = buildah("mount", container)
    checked(["cp", "-a", f"{rootfs}/.", mountpoint], BUILD_TIMEOUT)
    buildah("umount", container)
    buildah("commit", "--quiet", "--rm", "--format", "docker", container, name)
    shutil.rmtree(rootfs)
    return name


def copy_context(root: Path, destination: Path) -> Path:
    """The repository's working tree as a build context: what ``docker build .`` would see.

    .git and tests/ come along, so that .dockerignore has something to keep out.
    """

    def skipped(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if name in CONTEXT_SKIPPED]

    shutil.copytree(root, destination, symlinks=True, ignore=skipped)
    for wheel in (destination / "wheelhouse").glob("*.whl"):
        wheel.unlink()  # wheels made elsewhere, for another Python, stay out
    return destination


def host_ca_bundle() -> str:
    """The host's CA bundle: PyPI is reached through whatever this machine trusts."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("PIP_CERT"), paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError("no CA bundle on this host for pip to reach PyPI with")


def fill_wheelhouse(buildah: Buildah, base: str, context: Path) -> list[str]:
    """Run the README's wheelhouse command in ``context`` with ``base``'s own Python.

    The base's Python, not the host's: pip picks wheels and conditional
    dependencies by the interpreter (Debian's 3.11.2 needs async-timeout for
    redis; 3.11.3 and later do not). Returns the wheels' file names.
    """
    container = buildah("from", "--pull=never", base)
    ca = "/run/host-ca.crt"
    mounts = ["--volume", f"{context}:/src", "--volume", f"{host_ca_bundle()}:{ca}:ro"]
    env = [f"PIP_CERT={ca}", "PIP_DISABLE_PIP_VERSION_CHECK=1"] + [
        f"{name}={os.environ[name]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy")
        if name in os.environ
    ]
    # Debian's python3 has no pip module (python:3.11-slim's has): a venv brings one.
    command = "python -m venv /tmp/pip && /tmp/pip/bin/" + WHEELHOUSE_COMMAND
    try:
        buildah(
            *["run", "--isolation", "chroot", "--workingdir", "/src"],
            *mounts,
            *[option for pair in env for option in ("--env", pair)],
            *[container, "--", "sh", "-c", command],
            timeout=BUILD_TIMEOUT,
        )
    finally:
        buildah("rm", container)
    return sorted(path.name for path in (context / "wheelhouse").glob("*.whl"))


def build_offline(buildah: Buildah, network: Network, context: Path, base: str, name: str) -> Image:
    """Build ``context``'s Dockerfile on ``base`` from its wheelhouse, with no way out."""
    # --format docker: an OCI image config has no HEALTHCHECK.
    options = "bud --isolation chroot --pull=never --format docker --build-arg PIP_NO_INDEX=1"
    arguments = [f"PYTHON_IMAGE={base}", "--tag", name, str(context)]
    checked(network.enter(buildah.argv(*options.split(), "--build-arg", *arguments)), BUILD_TIMEOUT)
    return buildah.inspect(name, base)


# ---- the image's command, running ----------------------------------------------


def children() -> dict[int, list[int]]:
    """Every process's children, by parent pid, from /proc."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        found.setdefault(parent, []).append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, parents before their children."""
    tree = children()
    found: list[int] = []
    pending = [pid]
    while pending:
        below = tree.get(pending.pop(0), [])
        found.extend(below)
        pending.extend(below)
    return found


def command_line(pid: int) -> list[str]:
    """The arguments of process ``pid``; empty once it has ended."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


class Running:
    """``buildah run`` of one command in a network namespace, its output read as it comes."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="image-output", daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        """Everything the command (and buildah) has written so far."""
        with self._changed:
            return "".join(self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def line_with(self, text: str, timeout: float = WAIT) -> str:
        """The first output line containing ``text``, waiting for it at most ``timeout``."""

        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        with self._changed:
            if not self._changed.wait_for(lambda: found() or self._ended, timeout):
                raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(self.lines)}")
            line = found()
            if line is None:
                raise AssertionError(f"output ended without {text!r}:\n{''.join(self.lines)}")
            return line

    def command_pid(self, command: Sequence[str]) -> int:
        """The pid of ``command`` itself, the process ``docker stop`` would signal.

        Ask once the command has shown that it runs: buildah's chroot runner
        above it carries the same arguments, so the deepest match is the one.
        """
        for pid in reversed(descendants(self.process.pid)):
            args = command_line(pid)[-len(command) :]
            if args[1:] == list(command[1:]) and Path(args[0]).name == command[0]:
                return pid
        raise AssertionError(f"{command[0]} is not running:\n{self.output}")

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for buildah run to end; its exit status, which is the command's."""
        status = self.process.wait(timeout)
        self._reader.join(WAIT)
        return status

    def kill(self) -> None:
        """Kill the command and buildah's processes under it, then buildah itself, and reap it."""
        if self.process.poll() is None:
            for pid in reversed(descendants(self.process.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            self.process.kill()
        self.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def leftovers(root: Path) -> list[str]:
    """Mounts under ``root`` and processes whose root directory is under it."""
    mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    found = [
        f"mount {fields[4]}"
        for fields in (line.split() for line in mountinfo)
        if Path(fields[4]).is_relative_to(root)
    ]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            process_root = Path(os.readlink(entry / "root"))
        except OSError:
            continue
        if process_root.is_relative_to(root):
            found.append(f"process {entry.name}: {' '.join(command_line(int(entry.name)))}")
    return found


# ---- the upstream: the simulator, on the host ------------------------------------


class _ThreadServer(uvicorn.Server):
    """uvicorn that says, through a thread-safe event, when it listens (or failed to)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


@contextmanager
def serve_simulator(sim: Simulator, host: str) -> Iterator[str]:
    """Serve ``sim`` on ``host`` (a free port) in a thread; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_simulator_app(sim), log_config=None, access_log=False, timeout_graceful_shutdown=2
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(WAIT) or not server.started:
            raise RuntimeError(f"the simulator did not start on {host}:{port}")
        yield f"http://{host}:{port}"
    finally:
        sim.release_held()
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
