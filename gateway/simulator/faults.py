"""Fault switches: test-only ways to make the simulated upstream misbehave."""

from __future__ import annotations

import asyncio
import threading

HANG_LIMIT = 3600.0
"""Seconds a held request waits for ``release()`` before it is answered anyway."""


class Faults:
    """Mutable fault switches shared by a simulator and its tests, all off by default.

    Tests flip plain attributes (often from another thread); each request reads
    them as it arrives, after it is recorded, in this order: ``latency`` (wait),
    ``hang`` (hold until ``release()``, an hour at most), ``http_status`` (that
    status, an HTML body), ``non_json``, ``wrong_shape``, ``error_code`` (the
    error shape with that code). ``Simulator.faults`` applies to every request;
    ``Simulator.faults_for(id)`` to one credential's, in place of the first.
    """

    latency: float
    hang: bool
    error_code: int | None
    non_json: bool
    wrong_shape: bool
    http_status: int | None

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.reset()

    def __repr__(self) -> str:
        return (
            f"Faults(latency={self.latency!r}, hang={self.hang!r}, "
            f"error_code={self.error_code!r}, non_json={self.non_json!r}, "
            f"wrong_shape={self.wrong_shape!r}, http_status={self.http_status!r})"
        )

    def reset(self) -> None:
        """Turn every fault off and release held requests."""
        self.latency = 0.0
        self.hang = False
        self.error_code = None
        self.non_json = False
        self.wrong_shape = False
        self.http_status = None
        self.release()

    @property
    def active(self) -> bool:
        """Whether any switch is on."""
        return bool(
            self.latency > 0
            or self.hang
            or self.error_code is not None
            or self.non_json
            or self.wrong_shape
            or self.http_status is not None
        )

    @property
    def hanging(self) -> int:
        """How many requests are being held by ``hang`` right now."""
        with self._changed:
            return len(self._held)

    def wait_hanging(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until exactly ``count`` requests are held; ``False`` on timeout.

        For synchronising a test with requests it sent in the background
        (``count >= 1``) or with their release after ``release()`` (``count=0``).
        """
        with self._changed:
            return self._changed.wait_for(lambda: len(self._held) == count, timeout)

    def release(self) -> None:
        """Let every request held so far go on; ``hang`` still holds later ones."""
        with self._changed:
            held = list(self._held)
        for loop, event in held:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop has closed: nothing left to wake
                continue

    async def hold(self) -> None:
        """Wait until ``release()`` is called (or ``HANG_LIMIT`` passes)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._changed:
            self._held.add(entry)
            self._changed.notify_all()
        try:
            await asyncio.wait_for(entry[1].wait(), HANG_LIMIT)
        except TimeoutError:
            pass
        finally:
            with self._changed:
                self._held.discard(entry)
                self._changed.notify_all()
