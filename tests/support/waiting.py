"""Waiting for a condition with a deadline, for what no event tells (a count, a task gone)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Seconds between two looks.
STEP = 0.05


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Look at ``condition`` every ``STEP`` until it holds; fail after ``seconds``."""
    for _ in range(max(1, int(seconds / STEP))):
        if condition():
            return
        await asyncio.sleep(STEP)
    if not condition():
        raise AssertionError(f"the condition did not hold within {seconds} s")


def eventually_sync(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """``eventually``, for a test outside any event loop."""
    for _ in range(max(1, int(seconds / STEP))):
        if condition():
            return
        time.sleep(STEP)
    if not condition():
        raise AssertionError(f"the condition did not hold within {seconds} s")
