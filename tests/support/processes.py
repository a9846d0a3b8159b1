"""Processes and a network namespace for the image tests: run, watched, and cleaned up.

Everything made here dies with a holder process (the network namespace and its
veth pair) or is named by ``leftovers`` when a test failed to clean it up.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

WAIT = 30.0
"""Seconds any awaited event (a log line, a process, a response) may take."""
COMMAND_TIMEOUT = 120.0
"""Seconds for any other buildah command."""


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
