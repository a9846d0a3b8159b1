"""The GraphQL API: the schema, its resolvers, and what a request may spend while it runs."""

from gateway.api.budget import RequestBudget
from gateway.api.context import RequestContext
from gateway.api.execution import execute_operation
from gateway.api.live import Asked, LiveCounts, Stream, StreamEnded
from gateway.api.schema import create_schema, schema_sdl
from gateway.api.services import Services

__all__ = [
    "Asked",
    "LiveCounts",
    "RequestBudget",
    "RequestContext",
    "Services",
    "Stream",
    "StreamEnded",
    "create_schema",
    "execute_operation",
    "schema_sdl",
]
