"""What the replicas of a fleet share through Redis: a link that may fail, and their limits."""

from gateway.fleet.limits import (
    HELD,
    INVALID,
    NEW_LIMITED,
    OK,
    RATE_LIMITED,
    FleetLimits,
    Grant,
    new_reservation,
)
from gateway.fleet.link import DOWN_SECONDS, PREFIX, RedisLink

__all__ = [
    "DOWN_SECONDS",
    "HELD",
    "INVALID",
    "NEW_LIMITED",
    "OK",
    "PREFIX",
    "RATE_LIMITED",
    "FleetLimits",
    "Grant",
    "RedisLink",
    "new_reservation",
]
