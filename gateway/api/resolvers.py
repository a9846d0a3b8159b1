"""Resolvers: turn GraphQL arguments into one canonical upstream question each."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Mapping
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import strawberry
from graphql import GraphQLResolveInfo

from gateway.api import series
from gateway.api.context import RequestContext
from gateway.api.series import Interval
from gateway.api.types import CallCountBucket, CallFilterInput
from gateway.config import Settings
from gateway.errors import BadUserInputError
from gateway.model import CountQuery

MODELLED_KEYS = frozenset({"dtGte", "dtLte", "agtIds", "campId", "st"})
MAX_PRIORITY_FILTER_CHARS = 8192
MAX_EXTRA_DEPTH = 4
MAX_EXTRA_CHARS = 4096
T = TypeVar("T")


def to_upstream_zone(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """``value`` as a naive wall-clock time in ``zone`` (naive values are already in it)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=None)
    try:
        return value.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        raise BadUserInputError("filter dates must fall within years 1 to 9999") from None


def upstream_time(value: dt.datetime, *, round_up: bool) -> str:
    """``value`` in the upstream's ``YYYY-MM-DD HH:MM:SS``, whole seconds.

    The upstream compares whole seconds, inclusively: a lower bound with a
    fraction rounds up and an upper bound rounds down, so neither admits a
    call outside the asked-for range.
    """
    if value.microsecond:
        value = value.replace(microsecond=0)
        if round_up:
            try:
                value += dt.timedelta(seconds=1)
            except OverflowError:
                raise BadUserInputError("filter dates must fall within years 1 to 9999") from None
    # isoformat, not strftime: %Y is not zero-padded before year 1000 on glibc.
    return value.isoformat(sep=" ")


def _given(value: T | None) -> T | None:
    """``value``, with omitted (UNSET) folded into null: both mean "don't filter"."""
    return None if value is strawberry.UNSET else value


def filter_fields(filter: CallFilterInput) -> dict[str, Any]:
    """``filter`` as graphql-core gives an input object: GraphQL names, omitted fields absent."""
    fields = {
        "from": filter.from_,
        "to": filter.to,
        "agentIds": filter.agent_ids,
        "campaignId": filter.campaign_id,
        "statuses": filter.statuses,
        "extra": filter.extra,
    }
    return {name: value for name, value in fields.items() if value is not strawberry.UNSET}


def upstream_filter(
    filter: CallFilterInput | Mapping[str, Any] | None, zone: ZoneInfo
) -> dict[str, Any]:
    """The upstream ``filter`` object for ``filter``; raises BadUserInputError.

    ``filter`` is a ``CallFilterInput`` as strawberry builds it, or the mapping
    graphql-core coerces (``resolve_call_count``); null and omitted fields
    both mean "don't filter".
    """
    if filter is None or filter is strawberry.UNSET:
        return {}
    if isinstance(filter, CallFilterInput):
        filter = filter_fields(filter)
    out: dict[str, Any] = {}
    if (extra := filter.get("extra")) is not None:
        if not isinstance(extra, dict):
            raise BadUserInputError("filter.extra must be a JSON object of upstream filter keys")
        clashes = sorted(MODELLED_KEYS.intersection(extra))
        if clashes:
            raise BadUserInputError(
                f"filter.extra must not set {', '.join(clashes)}: use the typed filter fields"
            )
        _check_extra_size(extra)
        out.update(extra)
    start = end = None
    if (from_ := filter.get("from")) is not None:
        start = to_upstream_zone(from_, zone)
        out["dtGte"] = upstream_time(start, round_up=True)
    if (to := filter.get("to")) is not None:
        end = to_upstream_zone(to, zone)
        out["dtLte"] = upstream_time(end, round_up=False)
    # Judged before rounding: from == to with a fraction is a valid (empty) range.
    if start is not None and end is not None and start > end:
        raise BadUserInputError("filter.from must not be after filter.to")
    if (agent_ids := filter.get("agentIds")) is not None:
        out["agtIds"] = sorted(set(agent_ids))
    if (campaign_id := filter.get("campaignId")) is not None:
        out["campId"] = campaign_id
    if (statuses := filter.get("statuses")) is not None:
        out["st"] = sorted(set(statuses))
    return out


def _check_extra_size(extra: dict[str, Any]) -> None:
    """Refuse extra values nested or sized past what any upstream filter needs."""
    level: list[Any] = [extra]
    for _ in range(MAX_EXTRA_DEPTH):
        level = [
            item
            for value in level
            for item in (value.values() if isinstance(value, dict) else value)
            if isinstance(item, dict | list)
        ]
        if not level:
            break
    else:
        raise BadUserInputError(f"filter.extra is nested deeper than {MAX_EXTRA_DEPTH} levels")
    try:
        size = len(json.dumps(extra, allow_nan=False))
    except ValueError:
        raise BadUserInputError("filter.extra must hold only finite JSON numbers") from None
    if size > MAX_EXTRA_CHARS:
        raise BadUserInputError(f"filter.extra is longer than {MAX_EXTRA_CHARS} characters")


def check_priority_filter(value: str | None) -> str | None:
    """``value`` if it is standard base64 (as the upstream requires), else BadUserInputError."""
    value = _given(value)
    if value is None:
        return None
    if len(value) > MAX_PRIORITY_FILTER_CHARS:
        raise BadUserInputError(f"priorityFilter is limited to {MAX_PRIORITY_FILTER_CHARS} chars")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadUserInputError("priorityFilter must be base64") from None
    return value


def count_query(
    filter: CallFilterInput | Mapping[str, Any] | None, priority_filter: str | None, zone: ZoneInfo
) -> CountQuery:
    """The canonical upstream question for ``callCount``'s arguments."""
    return CountQuery.build(upstream_filter(filter, zone), check_priority_filter(priority_filter))


PriorityFilterArgument = Annotated[
    str | None,
    strawberry.argument(description="Opaque base64 priority filter (upstream `priorityFilter`)."),
]


def call_count(
    filter: Annotated[
        CallFilterInput | None,
        strawberry.argument(description="Which calls to count (upstream `filter`)."),
    ] = strawberry.UNSET,
    priority_filter: PriorityFilterArgument = strawberry.UNSET,
) -> int | None:
    """Declares ``callCount``'s arguments for the schema; ``resolve_call_count`` executes it."""
    raise NotImplementedError("create_schema resolves callCount with resolve_call_count")


def resolve_call_count(
    _root: object, info: GraphQLResolveInfo[RequestContext], **arguments: Any
) -> int | Awaitable[int]:
    """``callCount`` as graphql-core calls it, with the arguments as it coerced them.

    Strawberry's resolver wrapper rebuilds every argument as its Python type
    (camel-casing each name again on every call) and builds its own ``Info``:
    a fifth of the CPU of a batch of misses. graphql-core has already checked
    and coerced the arguments; ``upstream_filter`` reads them as they are. The
    answer is the count itself (a fresh cached one) or a future of it, which
    graphql-core awaits without a task of its own.
    """
    context: RequestContext = info.context
    query = count_query(
        arguments.get("filter"), arguments.get("priorityFilter"), context.services.settings.zone
    )
    return context.count_soon(query, info.path.as_list())


def _zone_named(name: str | None, default: ZoneInfo) -> ZoneInfo:
    name = _given(name)
    if name is None:
        return default
    try:
        return ZoneInfo(name) if len(name) <= 64 else ZoneInfo("")
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise BadUserInputError(
            "timeZone must be an IANA time zone such as Europe/Berlin"
        ) from None


def _in_zone(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """An aware instant: ``value``'s own offset, or taken as wall-clock time in ``zone``."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=zone)
    return value


def series_queries(
    filter: CallFilterInput,
    interval: Interval,
    time_zone: str | None,
    priority_filter: str | None,
    settings: Settings,
) -> list[CallCountBucket]:
    """The buckets of a series, each with its canonical upstream question."""
    zone = _zone_named(time_zone, settings.zone)
    from_, to = _given(filter.from_), _given(filter.to)
    if from_ is None or to is None:
        raise BadUserInputError("callCountSeries needs filter.from and filter.to")
    start, end = _in_zone(from_, zone), _in_zone(to, zone)
    if start > end:
        raise BadUserInputError("filter.from must not be after filter.to")
    limit = settings.max_buckets
    base = upstream_filter(dataclasses.replace(filter, from_=None, to=None), settings.zone)
    checked = check_priority_filter(priority_filter)
    out = []
    try:
        if series.count_buckets(start, end, interval, zone, limit) > limit:
            raise BadUserInputError(f"The series has more than {limit} buckets: widen the interval")
        for first, last in series.buckets(start, end, interval, zone):
            bounds = {
                "dtGte": upstream_time(to_upstream_zone(first, settings.zone), round_up=True),
                "dtLte": upstream_time(to_upstream_zone(last, settings.zone), round_up=False),
            }
            query = CountQuery.build({**base, **bounds}, checked)
            out.append(CallCountBucket(from_=first, to=last, query=query))
    except OverflowError:  # a bucket edge before year 1 or after 9999 in some zone
        raise BadUserInputError("filter dates must fall within years 1 to 9999") from None
    return out


async def call_count_series(
    info: strawberry.Info[RequestContext, None],
    filter: Annotated[
        CallFilterInput,
        strawberry.argument(
            description="Which calls to count; from and to are required and bound the series."
        ),
    ],
    interval: Annotated[Interval, strawberry.argument(description="The width of each bucket.")],
    time_zone: Annotated[
        str | None,
        strawberry.argument(
            description=(
                "IANA time zone of the calendar (default: the upstream's). "
                "from and to without an offset are read in it."
            )
        ),
    ] = strawberry.UNSET,
    priority_filter: PriorityFilterArgument = strawberry.UNSET,
) -> list[CallCountBucket] | None:
    """Resolve ``callCountSeries``: the buckets; each bucket's count resolves on its own."""
    context = info.context
    buckets = series_queries(
        filter,
        series.Interval(interval.value),
        time_zone,
        priority_filter,
        context.services.settings,
    )
    context.budget.ensure_room(len(buckets))
    return buckets
