"""Content negotiation for ``/graphql``, as the GraphQL over HTTP spec lays it down."""

from __future__ import annotations

import functools
from typing import Any, Final

from strawberry.http.streaming import MultipartSubscriptionTransport, SSETransport

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
JSON: Final = "application/json"
#: Ours, best first when a client rates both the same.
SERVED: Final = (GRAPHQL_RESPONSE_JSON, JSON)


# Clients send a handful of distinct Accept values: each is parsed once.
@functools.lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The media type to answer ``accept`` with, or None when neither can be served.

    Each media range counts with its ``q``; for each of ours the most specific
    range that matches decides. Ties go to the type the client named exactly,
    and among wildcards to ``application/json`` (the spec's advice for ``*/*``).
    """
    if accept is None or not accept.strip():
        return JSON
    ranges = [parsed for item in accept.split(",") if (parsed := _media_range(item)) is not None]
    best: tuple[float, int, int] = (0.0, 0, 0)
    chosen: str | None = None
    for preference, served in enumerate(reversed(SERVED)):
        kind = served.split("/", 1)[0]
        match: tuple[int, float] | None = None
        for media, q in ranges:
            specificity = (
                2 if media == served else 1 if media == f"{kind}/*" else 0 if media == "*/*" else -1
            )
            if specificity >= 0 and (match is None or specificity > match[0]):
                match = (specificity, q)
        if match is None or match[1] <= 0:
            continue
        specificity, q = match
        # Exactly named beats a wildcard; for wildcards, application/json wins.
        rank = (q, specificity, preference if specificity == 2 else -preference)
        if chosen is None or rank > best:
            best, chosen = rank, served
    return chosen


#: The streaming transports, as ``stream_type`` names them.
SSE: Final = "sse"
MULTIPART: Final = "multipart"
_MULTIPART = MultipartSubscriptionTransport()
_SSE = SSETransport()


@functools.lru_cache(maxsize=256)
def stream_type(accept: str | None) -> str | None:
    """The stream a subscription is answered with for ``accept``: SSE, multipart or None.

    ``text/event-stream`` is GraphQL over SSE (distinct connections);
    ``multipart/mixed`` with ``subscriptionSpec=1.0`` is Apollo's multipart
    subscriptions. Only subscriptions stream: a query is answered in JSON
    whatever the ``Accept``.
    """
    if not accept:
        return None
    if _SSE.accepts(accept):
        return SSE
    if any(_multipart(part) for part in accept.split(",")):
        return MULTIPART
    return None


def _multipart(media_range: str) -> bool:
    try:
        return _MULTIPART.accepts(media_range.strip())
    except (AssertionError, ValueError):
        return False


def status_for(media_type: str, body: dict[str, Any]) -> int:
    """The HTTP status of one operation's response ``body`` in ``media_type``.

    ``application/graphql-response+json``: 400 for a response without ``data``
    (a document that does not parse or validate, variables that do not coerce,
    a persisted document that cannot be had), 200 once execution began.
    ``application/json`` keeps the older contract: 200 for every response.
    """
    if media_type == GRAPHQL_RESPONSE_JSON and "data" not in body:
        return 400
    return 200


def _media_range(item: str) -> tuple[str, float] | None:
    """``(type/subtype, q)`` of one comma-separated entry of ``Accept``; None if malformed."""
    media, *params = (part.strip() for part in item.split(";"))
    media = media.lower()
    if media.count("/") != 1 or not all(media.split("/")):
        return None
    q = 1.0
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return None
            if not 0 <= q <= 1:
                return None
    return media, q
