"""Shared limits, each divided fairly between callers: slots in flight, token buckets."""

from gateway.limits.buckets import RateLimiter, TokenBuckets
from gateway.limits.slots import ANYONE, ConcurrencyLimiter

__all__ = ["ANYONE", "ConcurrencyLimiter", "RateLimiter", "TokenBuckets"]
