"""The optional second cache tier in Redis, shared by replicas behind one Service.

Redis is a help, never a dependency: any failure marks it down for a few
seconds, logs one warning, counts in a metric, and the local cache carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple

import redis.asyncio as redis
from redis.exceptions import RedisError

logger = logging.getLogger("gateway.shared")

PREFIX: Final = "deepcall-gateway:v1"
POLL_SECONDS: Final = 0.02
DOWN_SECONDS: Final = 5.0
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
        client: redis.Redis,
        *,
        stale: float,
        lock_seconds: float,
        timer: Callable[[], float] = time.time,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._stale = stale
        self._lock_ms = max(1, int(lock_seconds * 1000))
        self._timer = timer
        self._on_error = on_error
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SharedTier:
        """A tier on the Redis at ``url``, with short socket timeouts."""
        client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        return cls(client, **options)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    @property
    def up(self) -> bool:
        """False while a recent failure keeps the tier switched off."""
        return time.monotonic() >= self._down_until

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
        try:
            value, fetched_at, ttl = json.loads(raw)
            return Entry(int(value), float(fetched_at), float(ttl))
        except (ValueError, TypeError):
            return None

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

    async def _call(self, command: Awaitable[Any]) -> Any:
        """Run one Redis command; on any failure mark the tier down and return None."""
        if not self.up:
            if asyncio.iscoroutine(command):
                command.close()
            return None
        try:
            return await command
        except (TimeoutError, RedisError, OSError) as exc:
            if self.up:
                logger.warning(
                    "Redis cache tier failed (%s); local cache only for %.0f s",
                    type(exc).__name__,
                    DOWN_SECONDS,
                )
            self._down_until = time.monotonic() + DOWN_SECONDS
            self._on_error()
            return None


def shared_name(principal: bytes, filter_json: str, priority_filter: str | None) -> str:
    """The tier's name for a cache key: no credential, no filter value in clear."""
    question = hashlib.sha256(f"{filter_json}\0{priority_filter or ''}".encode()).hexdigest()
    return f"{principal.hex()}:{question}"
