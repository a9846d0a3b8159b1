"""Live counts: ``Subscription.watch`` streams, shared feeds and shared pollers."""

from gateway.api.live.feeds import Asked, Event
from gateway.api.live.streams import END_REASONS, TRANSPORTS, LiveCounts, Stream, StreamEnded

__all__ = [
    "END_REASONS",
    "TRANSPORTS",
    "Asked",
    "Event",
    "LiveCounts",
    "Stream",
    "StreamEnded",
]
