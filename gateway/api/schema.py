"""The Strawberry schema: ``Query.callCount``, defined once for the whole process."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from gateway.api.execution import ReleasingExecutionContext
from gateway.api.resolvers import call_count, call_count_series, resolve_call_count
from gateway.api.types import SCALARS, CallCountBucket


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
    call_count_series: list[CallCountBucket] | None = strawberry.field(
        resolver=call_count_series,
        description=(
            "Counts per calendar bucket (hour, day, week, month) between filter.from and "
            "filter.to, in a time zone, correct across daylight-saving changes. Each bucket "
            "is one cached upstream `reportCount`; a failed bucket has a null count and its "
            "own error."
        ),
    )


def create_schema() -> strawberry.Schema:
    """The schema. Limits and switches live in ``gateway.documents``, which runs it."""
    schema = strawberry.Schema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=ReleasingExecutionContext,
    )
    # The hot field resolves on graphql-core's arguments directly (see resolve_call_count);
    # strawberry still declares it, so the SDL and validation are unchanged.
    query_type = schema._schema.query_type
    assert query_type is not None
    query_type.fields["callCount"].resolve = resolve_call_count
    return schema


def schema_sdl() -> str:
    """The SDL of the schema, as checked in at ``schema.graphql``."""
    return create_schema().as_str() + "\n"
