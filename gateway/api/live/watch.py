"""``Subscription.watch``: any query's selection, made live.

Each event of a stream is the subscription executed once more against the
latest polled counts, as graphql-core executes a subscription event; the
``watch`` field's own resolver only checks ``every`` and hands on the root.
"""

from __future__ import annotations

from typing import Any, Final

from graphql import GraphQLResolveInfo

from gateway.api.live.context import LiveContext
from gateway.errors import BadUserInputError

#: The longest ``every``: a day (a window that changes more slowly is settled anyway).
MAX_EVERY: Final = 86_400
DEFAULT_EVERY: Final = 30
EVERY_DESCRIPTION: Final = (
    "Seconds: at most one event this often (at least GATEWAY_LIVE_MIN_EVERY; a smaller "
    "value is raised to it). After the first, an event comes only when a value changed."
)


def resolve_watch(_root: object, info: GraphQLResolveInfo[Any], every: int) -> object:
    """``watch`` for one event: check ``every`` and tell the feed, then the root of ``Query``."""
    if not 1 <= every <= MAX_EVERY:
        raise BadUserInputError(f"every must be 1 to {MAX_EVERY} seconds")
    context = info.context
    if not isinstance(context, LiveContext):
        raise BadUserInputError("Subscriptions stream: open one over SSE, multipart or WebSocket")
    context.watch(every)
    return _ROOT


#: The root value of the watched selection: Query's fields resolve without one.
_ROOT: Final = object()
