"""What the app's lifespan builds once and every request shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.cache import CountCache, ResponseCache, TtlPolicy
from gateway.config import Settings
from gateway.observe import Metrics
from gateway.upstream import GuardedClient

if TYPE_CHECKING:
    from gateway.api.live import LiveCounts


@dataclass(frozen=True)
class Services:
    """The process's shared parts, handed to every request."""

    settings: Settings
    upstream: GuardedClient
    cache: CountCache
    ttl: TtlPolicy
    metrics: Metrics
    responses: ResponseCache
    #: An OpenTelemetry tracer when GATEWAY_OTEL is on.
    tracer: Any = None
    #: Prefills GraphiQL's headers tab (the demo credential when serving demo data).
    example_headers: dict[str, str] | None = None
    #: The live streams, their feeds and pollers (``Subscription.watch``).
    live: LiveCounts | None = None
