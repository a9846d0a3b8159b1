"""What Linux's /proc says about a process: its resident memory and the sockets it holds.

Writing 5 to ``/proc/<pid>/clear_refs`` resets the process's peak resident set
(VmHWM) to its current one (Linux 4.0 and later), so a test can measure the
peak of one stretch of a long-lived process's life.
"""

from __future__ import annotations

import itertools
import os


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> int:
    """Reset ``pid``'s peak RSS to its current RSS, and return that (bytes)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")
    return _status(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    """``pid``'s peak RSS since start, or since the last reset (bytes)."""
    return _status(pid, "VmHWM")


def sockets(pid: int, remote_port: int) -> tuple[int, int]:
    """(sockets ``pid`` holds open, those of them TCP over IPv4 to ``remote_port``), any state."""
    inodes = set()
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except FileNotFoundError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    towards = 0
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in itertools.islice(table, 1, None):  # past the heading
            fields = line.split()
            port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[9] in inodes and port == remote_port:
                towards += 1
    return len(inodes), towards
