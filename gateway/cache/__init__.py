"""Counts kept briefly: the local cache with single flight, the Redis tier, whole answers."""

from gateway.cache.counts import CacheKey, CountCache, Counted
from gateway.cache.redis_tier import Entry, SharedTier, shared_name
from gateway.cache.replay import MAX_REPLAYED_BODY, Replay, ResponseCache
from gateway.cache.ttl import TtlPolicy

__all__ = [
    "MAX_REPLAYED_BODY",
    "CacheKey",
    "CountCache",
    "Counted",
    "Entry",
    "Replay",
    "ResponseCache",
    "SharedTier",
    "TtlPolicy",
    "shared_name",
]
