"""A clock for tests: time moves only when the test says so."""

from __future__ import annotations


class FakeClock:
    """A clock that moves only when the test (or a fake) says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds
