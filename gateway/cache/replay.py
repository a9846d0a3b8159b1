"""Whole answers replayed: a repeated request is not executed while its counts are fresh.

The count cache stays the one source of truth: nothing is ever replayed that
it would not serve.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from cachetools import LRUCache

from gateway.cache.counts import CacheKey, CountCache

#: Request bodies longer than this are executed every time (and not remembered).
MAX_REPLAYED_BODY: Final = 8 * 1024


class Replay(NamedTuple):
    """A response, the counts it was made of, and what its log line and metrics say."""

    body: bytes
    counts: tuple[tuple[CacheKey, int], ...]
    operations: tuple[str | None, ...] = ()
    upstream_fields: int = 0


class ResponseCache:
    """Bounded LRU of replayable responses, checked against ``counts`` on every use.

    An answer without an error or a warning is kept by (the credential's HMAC,
    the exact request body), with the counts it was made of; the same request
    gets those bytes back while every one of them is still fresh and unchanged.
    """

    def __init__(self, counts: CountCache, maxsize: int = 4096) -> None:
        self._counts = counts
        self._entries: LRUCache[tuple[bytes, bytes], Replay] = LRUCache(maxsize=maxsize)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, principal: bytes, request: bytes) -> Replay | None:
        """The response to replay for ``request`` by ``principal``, if all its counts hold."""
        replay = self._entries.get((principal, request))
        if replay is None:
            return None
        get = self._counts.get
        for key, value in replay.counts:
            if get(key) != value:
                del self._entries[(principal, request)]
                return None
        return replay

    def put(self, principal: bytes, request: bytes, replay: Replay) -> None:
        """Remember ``replay`` as the answer to ``request`` by ``principal``."""
        if len(request) <= MAX_REPLAYED_BODY and replay.counts:
            self._entries[(principal, request)] = replay
