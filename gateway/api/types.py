"""GraphQL input types and scalars; each description names the upstream key it maps to."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

from gateway.api.context import RequestContext
from gateway.api.series import Interval
from gateway.model import CountQuery

MAX_ECHOED_CHARS = 40


def parse_datetime(value: object) -> dt.datetime:
    """Accept ISO 8601 with or without an offset, or the upstream's ``YYYY-MM-DD HH:MM:SS``."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    shown = repr(value)[:MAX_ECHOED_CHARS]
    raise ValueError(
        f"DateTime must be ISO 8601 (2025-11-20T09:00:00+05:30) or "
        f"'YYYY-MM-DD HH:MM:SS', not {shown}"
    )


DATETIME = strawberry.scalar(
    name="DateTime",
    description=(
        "An instant, as ISO 8601 with or without an offset (2025-11-20T09:00:00+05:30) "
        "or as the upstream's 'YYYY-MM-DD HH:MM:SS'. A value with an offset is converted "
        "to the upstream's time zone; a value without one is taken as already in it."
    ),
    serialize=dt.datetime.isoformat,
    parse_value=parse_datetime,
)

SCALARS: dict[object, ScalarDefinition] = {dt.datetime: DATETIME}


@strawberry.input(description="Which calls to count. Absent fields do not filter.")
class CallFilterInput:
    """The typed filter of ``callCount``; ``extra`` carries unpublished upstream keys."""

    from_: dt.datetime | None = strawberry.field(
        default=strawberry.UNSET,
        name="from",
        description="Calls that started at or after this instant (upstream `dtGte`, inclusive).",
    )
    to: dt.datetime | None = strawberry.field(
        default=strawberry.UNSET,
        description="Calls that started at or before this instant (upstream `dtLte`, inclusive).",
    )
    agent_ids: list[strawberry.ID] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Calls handled by any of these agents (upstream `agtIds`).",
    )
    campaign_id: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Calls of this campaign (upstream `campId`).",
    )
    statuses: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Calls with any of these statuses, such as answered (upstream `st`).",
    )
    extra: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "Other upstream filter keys (duration, call type, custom analysis), "
            "merged verbatim into the upstream `filter`; a key the fields above "
            "already model is rejected."
        ),
    )


# Registers the GraphQL enum on the class itself (strawberry.enum works in place).
strawberry.enum(
    Interval, description="The width of a callCountSeries bucket, on the calendar of its time zone."
)


async def _bucket_count(
    root: strawberry.Parent[CallCountBucket], info: strawberry.Info[RequestContext, None]
) -> int | None:
    """Count a bucket through the same cache and single flight as callCount."""
    return await info.context.count(root.query, info.path.as_list())


@strawberry.type(description="The calls of one calendar bucket of a series.")
class CallCountBucket:
    """One bucket: its bounds (inclusive, in the series' time zone) and, lazily, its count."""

    from_: dt.datetime = strawberry.field(
        name="from", description="First instant of the bucket (upstream `dtGte`)."
    )
    to: dt.datetime = strawberry.field(
        description="Last whole second of the bucket, inclusive (upstream `dtLte`)."
    )
    query: strawberry.Private[CountQuery]
    count: int | None = strawberry.field(
        resolver=_bucket_count,
        description=(
            "Calls in the bucket (upstream `cnt`); null only when this bucket has an error, "
            "which then carries this field's path."
        ),
    )
