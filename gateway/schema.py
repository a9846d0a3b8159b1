"""The Strawberry schema: ``Query.callCount`` and the extensions that guard it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, SchemaExtension
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.config import Settings
from gateway.resolvers import call_count
from gateway.types import SCALARS


@strawberry.type(description="Counts of DeepCall call-log records.")
class Query:
    """The root query type."""

    call_count: int | None = strawberry.field(
        resolver=call_count,
        description=(
            "Number of call-log records matching the filter (upstream `reportCount` `cnt`); "
            "null only when this field has an error."
        ),
    )


class GatewaySchema(strawberry.Schema):
    """A schema that leaves error logging to the endpoint, which masks and logs once."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Do nothing: ``gateway.endpoint.format_error`` logs what deserves it."""


def create_schema(settings: Settings | None = None) -> GatewaySchema:
    """The schema with the limits and switches of ``settings``."""
    settings = settings or Settings()
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(MaxAliasesLimiter, max_alias_count=settings.max_aliases)
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return GatewaySchema(
        query=Query,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map=SCALARS,
            disable_field_suggestions=not settings.introspection,
        ),
    )


def schema_sdl() -> str:
    """The SDL of the schema, as checked in at ``schema.graphql``."""
    return create_schema().as_str() + "\n"
