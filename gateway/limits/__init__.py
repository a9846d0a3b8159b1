"""Shared limits, each divided fairly between callers: slots in flight, token buckets."""

from gateway.limits.buckets import RATE_MESSAGE, RateLimiter, TokenBuckets
from gateway.limits.slots import ANYONE, ConcurrencyLimiter

__all__ = ["ANYONE", "RATE_MESSAGE", "ConcurrencyLimiter", "RateLimiter", "TokenBuckets"]
