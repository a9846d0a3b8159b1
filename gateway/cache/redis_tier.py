"""The optional second cache tier in Redis, shared by replicas behind one Service.

Redis is a help, never a dependency (``gateway.fleet.RedisLink``): while it
fails, the local cache carries on alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple

from gateway.fleet import PREFIX, RedisLink
from gateway.model import MAX_COUNT

logger = logging.getLogger("gateway.shared")

POLL_SECONDS: Final = 0.02
#: How far ahead of ours another replica's clock may be: a later fetch time is not believed.
MAX_CLOCK_SKEW: Final = 5.0
#: The longest TTL the settings allow (GATEWAY_CACHE_TTL_SETTLED's range).
MAX_TTL: Final = 30 * 86_400
# Deletes the lock only if it is still ours (it may have expired and been taken).
_RELEASE: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


class Entry(NamedTuple):
    """A cached count: its value, when it was fetched (wall clock), how long it stays fresh."""

    value: int
    fetched_at: float
    ttl: float

    def fresh(self, now: float, max_age: float | None = None) -> bool:
        """Whether the count is still within its TTL (and ``max_age``) at ``now``."""
        age = now - self.fetched_at
        return age < self.ttl and (max_age is None or age < max_age)


class SharedTier:
    """Read-through, write-through Redis tier with a cross-replica lock.

    Entries are written with the local keys (an HMAC of the credential and a
    hash of the question) and the same TTL plus stale window, and read on a
    local miss. Single flight across replicas: the replica that takes a short
    lock (``SET NX PX``) asks the upstream and writes the count; the others
    wait for that count, briefly, instead of asking too.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        stale: float,
        lock_seconds: float,
        timer: Callable[[], float] = time.time,
    ) -> None:
        self._link = link
        self._client = link.client
        self._call = link.call
        self._stale = stale
        self._lock_ms = max(1, int(lock_seconds * 1000))
        self._timer = timer

    @property
    def up(self) -> bool:
        """False while a recent Redis failure keeps the tier switched off."""
        return self._link.up

    async def lead_or_wait(
        self, name: str, fetch: Callable[[], Awaitable[int]], ttl: float
    ) -> Entry:
        """A fresh count for ``name``: fetched under the lock, or the lock holder's.

        Call it after ``read`` found nothing fresh. The replica that takes the
        lock fetches and writes; the others wait for that write (at most the
        lock's life) and fetch themselves only if the holder gave up.
        """
        token = secrets.token_hex(8)
        leading = await self._lock(name, token)
        if not leading:
            awaited = await self._await_leader(name)
            if awaited is not None:
                return awaited
        try:
            value = await fetch()
        finally:
            if leading:
                await self._unlock(name, token)
        entry = Entry(value, self._timer(), ttl)
        await self._write(name, entry)
        return entry

    async def read(self, name: str) -> Entry | None:
        """The stored count for ``name`` (fresh or stale), or None."""
        raw = await self._call(self._client.get(f"{PREFIX}:count:{name}"))
        if not isinstance(raw, bytes | str):
            return None
        entry = _entry_of(raw, self._timer())
        if entry is None:
            logger.warning("Redis cache tier: an entry that is not a count was ignored")
        return entry

    async def _write(self, name: str, entry: Entry) -> None:
        keep_ms = int((entry.ttl + self._stale) * 1000)
        if keep_ms > 0:
            await self._call(
                self._client.set(f"{PREFIX}:count:{name}", json.dumps(list(entry)), px=keep_ms)
            )

    async def _lock(self, name: str, token: str) -> bool:
        """Take the fetch lock; True also when Redis is down (then everyone leads)."""
        if not self.up:
            return True
        taken = await self._call(
            self._client.set(f"{PREFIX}:lock:{name}", token, nx=True, px=self._lock_ms)
        )
        return bool(taken) or not self.up

    async def _unlock(self, name: str, token: str) -> None:
        await self._call(self._client.eval(_RELEASE, 1, f"{PREFIX}:lock:{name}", token))

    async def _await_leader(self, name: str) -> Entry | None:
        """Wait (bounded by the lock's life) for the leader's fresh count; None if it gave up."""
        deadline = time.monotonic() + self._lock_ms / 1000
        while time.monotonic() < deadline and self.up:
            await asyncio.sleep(POLL_SECONDS)
            entry = await self.read(name)
            if entry is not None and entry.fresh(self._timer()):
                return entry
            locked = await self._call(self._client.exists(f"{PREFIX}:lock:{name}"))
            if not locked:
                entry = await self.read(name)
                return entry if entry is not None and entry.fresh(self._timer()) else None
        return None


def _entry_of(raw: bytes | str, now: float) -> Entry | None:
    """The entry ``raw`` holds, if it is one this gateway could have written at ``now``.

    Whatever is in Redis may have been written by anyone who can reach it: a
    count outside GraphQL's Int, a fetch time in the future (fresh forever) or
    a TTL that is not a duration is not believed.
    """
    try:
        value, fetched_at, ttl = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        return None
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in (fetched_at, ttl)):
        return None
    if fetched_at > now + MAX_CLOCK_SKEW or not 0 <= ttl <= MAX_TTL:
        return None
    return Entry(value, float(fetched_at), float(ttl))


def shared_name(principal: bytes, question: bytes) -> str:
    """The tier's name for a cache key: no credential, no filter value in clear."""
    return f"{principal.hex()}:{question.hex()}"
