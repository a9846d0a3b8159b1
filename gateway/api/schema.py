"""The Strawberry schema: ``Query`` and ``Subscription.watch``, defined once for the process."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.schema.config import StrawberryConfig

from gateway.api.execution import ReleasingExecutionContext
from gateway.api.live.watch import DEFAULT_EVERY, EVERY_DESCRIPTION, resolve_watch
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


async def watch(
    every: Annotated[int, strawberry.argument(description=EVERY_DESCRIPTION)] = DEFAULT_EVERY,
) -> AsyncGenerator[Query, None]:
    """Declares ``watch`` for the schema; live feeds run it with ``resolve_watch``."""
    raise NotImplementedError("create_schema resolves watch with resolve_watch")
    yield  # an async generator, as strawberry wants of a subscription


@strawberry.type(description="Live counts: a query's selection, kept up to date.")
class Subscription:
    """The root subscription type."""

    watch: AsyncGenerator[Query, None] = strawberry.subscription(
        resolver=watch,
        description=(
            "The selection, now and again whenever one of its values changes (each event a "
            "whole result, with errors per path as a query's). A selection whose windows "
            "have all settled (GATEWAY_CACHE_SETTLE) sends one event and completes."
        ),
    )


def create_schema() -> strawberry.Schema:
    """The schema. Limits and switches live in ``gateway.documents``, which runs it."""
    schema = strawberry.Schema(
        query=Query,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=ReleasingExecutionContext,
    )
    # The hot field resolves on graphql-core's arguments directly (see resolve_call_count);
    # strawberry still declares it, so the SDL and validation are unchanged.
    query_type = schema._schema.query_type
    assert query_type is not None
    query_type.fields["callCount"].resolve = resolve_call_count
    subscription_type = schema._schema.subscription_type
    assert subscription_type is not None
    subscription_type.fields["watch"].resolve = resolve_watch
    return schema


def schema_sdl() -> str:
    """The SDL of the schema, as checked in at ``schema.graphql``."""
    return create_schema().as_str() + "\n"
