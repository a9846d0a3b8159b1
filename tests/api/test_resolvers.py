"""Unit tests for turning callCount arguments into one canonical upstream question."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import strawberry
from graphql import coerce_input_value

from gateway.api.resolvers import (
    MAX_PRIORITY_FILTER_CHARS,
    check_priority_filter,
    count_query,
    filter_fields,
    resolve_call_count,
    upstream_filter,
)
from gateway.api.schema import create_schema
from gateway.api.types import CallFilterInput, parse_datetime
from gateway.errors import BadUserInputError
from gateway.model import CountQuery

KOLKATA = ZoneInfo("Asia/Kolkata")
UTC = dt.UTC
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def at(text: str) -> dt.datetime:
    """A datetime from ISO text, to keep the cases readable."""
    return dt.datetime.fromisoformat(text)


# the two ways arguments arrive


def test_call_count_resolves_on_graphql_cores_own_arguments() -> None:
    """The schema runs callCount through resolve_call_count, not strawberry's wrapper."""
    query_type = create_schema()._schema.query_type
    assert query_type is not None
    assert query_type.fields["callCount"].resolve is resolve_call_count


def test_graphql_core_and_strawberry_give_the_filter_alike() -> None:
    """graphql-core's coerced input object is what filter_fields makes of strawberry's."""
    schema = create_schema()._schema
    as_json = {
        "from": "2025-11-20T09:00:00+05:30",
        "to": "2025-11-21 10:00:00",
        "agentIds": [101, "102"],
        "campaignId": 7,
        "statuses": ["missed"],
        "extra": {"callType": ["IBD"]},
    }
    coerced = coerce_input_value(as_json, schema.type_map["CallFilterInput"])  # type: ignore[arg-type]
    typed = CallFilterInput(
        from_=at("2025-11-20T09:00:00+05:30"),
        to=at("2025-11-21 10:00:00"),
        agent_ids=[strawberry.ID("101"), strawberry.ID("102")],
        campaign_id=7,
        statuses=["missed"],
        extra={"callType": ["IBD"]},
    )
    assert coerced == filter_fields(typed)
    assert upstream_filter(coerced, KOLKATA) == upstream_filter(typed, KOLKATA)
    partial = coerce_input_value({"to": None}, schema.type_map["CallFilterInput"])  # type: ignore[arg-type]
    assert partial == filter_fields(CallFilterInput(to=None)) == {"to": None}


# upstream_filter: mapping


def test_every_field_maps_to_its_upstream_key() -> None:
    """from/to/agentIds/campaignId/statuses/extra become dtGte/dtLte/agtIds/campId/st + extra."""
    filter = CallFilterInput(
        from_=at("2025-11-20 00:00:00"),
        to=at("2025-11-23 23:59:59"),
        agent_ids=[strawberry.ID("3"), strawberry.ID("1"), strawberry.ID("2")],
        campaign_id=123,
        statuses=["missed", "answered"],
        extra={"durGte": 30, "callType": "inbound"},
    )

    assert upstream_filter(filter, KOLKATA) == {
        "dtGte": "2025-11-20 00:00:00",
        "dtLte": "2025-11-23 23:59:59",
        "agtIds": ["1", "2", "3"],
        "campId": 123,
        "st": ["answered", "missed"],
        "durGte": 30,
        "callType": "inbound",
    }


@pytest.mark.parametrize(
    "filter",
    [
        None,
        strawberry.UNSET,
        CallFilterInput(),
        CallFilterInput(
            from_=None, to=None, agent_ids=None, campaign_id=None, statuses=None, extra=None
        ),
    ],
    ids=["null", "unset", "all-unset", "all-null"],
)
def test_absent_fields_do_not_filter(filter: Any) -> None:
    """No filter, omitted fields and null fields all give an empty upstream filter."""
    assert upstream_filter(filter, KOLKATA) == {}
    assert count_query(filter, None, KOLKATA) == CountQuery("{}", None)


def test_empty_lists_are_forwarded_as_empty() -> None:
    """An empty agentIds or statuses list is forwarded as an empty list, not dropped."""
    filter = CallFilterInput(agent_ids=[], statuses=[])

    assert upstream_filter(filter, KOLKATA) == {"agtIds": [], "st": []}


def test_agent_ids_and_statuses_are_sorted_and_deduplicated() -> None:
    """agentIds and statuses are forwarded sorted with duplicates removed."""
    filter = CallFilterInput(
        agent_ids=[strawberry.ID(i) for i in ["b", "a", "b", "c", "a"]],
        statuses=["noanswer", "answered", "noanswer"],
    )

    assert upstream_filter(filter, KOLKATA) == {
        "agtIds": ["a", "b", "c"],
        "st": ["answered", "noanswer"],
    }


# upstream_filter: time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2025, 11, 20, 0, 0, 0, tzinfo=UTC), "2025-11-20 05:30:00"),
        (dt.datetime(2025, 11, 20, 9, 0, 0, tzinfo=IST), "2025-11-20 09:00:00"),
        (at("2025-11-20T12:00:00-05:00"), "2025-11-20 22:30:00"),
        (at("2025-11-20T20:00:00+00:00"), "2025-11-21 01:30:00"),
        (dt.datetime(2025, 11, 20, 0, 0, 0), "2025-11-20 00:00:00"),
    ],
    ids=["utc", "same-offset", "negative-offset", "crosses-midnight", "naive"],
)
def test_instants_are_converted_to_the_upstream_zone(value: dt.datetime, expected: str) -> None:
    """A DateTime with an offset is converted to the zone; a naive one is kept as is."""
    result = upstream_filter(CallFilterInput(from_=value, to=value), KOLKATA)

    assert result == {"dtGte": expected, "dtLte": expected}


def test_the_zone_is_the_one_given() -> None:
    """The conversion uses the zone passed in, not a fixed one."""
    value = dt.datetime(2025, 11, 20, 0, 0, 0, tzinfo=UTC)

    result = upstream_filter(CallFilterInput(from_=value), ZoneInfo("America/New_York"))

    assert result == {"dtGte": "2025-11-19 19:00:00"}


def test_fractional_seconds_round_inwards() -> None:
    """A fractional ``from`` rounds up and a fractional ``to`` rounds down to whole seconds."""
    filter = CallFilterInput(
        from_=at("2025-11-20 09:00:00.000001"), to=at("2025-11-20 17:59:59.999999")
    )

    assert upstream_filter(filter, KOLKATA) == {
        "dtGte": "2025-11-20 09:00:01",
        "dtLte": "2025-11-20 17:59:59",
    }


def test_fractional_seconds_round_after_conversion() -> None:
    """Rounding applies to the converted instant: 03:29:59.5Z becomes from 09:00:00 IST."""
    filter = CallFilterInput(from_=at("2025-11-20T03:29:59.5+00:00"))

    assert upstream_filter(filter, KOLKATA) == {"dtGte": "2025-11-20 09:00:00"}


def test_from_after_to_is_bad_user_input() -> None:
    """``from`` later than ``to`` is refused."""
    filter = CallFilterInput(from_=at("2025-11-21 00:00:00"), to=at("2025-11-20 23:59:59"))

    with pytest.raises(BadUserInputError) as caught:
        upstream_filter(filter, KOLKATA)

    assert "from" in caught.value.message


def test_from_after_to_is_judged_as_instants() -> None:
    """Order is judged after conversion: 06:00+05:30 is after 00:00Z (05:30 in Kolkata)."""
    filter = CallFilterInput(from_=at("2025-11-20T06:00:00+05:30"), to=at("2025-11-20T00:00:00Z"))

    with pytest.raises(BadUserInputError):
        upstream_filter(filter, KOLKATA)


def test_from_before_to_in_different_offsets_is_allowed() -> None:
    """10:00+05:30 is before 05:00Z (10:30 in Kolkata) even though 10 > 5 on the face of it."""
    filter = CallFilterInput(from_=at("2025-11-20T10:00:00+05:30"), to=at("2025-11-20T05:00:00Z"))

    assert upstream_filter(filter, KOLKATA) == {
        "dtGte": "2025-11-20 10:00:00",
        "dtLte": "2025-11-20 10:30:00",
    }


def test_from_equal_to_to_is_allowed() -> None:
    """``from`` equal to ``to`` is a valid one-second window."""
    filter = CallFilterInput(from_=at("2025-11-20 09:00:00"), to=at("2025-11-20 09:00:00"))

    assert upstream_filter(filter, KOLKATA) == {
        "dtGte": "2025-11-20 09:00:00",
        "dtLte": "2025-11-20 09:00:00",
    }


def test_from_equal_to_to_with_a_fraction_is_not_bad_input() -> None:
    """``from`` equal to ``to`` with fractional seconds is not refused as "from after to"."""
    instant = at("2025-11-20 09:00:00.500000")

    result = upstream_filter(CallFilterInput(from_=instant, to=instant), KOLKATA)

    assert set(result) == {"dtGte", "dtLte"}


@pytest.mark.parametrize(
    "filter",
    [
        CallFilterInput(
            from_=dt.datetime(9999, 12, 31, 23, 0, 0, tzinfo=dt.timezone(-dt.timedelta(hours=5)))
        ),
        CallFilterInput(from_=dt.datetime(9999, 12, 31, 23, 59, 59, 500000)),
        CallFilterInput(
            to=dt.datetime(1, 1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=14)))
        ),
    ],
    ids=["from-past-year-9999", "from-rounds-past-year-9999", "to-before-year-1"],
)
def test_instants_outside_the_calendar_are_bad_user_input(filter: CallFilterInput) -> None:
    """An instant that leaves years 1-9999 once converted or rounded is BAD_USER_INPUT."""
    with pytest.raises(BadUserInputError):
        upstream_filter(filter, KOLKATA)


def test_early_years_keep_four_digits() -> None:
    """Years before 1000 are still written as YYYY, as the upstream's format requires."""
    filter = CallFilterInput(from_=dt.datetime(999, 1, 2, 3, 4, 5))

    assert upstream_filter(filter, KOLKATA) == {"dtGte": "0999-01-02 03:04:05"}


# upstream_filter: extra


@pytest.mark.parametrize(
    "extra", [[1, 2], "durGte=30", 30, True], ids=["list", "str", "int", "bool"]
)
def test_extra_must_be_an_object(extra: Any) -> None:
    """``extra`` that is not a JSON object is refused."""
    with pytest.raises(BadUserInputError) as caught:
        upstream_filter(CallFilterInput(extra=extra), KOLKATA)

    assert "extra" in caught.value.message


@pytest.mark.parametrize("clash", ["dtGte", "dtLte", "agtIds", "campId", "st"])
def test_extra_may_not_set_a_modelled_key(clash: str) -> None:
    """``extra`` setting a key that a typed field models is refused, naming the key."""
    with pytest.raises(BadUserInputError) as caught:
        upstream_filter(CallFilterInput(extra={clash: "x", "durGte": 1}), KOLKATA)

    assert clash in caught.value.message


def test_extra_is_forwarded_verbatim() -> None:
    """Unmodelled keys in ``extra`` reach the upstream filter with their values untouched."""
    extra = {"durGte": 30, "custom": {"q1": ["yes", "no"]}, "flag": None}

    assert upstream_filter(CallFilterInput(extra=extra), KOLKATA) == extra


# count_query: canonical form


def test_equal_questions_give_equal_count_queries() -> None:
    """Filters differing only in list order, duplicates and key order give one CountQuery."""
    first = CallFilterInput(
        agent_ids=[strawberry.ID("2"), strawberry.ID("1"), strawberry.ID("1")],
        statuses=["b", "a"],
        extra={"x": 1, "y": {"b": 1, "a": 2}},
    )
    second = CallFilterInput(
        extra={"y": {"a": 2, "b": 1}, "x": 1},
        statuses=["a", "b", "a"],
        agent_ids=[strawberry.ID("1"), strawberry.ID("2")],
    )

    one, two = count_query(first, None, KOLKATA), count_query(second, None, KOLKATA)

    assert one == two
    assert hash(one) == hash(two)
    assert one.filter_json == '{"agtIds":["1","2"],"st":["a","b"],"x":1,"y":{"a":2,"b":1}}'


def test_different_questions_give_different_count_queries() -> None:
    """A different agent set gives a different CountQuery."""
    first = CallFilterInput(agent_ids=[strawberry.ID("1")])
    second = CallFilterInput(agent_ids=[strawberry.ID("1"), strawberry.ID("2")])

    assert count_query(first, None, KOLKATA) != count_query(second, None, KOLKATA)


def test_equal_instants_give_equal_count_queries() -> None:
    """The same instant written in two offsets gives one CountQuery."""
    first = CallFilterInput(from_=at("2025-11-20T03:30:00Z"))
    second = CallFilterInput(from_=at("2025-11-20T09:00:00+05:30"))

    assert count_query(first, None, KOLKATA) == count_query(second, None, KOLKATA)


# priorityFilter


@pytest.mark.parametrize(
    "value", ["eyJhIjoxfQ==", "e30=", "QUFB" * (MAX_PRIORITY_FILTER_CHARS // 4)]
)
def test_valid_base64_priority_filter_is_kept(value: str) -> None:
    """A standard base64 priorityFilter, up to the limit, is kept verbatim."""
    assert check_priority_filter(value) == value
    assert count_query(None, value, KOLKATA) == CountQuery("{}", value)


@pytest.mark.parametrize("value", [None, strawberry.UNSET])
def test_absent_priority_filter_is_none(value: Any) -> None:
    """An omitted or null priorityFilter is not sent."""
    assert check_priority_filter(value) is None


@pytest.mark.parametrize(
    "value",
    ["not base64!", "abc", "e30", "ab$=", "eyJhIjox fQ==", "é30="],
    ids=["punctuation", "short", "no-padding", "symbol", "space", "non-ascii"],
)
def test_invalid_priority_filter_is_bad_user_input(value: str) -> None:
    """A priorityFilter that is not standard base64 is refused."""
    with pytest.raises(BadUserInputError) as caught:
        count_query(None, value, KOLKATA)

    assert "priorityFilter" in caught.value.message


def test_too_long_priority_filter_is_bad_user_input() -> None:
    """A priorityFilter over the length limit is refused even when it is valid base64."""
    value = "QUFB" * (MAX_PRIORITY_FILTER_CHARS // 4 + 1)

    with pytest.raises(BadUserInputError) as caught:
        check_priority_filter(value)

    assert str(MAX_PRIORITY_FILTER_CHARS) in caught.value.message


# parse_datetime (gateway/types.py)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-20 09:00:00", dt.datetime(2025, 11, 20, 9, 0, 0)),
        ("2025-11-20T09:00:00+05:30", dt.datetime(2025, 11, 20, 9, 0, 0, tzinfo=IST)),
        ("2025-11-20T03:30:00Z", dt.datetime(2025, 11, 20, 3, 30, 0, tzinfo=UTC)),
    ],
)
def test_parse_datetime_accepts_iso_and_upstream_forms(text: str, expected: dt.datetime) -> None:
    """ISO 8601 with or without an offset and the upstream's own form all parse."""
    parsed = parse_datetime(text)

    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


def test_parse_datetime_keeps_the_instant() -> None:
    """09:00+05:30 and 03:30Z parse to the same instant."""
    assert parse_datetime("2025-11-20T09:00:00+05:30") == parse_datetime("2025-11-20T03:30:00Z")


@pytest.mark.parametrize(
    "value",
    ["bad", "", "2025-13-01 00:00:00", "20 Nov 2025", 42, None, 1.5, ["2025-11-20"]],
)
def test_parse_datetime_rejects_other_values(value: object) -> None:
    """Non-dates, impossible dates and non-strings are refused with a ValueError."""
    with pytest.raises(ValueError, match="DateTime must be"):
        parse_datetime(value)


def test_parse_datetime_does_not_echo_a_long_input() -> None:
    """A 1000-char value is refused with a message echoing no more than 40 chars of it."""
    value = "2025-11-20T09:00:00" + "".join(chr(ord("a") + i % 26) for i in range(981))
    assert len(value) == 1000

    with pytest.raises(ValueError, match="DateTime must be") as caught:
        parse_datetime(value)

    message = str(caught.value)
    assert not any(value[i : i + 41] in message for i in range(len(value) - 40))
    assert len(message) < 200
