"""Documents: limits checked once on the AST, each hostile shape rejected fast with one error."""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

import pytest
from graphql import get_introspection_query

from gateway.api.schema import create_schema
from gateway.documents import Documents, Limits
from gateway.errors import PARSE_FAILED, VALIDATION_FAILED

SCHEMA = create_schema()._schema


def documents(introspection: bool = True, **limits: int) -> Documents:
    """A document store with default limits overridden by ``limits``."""
    return Documents(SCHEMA, Limits(**limits), introspection=introspection)


def median_seconds(action: Callable[[], object], runs: int = 5) -> float:
    """The median wall time of ``runs`` calls of ``action`` (robust to a noisy machine)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rejected(text: str, store: Documents | None = None) -> tuple[str, list[str]]:
    """The code and messages ``text`` is rejected with (fails if it is accepted)."""
    prepared = (store if store is not None else documents()).prepare(text)
    assert prepared.document is None, "document was accepted"
    return prepared.code, [error.message for error in prepared.errors]


def test_a_plain_query_is_prepared_with_its_upstream_cost() -> None:
    """A valid query is parsed and knows how many callCount fields each operation has."""
    prepared = documents().prepare(
        "query Two { a: callCount b: callCount } query One { callCount }"
    )
    assert prepared.document is not None
    assert prepared.operations["Two"].upstream_fields == 2
    assert prepared.operations["One"].upstream_fields == 1


def test_aliases_are_counted_through_fragment_spreads() -> None:
    """Aliases inside fragments count once per spread."""
    fragment = "fragment F on Query { " + " ".join(f"a{i}: callCount" for i in range(10)) + " }"
    ok = "{ ...F ...F } " + fragment
    assert documents(max_aliases=20).prepare(ok).document is not None
    code, messages = rejected("{ ...F ...F ...F } " + fragment, documents(max_aliases=20))
    assert code == VALIDATION_FAILED
    assert messages == ["30 aliases; at most 20 are allowed"]


def test_fragment_bomb_is_counted_not_expanded() -> None:
    """Fragments that double at each of 40 levels are rejected quickly by their alias count."""
    levels = 40
    parts = ["fragment F0 on Query { x: callCount }"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    text = f"{{ ...F{levels - 1} }} " + " ".join(parts)
    # A fresh store each time: the cache must not be what makes it fast.
    assert median_seconds(lambda: documents().prepare(text)) < 0.1
    code, messages = rejected(text)
    assert code == VALIDATION_FAILED
    assert messages == [f"{2 ** (levels - 1)} aliases; at most 50 are allowed"]


@pytest.mark.parametrize(
    "text",
    [
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "{ callCount } fragment A on Query { ...A }",
    ],
)
def test_circular_fragments_are_one_error(text: str) -> None:
    """A fragment cycle, used or not, is rejected with a single error."""
    code, messages = rejected(text)
    assert code == VALIDATION_FAILED
    assert len(messages) == 1
    assert "within itself" in messages[0]


def test_directive_overloading_is_one_error() -> None:
    """Ten unknown directives on a field give one error, not ten (graphql-cop's test)."""
    code, messages = rejected("query cop { __typename " + "@aa" * 10 + " }")
    assert code == VALIDATION_FAILED
    assert messages == ["10 directives on one selection; at most 4 are allowed"]


def test_too_many_directives_in_total_are_rejected() -> None:
    """Directives spread over many fields are limited in total."""
    fields = " ".join(f"a{i}: callCount @include(if: true)" for i in range(6))
    code, messages = rejected("{ " + fields + " }", documents(max_directives=5))
    assert (code, messages) == (VALIDATION_FAILED, ["6 directives; at most 5 are allowed"])


def test_depth_is_limited_through_fragments() -> None:
    """Depth counts nested selections across fragments and inline fragments."""
    text = "{ __schema { types { ...T } } } fragment T on __Type { fields { type { name } } }"
    assert documents(max_depth=5).prepare(text).document is not None
    code, messages = rejected(text, documents(max_depth=4))
    assert (code, messages) == (VALIDATION_FAILED, ["Depth 5; at most 4 is allowed"])


def test_token_limit_rejects_giant_documents_quickly() -> None:
    """A 200 KB document of fields is rejected by the token limit in well under 100 ms."""
    text = "{ " + "__typename " * 20_000 + "}"
    assert median_seconds(lambda: documents().prepare(text)) < 0.1
    code, messages = rejected(text)
    assert code == PARSE_FAILED
    assert "2000 tokens" in messages[0]


def test_hostile_documents_do_not_grow_memory() -> None:
    """Rejecting many different hostile documents keeps memory bounded (nothing retained)."""
    store = documents()
    hostile = ["{ " + "__typename " * 2_100 + f"a{n}: __typename }}" for n in range(8)] + [
        "query cop { __typename " + "@aa" * (10 + n) + " }" for n in range(8)
    ]
    for text in hostile[:5]:
        store.prepare(text)  # warm up imports and caches of graphql-core
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(3):
        for text in hostile:
            store.prepare(text)
    gc.collect()  # parser garbage is cyclic: count what survives a collection
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # The document cache keeps small rejected documents (bounded by its maxsize), nothing more.
    assert grown < 64 * 1024, f"grew by {grown} bytes"


def test_graphiql_introspection_passes_with_introspection_on() -> None:
    """The introspection query GraphiQL sends is within the default limits."""
    assert documents().prepare(get_introspection_query(descriptions=True)).document is not None


def test_introspection_off_rejects_schema_queries_and_suggestions() -> None:
    """With introspection off, __schema is refused and errors suggest no field names."""
    store = documents(introspection=False)
    code, messages = rejected("{ __schema { queryType { name } } }", store)
    assert code == VALIDATION_FAILED
    assert "introspection" in messages[0].lower()
    _, messages = rejected("{ callCont }", store)
    assert "Did you mean" not in messages[0]
    _, messages = rejected("{ callCont }", documents(introspection=True))
    assert "Did you mean" in messages[0]


def test_circular_introspection_is_refused_even_when_introspection_is_on() -> None:
    """graphql-cop's deep fields/type/fields query is refused by the introspection depth rule."""
    text = (
        "query cop { __schema { types { fields { type { fields { type { fields "
        "{ type { name } } } } } } } } }"
    )
    code, _ = rejected(text)
    assert code == VALIDATION_FAILED


def test_prepared_documents_are_cached_and_bounded() -> None:
    """The same text is prepared once; the cache never holds more than its maxsize."""
    store = Documents(SCHEMA, Limits(), introspection=True, maxsize=3)
    first = store.prepare("{ callCount }")
    assert store.prepare("{ callCount }") is first
    for n in range(10):
        store.prepare(f"{{ a{n}: callCount }}")
    assert len(store) == 3


def test_operation_selection_errors() -> None:
    """Several operations need a name; unknown names and mutations are refused."""
    prepared = documents().prepare("query A { callCount } query B { callCount }")
    with pytest.raises(Exception, match="operationName"):
        prepared.select(None)
    with pytest.raises(Exception, match="no operation named"):
        prepared.select("C")
    assert prepared.select("B").upstream_fields == 1
