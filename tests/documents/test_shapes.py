"""Document shapes: a new document of a known shape is answered as full validation answers it.

The oracle is graphql-core itself: a fresh ``Documents`` store (which has no
shape yet, so it parses the text and runs graphql-core's ``validate`` and the
gateway's limits) and ``graphql.validate`` directly. A store that has seen a
document of the same shape must refuse with the same code and messages, and
accept with the very AST ``parse`` gives the new text (so execution, a function
of the AST, answers the same), with error locations pointing into the new text.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLError,
    Lexer,
    Node,
    Source,
    StringValueNode,
    TokenKind,
    parse,
    specified_rules,
    validate,
)
from graphql.language.print_string import print_string
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from gateway.api.schema import create_schema
from gateway.documents import Documents, Limits, Prepared
from gateway.documents.literals import split
from gateway.errors import PARSE_FAILED, VALIDATION_FAILED

SCHEMA = create_schema()._schema
SCHEMA_SDL = (Path(__file__).parents[2] / "schema.graphql").read_text(encoding="utf-8")


def store(maxsize: int = 512) -> Documents:
    """A document store with the default limits."""
    return Documents(SCHEMA, Limits(), introspection=True, maxsize=maxsize)


def outcome(prepared: Prepared) -> tuple[Any, ...]:
    """What a client can tell of a prepared document: its AST or its coded errors."""
    if prepared.document is None:
        return (
            prepared.code,
            [(error.message, error.locations) for error in prepared.errors],
        )
    return ("accepted", prepared.document.to_dict(), dict(prepared.operations))


def warmed_outcome(first: str, then: str) -> tuple[tuple[Any, ...], bool]:
    """``then`` prepared by a store that has prepared ``first``; and whether its shape served."""
    warm = store()
    assert warm.prepare(first).document is not None, "the first document must be valid"
    texts = len(warm)
    prepared = warm.prepare(then)
    return outcome(prepared), len(warm) == texts  # the shape path adds no text entry


def check_as_full_validation(first: str, then: str) -> bool:
    """``then`` after ``first`` is answered as a fresh store and graphql-core answer it."""
    fast, shaped = warmed_outcome(first, then)
    full = outcome(store().prepare(then))
    assert fast == full
    try:
        verdict = validate(SCHEMA, parse(then), specified_rules) == []
    except GraphQLError:
        verdict = False
    assert (fast[0] == "accepted") == verdict
    return shaped


# --- a corpus: invalid (and valid) variants of valid shapes ---------------------------------

SERIES = "callCountSeries(filter: {{from: {0}, to: {1}}}, interval: DAY) {{ count }}"

#: (a valid document, a variant with the same shape, the code the variant gets or None).
SAME_SHAPE = [
    # wrong literal values for the type
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 2}) }", None),
    (
        "{ callCount(filter: {campaignId: 1}) }",
        "{ callCount(filter: {campaignId: 2147483648}) }",
        VALIDATION_FAILED,
    ),
    (
        "{ callCount(filter: {campaignId: 1}) }",
        "{ callCount(filter: {campaignId: -2147483649}) }",
        VALIDATION_FAILED,
    ),
    (
        '{ callCount(filter: {from: "2025-11-20 09:00:00"}) }',
        '{ callCount(filter: {from: "20 November"}) }',
        VALIDATION_FAILED,
    ),
    (
        '{ callCount(filter: {from: "2025-11-20 09:00:00"}) }',
        '{ callCount(filter: {from: ""}) }',
        VALIDATION_FAILED,
    ),
    (
        "{ " + SERIES.format('"2025-01-01"', '"2025-01-03"') + " }",
        "{ " + SERIES.format('"2025-01-01"', '"yesterday"') + " }",
        VALIDATION_FAILED,
    ),
    (
        '{ callCount(filter: {agentIds: ["a", 1]}) }',
        '{ callCount(filter: {agentIds: ["", 99999999999999999999]}) }',
        None,
    ),
    (
        "{ callCount(filter: {extra: {minDuration: 1}}) }",
        "{ callCount(filter: {extra: {minDuration: " + "9" * 5000 + "}}) }",
        None,  # JSON takes it; the resolver refuses it (too long) at execution
    ),
    (
        "{ callCount(filter: {extra: {minDuration: 1.5}}) }",
        "{ callCount(filter: {extra: {minDuration: 1e400}}) }",
        None,  # JSON takes it; the resolver refuses it (non-finite) at execution
    ),
    # many values, every one wrong: graphql-core stops at ten errors
    (
        "{ " + " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(12)) + " }",
        "{ "
        + " ".join(f"a{i}: callCount(filter: {{campaignId: {2**40 + i}}})" for i in range(12))
        + " }",
        VALIDATION_FAILED,
    ),
    # variables mixed with literals, and literals in variable defaults
    (
        "query($f: CallFilterInput) { a: callCount(filter: $f) b: callCount(filter: {campaignId: 5,"
        ' statuses: ["answered"]}) }',
        "query($f: CallFilterInput) { a: callCount(filter: $f) b: callCount(filter: {campaignId: 6,"
        ' statuses: ["missed"]}) }',
        None,
    ),
    (
        "query($c: Int = 5) { a: callCount(filter: {campaignId: $c}) b: callCount(filter:"
        " {campaignId: 7}) }",
        "query($c: Int = 5000000000) { a: callCount(filter: {campaignId: $c}) b: callCount(filter:"
        " {campaignId: 7}) }",
        VALIDATION_FAILED,
    ),
    (
        'query($f: CallFilterInput = {campaignId: 1, from: "2025-01-01"})'
        " { callCount(filter: $f) }",
        'query($f: CallFilterInput = {campaignId: 1, from: "never"}) { callCount(filter: $f) }',
        VALIDATION_FAILED,
    ),
    # literals in fragments, inline fragments and directives' company
    (
        "{ ...F } fragment F on Query { callCount(filter: {campaignId: 1}) @include(if: true) }",
        "{ ...F } fragment F on Query { callCount(filter: {campaignId: 3000000000}) @include(if:"
        " true) }",
        VALIDATION_FAILED,
    ),
    (
        '{ ... on Query { x: callCount(priorityFilter: "QUJD") } }',
        '{ ... on Query { x: callCount(priorityFilter: "not base64 but a String") } }',
        None,  # a String at validation; the resolver checks base64 at execution
    ),
    # the same response name twice: arguments are compared, so values decide
    (
        "{ a: callCount(filter: {campaignId: 1}) a: callCount(filter: {campaignId: 1}) }",
        "{ a: callCount(filter: {campaignId: 1}) a: callCount(filter: {campaignId: 2}) }",
        VALIDATION_FAILED,
    ),
    (
        "{ callCount(filter: {campaignId: 1}) ...F } fragment F on Query"
        " { callCount(filter: {campaignId: 1}) }",
        "{ callCount(filter: {campaignId: 1}) ...F } fragment F on Query"
        " { callCount(filter: {campaignId: 2}) }",
        VALIDATION_FAILED,
    ),
    (
        '{ x: callCountSeries(filter: {from: "2025-01-01", to: "2025-01-02"}, interval: DAY)'
        ' { count } x: callCountSeries(filter: {from: "2025-01-01", to: "2025-01-02"},'
        " interval: DAY) { from } }",
        '{ x: callCountSeries(filter: {from: "2025-01-01", to: "2025-01-02"}, interval: DAY)'
        ' { count } x: callCountSeries(filter: {from: "2025-01-01", to: "2025-01-09"},'
        " interval: DAY) { from } }",
        VALIDATION_FAILED,
    ),
    # lexing at the edges: no spaces, negative zero, exponents, commas, comments
    ("{callCount(filter:{campaignId:1})}", "{callCount(filter:{campaignId:-0})}", None),
    (
        '{ callCount(filter: {agentIds: [1,2,3]}) } # 4 5 "6"',
        '{ callCount(filter: {agentIds: [10,-20,30]}) } # 4 5 "6"',
        None,
    ),
    (
        '{ callCount(filter: {statuses: "answered"}) }',
        '{ callCount(filter: {statuses: "x"}) }',
        None,
    ),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: "") }', None),
]

#: (a valid document, a variant whose shape differs: the kind, a name or the structure).
OTHER_SHAPE = [
    ("{ callCount(filter: {campaignId: 1}) }", '{ callCount(filter: {campaignId: "1"}) }'),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 1.0}) }"),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 1, nope: 2}) }"),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaign: 1}) }"),
    (
        "{ callCount(filter: {campaignId: 1}) }",
        "{ callCount(filter: {campaignId: 1, campaignId: 2}) }",
    ),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: null}) }"),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 01}) }"),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 1a}) }"),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 1.}) }"),
    (
        "{ " + SERIES.format('"2025-01-01"', '"2025-01-03"') + " }",
        "{ " + SERIES.format('"2025-01-01"', '"2025-01-03"').replace("DAY", "DAYS") + " }",
    ),
    (
        "{ " + SERIES.format('"2025-01-01"', '"2025-01-03"') + " }",
        "{ " + SERIES.format('"2025-01-01"', '"2025-01-03"').replace("DAY", '"DAY"') + " }",
    ),
    (
        "{ " + SERIES.format('"2025-01-01"', '"2025-01-03"') + " }",
        "{ callCountSeries(filter: null, interval: DAY) { count } }",
    ),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: "QU\\u004aD") }'),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: """QUJD""") }'),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: """") }'),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: "QU\nJD") }'),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: "QUJD) }'),
    ('{ callCount(priorityFilter: "QUJD") }', '{ callCount(priorityFilter: "QUJD"1) }'),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 1 -2}) }"),
    ("{ callCount(filter: {campaignId: 1}) }", "{ callCount(filter: {campaignId: 1-2}) }"),
]


@pytest.mark.parametrize(("first", "then", "code"), SAME_SHAPE)
def test_a_variant_of_a_known_shape_is_answered_from_it_as_full_validation_would(
    first: str, then: str, code: str | None
) -> None:
    """The same shape with other values is served by the shape, refused or accepted alike."""
    known, variant = split(first), split(then)
    assert known is not None
    assert variant is not None
    assert known.key == variant.key
    fast, _ = warmed_outcome(first, then)
    assert fast[0] == (code or "accepted"), fast
    shaped = check_as_full_validation(first, then)
    duplicates = first.count(" a: ") > 1 or "...F" in first or " x: " in first[10:]
    assert shaped or duplicates, "the known shape did not serve its variant"


def test_errors_in_one_input_object_come_in_the_types_field_order() -> None:
    """Two bad values in one filter, ``to`` before ``from`` in the text: the shape reports
    them in CallFilterInput's field order, as graphql-core does (found by Hypothesis)."""
    text = "{ callCount(filter: {to: %s, statuses: null, from: %s}) }"
    first = text % ('"2025-11-20 09:00:00"', '"2025-11-19 09:00:00"')

    fast, shaped = warmed_outcome(first, text % ('""', '""'))

    assert shaped
    assert [location[0].column for _, location in fast[1]] == [52, 26]  # from, then to
    assert check_as_full_validation(first, text % ('""', '""'))


@pytest.mark.parametrize(("first", "then"), OTHER_SHAPE)
def test_a_variant_of_another_shape_is_validated_in_full(first: str, then: str) -> None:
    """A different kind of literal, a name or the structure: another shape, validated in full."""
    known, variant = split(first), split(then)
    assert known is not None
    assert variant is None or variant.key != known.key
    assert not check_as_full_validation(first, then)


def test_conflicting_aliases_are_never_served_from_a_shape() -> None:
    """A shape with one response name twice is not kept: its variants are validated in full."""
    warm = store()
    same = "{ a: callCount(filter: {campaignId: 1}) a: callCount(filter: {campaignId: 1}) }"
    assert warm.prepare(same).document is not None
    assert warm.shapes == 1  # remembered as "no usable shape"
    differ = "{ a: callCount(filter: {campaignId: 1}) a: callCount(filter: {campaignId: 9}) }"
    prepared = warm.prepare(differ)
    assert prepared.code == VALIDATION_FAILED
    assert "conflict" in prepared.errors[0].message
    assert len(warm) == 2  # validated in full (and so remembered by its text)


def test_a_refused_first_document_decides_nothing_for_its_shape() -> None:
    """A shape is only kept once a document of it passed: a refused one leaves no shape."""
    warm = store()
    assert warm.prepare("{ callCount(filter: {campaignId: 9999999999}) }").document is None
    assert warm.shapes == 0
    assert warm.prepare("{ callCount(filter: {campaignId: 9}) }").document is not None
    assert warm.shapes == 1


def _over_aliases(n: int) -> str:
    return (
        "{ "
        + " ".join(f"a{i}: callCount(filter: {{campaignId: {n + i}}})" for i in range(51))
        + " }"
    )


def _over_depth(n: int) -> str:
    return f'{{ __type(name: "T{n}") {{ ' + "ofType { " * 14 + "name" + " }" * 15 + " }"


def _over_directives(n: int) -> str:
    directive = "@include(if: true) @skip(if: false)"
    fields = " ".join(
        f"a{i}: callCount(filter: {{campaignId: {n + i}}}) {directive}" for i in range(26)
    )
    return "{ " + fields + " }"


def _over_tokens(n: int) -> str:
    return "{ callCount(filter: {agentIds: [" + ", ".join(str(n + i) for i in range(2000)) + "]}) }"


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (_over_aliases, VALIDATION_FAILED, "51 aliases; at most 50 are allowed"),
        (_over_depth, VALIDATION_FAILED, "Depth 16; at most 15 is allowed"),
        (_over_directives, VALIDATION_FAILED, "52 directives; at most 50 are allowed"),
        (_over_tokens, PARSE_FAILED, "2000 tokens"),
    ],
)
def test_the_limits_hold_for_new_documents_of_every_shape(
    make: Callable[[int], str], code: str, message: str
) -> None:
    """A document past a limit is refused with its one error for every new set of values."""
    warm = store()
    for n in (0, 100_000, 200_000):
        prepared = warm.prepare(make(n))
        assert prepared.code == code
        assert len(prepared.errors) == 1
        assert message in prepared.errors[0].message
    assert warm.shapes == 0  # refused documents leave no shape behind


def test_the_shape_cache_is_bounded_like_the_text_cache() -> None:
    """A stream of new shapes keeps at most ``maxsize`` of them (and of texts)."""
    warm = store(maxsize=8)
    for n in range(40):
        assert warm.prepare(f"{{ a{n}: callCount(filter: {{campaignId: {n}}}) }}").document
    assert warm.shapes == 8
    assert len(warm) == 8


# --- locations --------------------------------------------------------------------------------


def nodes_with_locations(node: Any) -> Iterator[Node]:
    """Every AST node under ``node`` (itself included) in document order."""
    if isinstance(node, Node):
        yield node
        for key in node.keys:
            if key != "loc":
                yield from nodes_with_locations(getattr(node, key))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from nodes_with_locations(item)


def test_error_locations_point_into_the_new_text() -> None:
    """An error on any node of a served document is located where parse puts that node."""
    first = (
        "query Q($f: CallFilterInput = {campaignId: 1}) {\n  a: callCount(filter: $f)\n"
        '  b: callCount(filter: {campaignId: 2, from: "2025-01-01"}) c: callCount\n'
        '  d: callCountSeries(filter: {from: "2025-01-01", to: "2025-01-02"}, interval: DAY)'
        " { count }\n}"
    )
    then = (
        "query Q($f: CallFilterInput = {campaignId: 123456}) {\n  a: callCount(filter: $f)\n"
        '  b: callCount(filter: {campaignId: -7, from: "2025-01-01T10:00:00+05:30"}) c: callCount'
        '\n  d: callCountSeries(filter: {from: "2025-01-01 00:00:00", to: "2025-02-02"},'
        " interval: DAY) { count }\n}"
    )
    warm = store()
    warm.prepare(first)
    served = warm.prepare(then)
    assert served.document is not None
    assert served.relocation is not None
    expected = parse(then)
    pairs = list(
        zip(nodes_with_locations(served.document), nodes_with_locations(expected), strict=True)
    )
    assert len(pairs) > 40
    errors = [GraphQLError("x", nodes=[ours]) for ours, _ in pairs]
    served.relocate(errors)
    for error, (_, theirs) in zip(errors, pairs, strict=True):
        assert error.locations == GraphQLError("x", nodes=[theirs]).locations, theirs


# --- generated documents ----------------------------------------------------------------------

LITERALS = {TokenKind.INT, TokenKind.FLOAT, TokenKind.STRING}
SAFE_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters='"\\\n\r'), max_size=12
)
NEW_INTS = st.integers(-(2**33), 2**33).map(str) | st.sampled_from(
    ["0", "-0", str(2**31 - 1), str(2**31), str(-(2**31)), str(-(2**31) - 1), "9" * 5000]
)
NEW_FLOATS = st.sampled_from(["0.0", "-1.5", "1e400", "2E-3", "1.0e+10"]) | st.floats(
    allow_nan=False, allow_infinity=False
).map(lambda number: repr(number) if "e" in repr(number) or "." in repr(number) else "1.5")
NEW_STRINGS = (
    SAFE_TEXT.map(lambda text: f'"{text}"')
    | st.sampled_from(['""', '"2025-11-20 09:00:00"', '"2025-13-40"', '"QUJD"', '"Europe/Berlin"'])
    | st.text(max_size=6).map(print_string)
)
BY_KIND = {TokenKind.INT: NEW_INTS, TokenKind.FLOAT: NEW_FLOATS, TokenKind.STRING: NEW_STRINGS}
ANY_LITERAL = NEW_INTS | NEW_FLOATS | NEW_STRINGS | st.sampled_from(["null", "[]", "{}", "X"])
#: Valid DateTime literals, so that generated documents validate and have shapes.
DATETIMES = st.sampled_from(["2025-11-20 09:00:00", "2025-11-20T09:00:00+05:30", "2025-01-01"]).map(
    lambda text: StringValueNode(value=text)
)
VALID_DOCUMENTS = from_schema(SCHEMA_SDL, custom_scalars={"DateTime": DATETIMES})


def literal_tokens(text: str) -> list[tuple[int, int, Any]]:
    """Start, end and kind of every Int, Float and String token, by graphql-core's lexer."""
    lexer = Lexer(Source(text))
    out = []
    token = lexer.advance()
    while token.kind is not TokenKind.EOF:
        if token.kind in LITERALS:
            out.append((token.start, token.end, token.kind))
        token = lexer.advance()
    return out


@st.composite
def documents_and_variants(draw: st.DrawFn, same_kind: bool) -> tuple[str, str]:
    """A valid generated document, and it with some literal tokens replaced."""
    first = draw(VALID_DOCUMENTS)
    tokens = literal_tokens(first)
    then, end = [], 0
    for start, stop, kind in tokens:
        then.append(first[end:start])
        replace = draw(st.booleans())
        strategy = BY_KIND[kind] if same_kind else ANY_LITERAL
        then.append(draw(strategy) if replace else first[start:stop])
        end = stop
    then.append(first[end:])
    return first, "".join(then)


GENERATED = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@GENERATED
@given(pair=documents_and_variants(same_kind=True))
def test_generated_variants_of_the_same_kinds_answer_as_full_validation(
    pair: tuple[str, str],
) -> None:
    """Generated documents with new values of the same kinds: the shape answers as in full."""
    first, then = pair
    shaped = check_as_full_validation(first, then)
    event("served by its shape" if shaped else "validated in full")


@GENERATED
@given(pair=documents_and_variants(same_kind=False))
def test_generated_variants_of_any_kind_answer_as_full_validation(pair: tuple[str, str]) -> None:
    """Generated documents with any literals in their place: the answer is full validation's."""
    first, then = pair
    check_as_full_validation(first, then)


# --- memory -----------------------------------------------------------------------------------


def test_a_stream_of_new_documents_keeps_memory_bounded() -> None:
    """Thousands of new documents, some of new shapes, leave the store's memory at its bound."""
    warm = store(maxsize=64)

    def feed(start: int, count: int) -> None:
        for n in range(start, start + count):
            shape = f"s{n}: " if n % 10 == 0 else ""  # every tenth a new shape
            text = f'{{ {shape}callCount(filter: {{campaignId: {n}, statuses: ["s{n}"]}}) }}'
            assert warm.prepare(text).document is not None

    tracemalloc.start()
    # Both caches full, and every entry made while traced (an evicted entry from before
    # would free memory tracemalloc never counted).
    feed(10_000, 1_000)
    assert warm.shapes == 64
    assert len(warm) == 64
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    feed(20_000, 3_000)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert warm.shapes == 64
    assert len(warm) == 64
    assert grown < 64 * 1024, f"grew by {grown} bytes"
