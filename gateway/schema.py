"""The Strawberry schema: ``Query.callCount``, defined once for the whole process."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.resolvers import call_count, call_count_series, resolve_call_count
from gateway.types import SCALARS, CallCountBucket


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


class ReleasingExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, made freeable by reference counting once it is done.

    graphql-core's executor keeps ``async_helpers``, bound methods of itself: a
    reference cycle, through which each request's whole execution (variables,
    context, results, about 27 objects) waited for the cyclic garbage
    collector. At 2,000 requests a second a collection then freed some 30,000
    objects at once, a pause of 30 ms or more in the latency tail. Breaking the
    cycle when the operation is done frees them as they fall out of use.
    """

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._release_after(result)
        self._release()
        return result

    async def _release_after(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        finally:
            self._release()

    def _release(self) -> None:
        # Only resolvers use the helpers, and they have all finished.
        del self.async_helpers


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
