"""The one Redis connection a process shares with its fleet: a help, never a dependency.

Any failure marks Redis down for ``down_seconds``: one warning, one count,
and every user (the cache tier, the fleet's limits) carries on locally until
the next try succeeds, which one line tells.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import RedisError

logger = logging.getLogger("gateway.shared")

#: The prefix of every key this gateway writes (the v2 keys name questions by digest).
PREFIX: Final = "deepcall-gateway:v2"
DOWN_SECONDS: Final = 5.0


class RedisLink:
    """A Redis client, and whether it answered lately; ``call`` never raises a Redis failure."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        on_error: Callable[[], None] = lambda: None,
        down_seconds: float = DOWN_SECONDS,
    ) -> None:
        self.client = client
        self._on_error = on_error
        self._down_seconds = down_seconds
        self._down_until = 0.0
        self._failed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisLink:
        """A link to the Redis at ``url``, with short socket timeouts."""
        client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        return cls(client, **options)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    @property
    def up(self) -> bool:
        """False while a recent failure keeps Redis switched off."""
        return time.monotonic() >= self._down_until

    async def call(self, command: Awaitable[Any]) -> Any:
        """Run one Redis command; on any failure mark Redis down and return None."""
        if not self.up:
            if asyncio.iscoroutine(command):
                command.close()
            return None
        try:
            result = await command
        except (TimeoutError, RedisError, OSError) as exc:
            if self.up:
                logger.warning(
                    "Redis failed (%s): local cache and local limits for %.0f s",
                    type(exc).__name__,
                    self._down_seconds,
                )
            self._down_until = time.monotonic() + self._down_seconds
            self._failed = True
            self._on_error()
            return None
        if self._failed:
            self._failed = False
            logger.warning("Redis answers again: shared cache and fleet limits")
        return result
