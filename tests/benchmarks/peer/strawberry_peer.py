"""The Python peer: the gateway's job as a Python team would first write it with Strawberry.

Strawberry's own ASGI app (``strawberry.asgi.GraphQL``) on uvicorn (httptools, one
process), plain Strawberry types and resolvers, an ``httpx.AsyncClient`` to the
upstream and a ``cachetools.TTLCache`` of successes (15 s, 10,000 entries, keyed by
an HMAC of the credential and the canonical filter) with a map of calls in flight:
what the Node peers do (counts.mjs, mapping.mjs), with the same credential headers,
filter mapping, checks and error codes. It imports nothing of the gateway's.

Usage: UPSTREAM_URL=http://127.0.0.1:9000 python strawberry_peer.py --port 4002 [--host H]
Env: UPSTREAM_URL (required), UPSTREAM_TZ (Asia/Kolkata), CACHE_TTL_MS (15000),
     CACHE_MAX (10000), UPSTREAM_TIMEOUT_MS (5000), UPSTREAM_CONNECTIONS (100).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import enum
import hashlib
import hmac
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NewType

import httpx
import strawberry
import uvicorn
from cachetools import TTLCache
from graphql import GraphQLError, StringValueNode, ValueNode
from strawberry.asgi import GraphQL
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry_mapping import (
    WallTime,
    check_priority_filter,
    credential_from,
    fail,
    parse_date_time,
    parse_report_count,
    upstream_filter,
)

REPORT_COUNT = "/api/v2/CallReport/reportCount"


class CountCache:
    """Successes for ``ttl`` seconds, at most ``maxsize``; identical calls in flight shared."""

    def __init__(self, maxsize: int = 10_000, ttl: float = 15.0) -> None:
        self.secret = os.urandom(32)
        self.entries: TTLCache[str, int] = TTLCache(maxsize=maxsize, ttl=ttl)
        self.in_flight: dict[str, asyncio.Task[int]] = {}

    def key(self, credential: dict[str, str], filter_json: str, priority: str | None) -> str:
        """HMAC of the whole credential (never the credential in clear), filter, priority."""
        identity = json.dumps(
            [credential.get("ssid"), credential.get("userId"), credential.get("token")]
        )
        digest = hmac.new(self.secret, identity.encode(), hashlib.sha256).digest()
        return f"{base64.b64encode(digest).decode()}\n{filter_json}\n{priority or ''}"

    async def get_or_fetch(self, key: str, fetch: Callable[[], Awaitable[int]]) -> int:
        """The cached count for ``key``, else one shared ``fetch()`` whose success is kept."""
        cached = self.entries.get(key)
        if cached is not None:
            return cached
        task = self.in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, fetch))
            self.in_flight[key] = task
        return await task

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[int]]) -> int:
        try:
            value = await fetch()
            self.entries[key] = value
            return value
        finally:
            del self.in_flight[key]


counts = CountCache(
    maxsize=int(os.environ.get("CACHE_MAX", "10000")),
    ttl=int(os.environ.get("CACHE_TTL_MS", "15000")) / 1000,
)
# Created on the first request, inside uvicorn's event loop.
client: httpx.AsyncClient | None = None


def upstream_client() -> httpx.AsyncClient:
    """The one client to the upstream: a keep-alive pool as large as the Node peers'."""
    global client
    if client is None:
        size = int(os.environ.get("UPSTREAM_CONNECTIONS", "100"))
        client = httpx.AsyncClient(
            base_url=os.environ["UPSTREAM_URL"],
            timeout=int(os.environ.get("UPSTREAM_TIMEOUT_MS", "5000")) / 1000,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        )
    return client


async def report_count(
    credential: dict[str, str], filter_: dict[str, Any], priority: str | None
) -> int:
    """One upstream reportCount call, its failures mapped as the Node peers map them."""
    body: dict[str, Any] = dict(credential)
    if filter_:
        body["filter"] = filter_
    if priority is not None:
        body["priorityFilter"] = priority
    try:
        response = await upstream_client().post(REPORT_COUNT, json=body)
    except httpx.TimeoutException as exc:
        raise fail("DeepCall did not answer in time", "UPSTREAM_TIMEOUT", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise fail("DeepCall could not be reached", "UPSTREAM_UNAVAILABLE", retryable=True) from exc
    if response.status_code != 200:
        raise fail("DeepCall answered with an HTTP error", "UPSTREAM_BAD_RESPONSE")
    try:
        answer = response.json()
    except ValueError as exc:
        raise fail("DeepCall's answer is not JSON", "UPSTREAM_BAD_RESPONSE") from exc
    return parse_report_count(answer)


# ---------------------------------------------------------------- schema


def _date_time_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> WallTime:
    if not isinstance(node, StringValueNode):
        raise fail("DateTime must be a string", "BAD_USER_INPUT")
    return parse_date_time(node.value)


DateTime = NewType("DateTime", WallTime)


@strawberry.enum(description="The width of a callCountSeries bucket.")
class Interval(enum.Enum):
    """A calendar bucket's width."""

    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@strawberry.type(description="The calls of one calendar bucket of a series.")
class CallCountBucket:
    """One bucket of a series."""

    from_: DateTime = strawberry.field(name="from")
    to: DateTime
    count: int | None


@strawberry.input(description="Which calls to count. Absent fields do not filter.")
class CallFilterInput:
    """The filter, field for field as schema.graphql has it."""

    from_: DateTime | None = strawberry.field(name="from", default=None)
    to: DateTime | None = None
    agent_ids: list[strawberry.ID] | None = None
    campaign_id: int | None = None
    statuses: list[str] | None = None
    extra: JSON | None = None


@strawberry.type
class Query:
    """Counts of DeepCall call-log records."""

    @strawberry.field
    async def call_count(
        self,
        info: strawberry.Info,
        filter: CallFilterInput | None = None,
        priority_filter: str | None = None,
    ) -> int | None:
        """Number of call-log records matching the filter (upstream reportCount cnt)."""
        credential = info.context["credential"]
        if isinstance(credential, GraphQLError):
            raise credential
        mapped: dict[str, Any] = {}
        if filter is not None:
            mapped = upstream_filter(
                from_=filter.from_,
                to=filter.to,
                agent_ids=filter.agent_ids,
                campaign_id=filter.campaign_id,
                statuses=filter.statuses,
                extra=filter.extra,
            )
        priority = check_priority_filter(priority_filter)
        canonical = json.dumps(mapped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        key = counts.key(credential, canonical, priority)
        return await counts.get_or_fetch(key, lambda: report_count(credential, mapped, priority))

    @strawberry.field
    def call_count_series(
        self,
        filter: CallFilterInput,
        interval: Interval,
        time_zone: str | None = None,
        priority_filter: str | None = None,
    ) -> list[CallCountBucket] | None:
        """Not served: no scenario asks for it (the Node peers answer it with null)."""
        raise fail("The peer does not serve callCountSeries", "NOT_IMPLEMENTED")


class PeerApp(GraphQL[dict[str, Any], None]):
    """Strawberry's ASGI app, with the credential read from the headers into the context."""

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        """The request's credential (or the error it makes), as the Node peers' context."""
        return {"credential": credential_from(request.headers)}


schema = strawberry.Schema(
    query=Query,
    config=StrawberryConfig(
        scalar_map={
            DateTime: strawberry.scalar(
                name="DateTime",
                description="An instant, as ISO 8601 or as the upstream's 'YYYY-MM-DD HH:MM:SS'.",
                serialize=lambda value: value.wall.isoformat(sep=" "),
                parse_value=parse_date_time,
                parse_literal=_date_time_literal,
            )
        }
    ),
)
app = PeerApp(schema, graphql_ide=None)


def main(argv: list[str] | None = None) -> None:
    """Serve the peer with uvicorn: httptools, one process, no access log."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4002)
    args = parser.parse_args(argv)
    if not os.environ.get("UPSTREAM_URL"):
        sys.exit("strawberry_peer.py: set UPSTREAM_URL to the upstream base URL")
    print(f"peer (Strawberry + httpx + cachetools) listening on port {args.port}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
