"""Fuzzing the running gateway: whatever a client sends, the answer keeps the error contract.

Documents come from ``schema.graphql`` through hypothesis-graphql (valid ones, its
negative mode, and our own mutations of valid ones), and bodies from plain
Hypothesis strategies (bytes, JSON of any shape and depth, batches, variables,
content types, header values). Every response must be below 500, JSON, an object
with ``data`` and/or ``errors`` (a list of them for a batch), and every error must
carry a code from the closed set and a boolean ``retryable``. An
``INTERNAL_SERVER_ERROR`` is a bug here: none of these inputs is unexpected.

Each test runs one gateway (served by uvicorn over loopback) for all its examples,
with the rate limiter off, against the shared simulator. The runs are derandomized,
so CI sees the same inputs every time.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from conftest import ACME, EXPIRED, GLOBEX, VIEWER, Gateway, headers_for
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis_graphql import Mode, from_schema, nodes
from support.servers import run_app

from gateway.config import Settings
from gateway.errors import CODES as ERROR_CODES
from gateway.server import create_app
from gateway.simulator import Simulator

SCHEMA_SDL = (Path(__file__).parents[2] / "schema.graphql").read_text(encoding="utf-8")

#: The closed set of ``extensions.code`` values; tests/test_errors.py pins it to the README.
CODES = frozenset(ERROR_CODES)
#: The codes whose errors are retryable (README, "Errors"); every other code is not.
RETRYABLE = frozenset(
    {"UPSTREAM_ERROR", "UPSTREAM_UNAVAILABLE", "UPSTREAM_TIMEOUT", "RATE_LIMITED"}
)
DOCUMENT_CODES = frozenset({"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"})
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
JSON_TYPE = {"Content-Type": "application/json"}
COUNT_WITH_FILTER = (
    "query($f: CallFilterInput, $p: String) { callCount(filter: $f, priorityFilter: $p) }"
)

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    # No explain phase: it re-runs failing examples many times over HTTP to little gain.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
    ],
)


# --- the contract ----------------------------------------------------------------------------


def check_graphql_body(body: object) -> dict[str, Any]:
    """``body`` is one GraphQL response: ``data`` and/or ``errors``, every error coded."""
    assert isinstance(body, dict), body
    assert {"data", "errors"} & body.keys(), body
    assert body.keys() <= {"data", "errors", "extensions"}, body
    if "data" in body:
        assert body["data"] is None or isinstance(body["data"], dict), body
    errors = body.get("errors", [])
    assert isinstance(errors, list), body
    assert "errors" not in body or errors, "an empty `errors` list"
    for error in errors:
        assert isinstance(error, dict), error
        assert isinstance(error.get("message"), str), error
        extensions = error.get("extensions")
        assert isinstance(extensions, dict), error
        assert extensions.get("code") in CODES, error
        assert isinstance(extensions.get("retryable"), bool), error
        assert extensions["retryable"] == (extensions["code"] in RETRYABLE), error
        assert extensions["code"] != "INTERNAL_SERVER_ERROR", f"internal error on input: {error}"
    if codes_of(body) & DOCUMENT_CODES:
        assert "data" not in body, body  # rejected documents never begin execution
    return body


def record(text: str) -> None:
    """Add ``text`` to the report of a failing example (outside Hypothesis, drop it)."""
    # A plain test has no notes; its assertion messages carry the body.
    with contextlib.suppress(InvalidArgument):
        note(text)


def tally(status: int, bodies: list[dict[str, Any]]) -> None:
    """Count the outcome for ``--hypothesis-show-statistics`` (outside Hypothesis, drop it)."""
    codes = sorted({code for body in bodies for code in codes_of(body)})
    with contextlib.suppress(InvalidArgument):
        event(f"HTTP {status}: {', '.join(codes) or 'ok'}")


def check_response(response: httpx.Response, *, batch_of: int | None = None) -> Any:
    """``response`` keeps the contract; returns its parsed body (a list for an answered batch)."""
    record(f"response: {response.status_code} {response.text[:2000]}")
    assert response.status_code < 500, response.text
    assert response.headers.get("content-type", "").startswith("application/json"), response
    body = json.loads(response.content, parse_constant=_not_json)
    assert SAFE_REQUEST_ID.fullmatch(response.headers.get("x-request-id", "")), response.headers
    if isinstance(body, list):
        assert batch_of is not None, "a list answer to a single operation"
        assert response.status_code == 200, body
        assert len(body) == batch_of, body
        for item in body:
            check_graphql_body(item)
        tally(response.status_code, body)
        return body
    check_graphql_body(body)
    tally(response.status_code, [body])
    if response.status_code != 200:
        assert "data" not in body, body  # rejected before execution
    return body


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} in a response: not JSON")


def codes_of(body: dict[str, Any]) -> set[str]:
    """The set of error codes in one GraphQL response body."""
    return {error["extensions"]["code"] for error in body.get("errors", [])}


def post(
    gateway: Gateway, content: bytes | str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST ``content`` as-is to ``/graphql`` (JSON content type unless ``headers`` say else)."""
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    all_headers = {**JSON_TYPE, **(headers or {})}
    record(f"request headers: {all_headers!r}")
    record(f"request body ({len(data)} bytes): {data[:2000]!r}")
    return gateway.client.post(f"{gateway.url}/graphql", content=data, headers=all_headers)


def batch_size(content: bytes | str) -> int | None:
    """How many operations ``content`` holds if it reads as a JSON array, else None."""
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return len(value) if isinstance(value, list) else None


def dumps(value: object) -> str:
    """JSON text for ``value``, as a lenient client writes it (NaN and Infinity included)."""
    return json.dumps(value, allow_nan=True)


@pytest.fixture
def fuzz_gateway(start_gateway: Callable[..., Gateway], sim: Simulator) -> Gateway:
    """One gateway for all examples of a test, the rate limiter off."""
    return start_gateway(rate_limit=0)


@pytest.fixture(scope="module")
def shared_gateway(upstream_url: str) -> Iterator[Gateway]:
    """One gateway for the fixed cases below, which would spend most time starting gateways."""
    settings = Settings(upstream_url=upstream_url, rate_limit=0)
    with httpx.Client(timeout=30) as client, run_app(create_app(settings)) as url:
        yield Gateway(url, client)


@pytest.fixture
def get_gateway(start_gateway: Callable[..., Gateway], sim: Simulator) -> Gateway:
    """Like ``fuzz_gateway``, with queries over GET allowed."""
    return start_gateway(rate_limit=0, allow_get=True)


# --- strategies: credentials and headers ------------------------------------------------------

SSID, USER_ID, TOKEN = "X-DeepCall-SSID", "X-DeepCall-User-Id", "X-DeepCall-Token"

#: Mostly the demo credential, so documents reach the upstream; sometimes bad or missing ones.
CREDENTIALS = st.sampled_from(
    [
        *[headers_for(ACME)] * 6,
        headers_for(GLOBEX),
        headers_for(VIEWER),
        headers_for(EXPIRED),
        {},
        {SSID: "no-such-session"},
        {SSID: ""},
        {USER_ID: "2001"},
        {TOKEN: "demo-token-globex"},
        {**headers_for(ACME), **headers_for(GLOBEX)},
        {USER_ID: "2001", TOKEN: "wrong-token"},
    ]
)
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
# h11 refuses leading and trailing whitespace in a header value, so neither is sent.
HEADER_VALUES = st.text(PRINTABLE, max_size=600).map(str.strip) | st.sampled_from(
    ["demo-ssid-acme", "2001", "demo-token-globex", "", "x" * 513]
)


# --- strategies: GraphQL values for the custom scalars -----------------------------------------


def _object_node(fields: dict[str, graphql.ValueNode]) -> graphql.ObjectValueNode:
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)
            for name, value in fields.items()
        ]
    )


MODELLED_KEYS = ["dtGte", "dtLte", "agtIds", "campId", "st"]
FIELD_NAMES = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,8}", fullmatch=True) | st.sampled_from(
    [*MODELLED_KEYS, "callType", "minDuration", "maxDuration", "customAnalysis"]
)
ZONES = st.none() | st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
INSTANTS = st.datetimes(timezones=ZONES) | st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=ZONES
)
#: Text every DateTime accepts: ISO 8601 with or without an offset, or the upstream's form.
DATETIME_TEXT = INSTANTS.map(dt.datetime.isoformat) | INSTANTS.map(
    lambda value: value.replace(microsecond=0, tzinfo=None).isoformat(sep=" ")
)
JSON_LEAF_NODES = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers(-(2**70), 2**70).map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.text(max_size=20).map(nodes.String),
)
JSON_NODES = st.recursive(
    JSON_LEAF_NODES,
    lambda inner: (
        st.lists(inner, max_size=4).map(nodes.List)
        | st.dictionaries(FIELD_NAMES, inner, max_size=4).map(_object_node)
    ),
    max_leaves=12,
)
#: Literals a JSON scalar may be given that are numbers no JSON document can carry.
NON_FINITE_LITERALS = st.sampled_from(
    [
        graphql.FloatValueNode(value="1e400"),
        graphql.FloatValueNode(value="-1e400"),
        graphql.IntValueNode(value="9" * 5000),
    ]
)
VALID_SCALARS = {
    "DateTime": DATETIME_TEXT.map(nodes.String),
    "JSON": st.dictionaries(FIELD_NAMES, JSON_NODES, max_size=5).map(_object_node) | JSON_NODES,
}
#: Scalars a client gets wrong: any text as a DateTime, numbers no JSON can hold.
LOOSE_SCALARS = {
    "DateTime": (DATETIME_TEXT | st.text(max_size=70)).map(nodes.String)
    | JSON_LEAF_NODES
    | JSON_NODES,
    "JSON": JSON_NODES
    | NON_FINITE_LITERALS
    | st.dictionaries(FIELD_NAMES, JSON_NODES | NON_FINITE_LITERALS, max_size=4).map(_object_node),
}


# --- strategies: documents --------------------------------------------------------------------


def _as_document(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


POSITIVE_ASTS = from_schema(SCHEMA_SDL, custom_scalars=VALID_SCALARS, print_ast=_as_document)


@st.composite
def positive_documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A valid query of one to three generated root fields, and its response keys.

    One generated document is sent as it is; several are merged under aliases (the
    gateway's batch), sometimes with an operation name.
    """
    asts = draw(st.lists(POSITIVE_ASTS, min_size=1, max_size=3))
    fields = [
        selection
        for ast in asts
        for definition in ast.definitions
        if isinstance(definition, graphql.OperationDefinitionNode)
        for selection in definition.selection_set.selections
        if isinstance(selection, graphql.FieldNode)
    ]
    if len(fields) == 1:
        return graphql.print_ast(asts[0]), [fields[0].name.value]
    aliased = [
        graphql.FieldNode(
            alias=graphql.NameNode(value=f"a{index}"),
            name=field.name,
            arguments=field.arguments,
            directives=(),
            selection_set=field.selection_set,  # callCountSeries needs its subfields
        )
        for index, field in enumerate(fields)
    ]
    name = draw(st.none() | st.sampled_from(["Counts", "dashboard", "_q1"]))
    operation = graphql.OperationDefinitionNode(
        operation=graphql.OperationType.QUERY,
        name=graphql.NameNode(value=name) if name else None,
        variable_definitions=(),
        directives=(),
        selection_set=graphql.SelectionSetNode(selections=tuple(aliased)),
    )
    document = graphql.DocumentNode(definitions=(operation,))
    return graphql.print_ast(document), [f"a{index}" for index in range(len(aliased))]


POSITIVE_TEXT = positive_documents().map(lambda pair: pair[0])

#: Pieces of GraphQL syntax, so mutations and soups reach past the lexer.
TOKENS = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "$f",
    "=",
    "!",
    "...",
    "@skip(if: true)",
    "@include(if: $f)",
    "@deprecated",
    '"x"',
    '"""block"""',
    "#",
    "1",
    "-0.5e9",
    "null",
    "true",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "F",
    "on",
    "Query",
    "CallFilterInput",
    "callCount",
    "filter",
    "priorityFilter",
    "a:",
    "extra",
    "from",
    "campaignId",
    "__typename",
    "__schema { types { name } }",
    '__type(name: "Query") { fields { name } }',
    "\\u0000",
    "\u00e9",
]


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """A valid document with a few edits: deletions, insertions, swaps and duplications."""
    text = draw(POSITIVE_TEXT)
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        insert = draw(st.sampled_from(TOKENS) | st.text(max_size=4))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        if edit == "delete":
            text = text[:start] + text[end:]
        elif edit == "insert":
            text = text[:start] + insert + text[start:]
        elif edit == "replace":
            text = text[:start] + insert + text[end:]
        else:
            text = text[:end] + text[start:end] + text[end:]
    return text


def _aliases(count: int) -> str:
    return (
        "{ "
        + " ".join(f"a{i}: callCount(filter: {{campaignId: {i}}})" for i in range(count))
        + " }"
    )


#: Documents built to hit each limit and each rejection path at least once.
HOSTILE_DOCUMENTS = [
    _aliases(51),
    _aliases(50),
    "{ " + " ".join(f"a{i}: callCount" for i in range(400)) + " }",
    "{ __schema { " + "types { fields { type { " * 8 + "name" + " } } }" * 8 + " } }",
    "{ " + "__typename @skip(if: false) " * 30 + "callCount }",
    "{ callCount" + " @skip(if: false)" * 5 + " }",
    "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
    "{ ...F0 } "
    + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(30))
    + " fragment F30 on Query { callCount }",
    "query A { callCount } query B { callCount }",
    "query A { callCount } query A { callCount }",
    'mutation { callCount(priorityFilter: "") }',
    "subscription { callCount }",
    "fragment F on Query { callCount }",
    "query($f: CallFilterInput = {extra: 1e400}) { callCount(filter: $f) }",
    "query($f: CallFilterInput!) { callCount(filter: $f) }",
    "query($p: String) { callCount(priorityFilter: $q) }",
    '{ callCount(filter: {from: "2026-01-02", to: "2026-01-01"}) }',
    '{ callCount(filter: {from: "9999-12-31T23:59:59.5-12:00"}) }',
    '{ callCount(filter: {from: "0001-01-01T00:00:00+14:00"}) }',
    '{ callCount(filter: {from: "0001-01-01 00:00:00.000001"}) }',
    '{ callCount(filter: {to: "9999-12-31T23:59:59.999999"}) }',
    "{ callCount(filter: {extra: {dtGte: 1, st: 2}}) }",
    "{ callCount(filter: {extra: [1, 2]}) }",
    '{ callCount(priorityFilter: "not base64!") }',
    '{ callCount(priorityFilter: "' + "QUJD" * 2100 + '") }',
    "{ callCount(filter: {campaignId: 2147483648}) }",
    "{ callCount(filter: {agentIds: [" + ", ".join(str(i) for i in range(1500)) + "]}) }",
    "{ callCount { x } }",
    "{ nope }",
    "{ callCount(nope: 1) }",
    "{ __typename }",
    '{ __type(name: "CallFilterInput") { inputFields { name } } }',
    "{ a: callCount b: callCount(filter: null) a: callCount(filter: {campaignId: 1}) }",
    "{" * 3000,
    "{ callCount(filter: {extra: " + "[" * 900 + "]" * 900 + "}) }",
    "{ callCount(filter: {extra: " + "{a: " * 500 + "1" + "}" * 500 + "}) }",
    "# only a comment",
    "\ufeff{ callCount }",
    "{ callCount }\x00",
    '"""unterminated',
]

NEGATIVE_DOCUMENTS = st.one_of(
    from_schema(SCHEMA_SDL, custom_scalars=LOOSE_SCALARS, mode=Mode.NEGATIVE),
    from_schema(SCHEMA_SDL, custom_scalars=LOOSE_SCALARS),
    mutated_documents(),
    st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join),
    st.text(),
    st.sampled_from(HOSTILE_DOCUMENTS),
)
OPERATION_NAMES = st.none() | st.sampled_from(["Counts", "A", "B", ""]) | st.text(max_size=8)


# --- strategies: JSON -------------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and ±Infinity too: Python's json module reads them
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5)
FILTER_VARIABLES = st.fixed_dictionaries(
    {},
    optional={
        "from": DATETIME_TEXT | JSON_VALUES,
        "to": DATETIME_TEXT | JSON_VALUES,
        "agentIds": st.lists(st.text(max_size=6) | st.integers(), max_size=6) | JSON_VALUES,
        "campaignId": st.integers(-(2**40), 2**40) | JSON_VALUES,
        "statuses": st.lists(st.sampled_from(["answered", "missed", "busy", ""]), max_size=4)
        | JSON_VALUES,
        "extra": JSON_OBJECTS | JSON_VALUES,
        "unknownField": JSON_VALUES,
    },
)
PRIORITY_FILTERS = (
    st.binary(max_size=30).map(lambda raw: base64.b64encode(raw).decode()) | JSON_VALUES
)
VARIABLES = (
    st.fixed_dictionaries({}, optional={"f": FILTER_VARIABLES | JSON_VALUES, "p": PRIORITY_FILTERS})
    | JSON_OBJECTS
)
OPERATIONS = st.fixed_dictionaries(
    {},
    optional={
        "query": POSITIVE_TEXT | NEGATIVE_DOCUMENTS | JSON_VALUES,
        "variables": st.none() | VARIABLES | JSON_VALUES,
        "operationName": OPERATION_NAMES | JSON_VALUES,
        "extensions": JSON_VALUES,
    },
)


# --- the fuzz tests ---------------------------------------------------------------------------


@settings(FUZZ, max_examples=1000)
@given(document=positive_documents(), headers=CREDENTIALS)
def test_generated_queries_keep_the_contract(
    fuzz_gateway: Gateway, document: tuple[str, list[str]], headers: dict[str, str]
) -> None:
    """Valid generated queries validate, answer every alias with a count or a coded error."""
    text, keys = document
    body = check_response(post(fuzz_gateway, dumps({"query": text}), headers))
    assert not codes_of(body) & DOCUMENT_CODES, body
    assert isinstance(body["data"], dict), body
    assert sorted(body["data"]) == sorted(keys), body
    paths = [error.get("path", ["(no path)"]) for error in body.get("errors", [])]
    failed = {path[0] for path in paths if len(path) == 1}
    for key, value in body["data"].items():
        assert (value is None) == (key in failed), body
        if isinstance(value, list):  # a series: buckets with a count each
            for bucket in value:
                assert bucket.get("count") is None or bucket["count"] >= 0, body
        else:
            assert value is None or (isinstance(value, int) and value >= 0), body
    for path in paths:  # a bucket's error: its own count, and only that, is null
        if len(path) > 1:
            node: Any = body["data"]
            for step in path:
                node = node[step]
            assert node is None, body


@settings(FUZZ, max_examples=800)
@given(document=NEGATIVE_DOCUMENTS, name=OPERATION_NAMES, headers=CREDENTIALS)
def test_invalid_documents_keep_the_contract(
    fuzz_gateway: Gateway, document: str, name: str | None, headers: dict[str, str]
) -> None:
    """Negative, mutated, random and hostile documents get coded errors, never a 5xx."""
    operation: dict[str, Any] = {"query": document}
    if name is not None:
        operation["operationName"] = name
    check_response(post(fuzz_gateway, dumps(operation), headers))


@settings(FUZZ, max_examples=300)
@given(variables=VARIABLES, headers=CREDENTIALS)
def test_random_variables_keep_the_contract(
    fuzz_gateway: Gateway, variables: dict[str, Any], headers: dict[str, str]
) -> None:
    """Any ``variables`` for a ``$f: CallFilterInput`` query: coded errors, or a count."""
    body = check_response(
        post(fuzz_gateway, dumps({"query": COUNT_WITH_FILTER, "variables": variables}), headers)
    )
    if "data" in body:
        assert body["data"] is not None, body
        count = body["data"]["callCount"]
        assert count is None or (isinstance(count, int) and count >= 0), body


@settings(FUZZ, max_examples=150)
@given(content=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_random_bytes_keep_the_contract(fuzz_gateway: Gateway, content: bytes) -> None:
    """Arbitrary bytes declared as JSON get a coded answer."""
    check_response(post(fuzz_gateway, content, headers_for(ACME)), batch_of=batch_size(content))


@settings(FUZZ, max_examples=150)
@given(value=JSON_VALUES)
def test_random_json_keeps_the_contract(fuzz_gateway: Gateway, value: object) -> None:
    """Any JSON value as the body gets a coded answer."""
    content = dumps(value)
    check_response(post(fuzz_gateway, content, headers_for(ACME)), batch_of=batch_size(content))


@settings(FUZZ, max_examples=200)
@given(operation=OPERATIONS, headers=CREDENTIALS)
def test_random_operations_keep_the_contract(
    fuzz_gateway: Gateway, operation: dict[str, Any], headers: dict[str, str]
) -> None:
    """An operation object with members of any type gets a coded answer."""
    check_response(post(fuzz_gateway, dumps(operation), headers))


@settings(FUZZ, max_examples=150)
@given(
    batch=st.lists(
        st.fixed_dictionaries({"query": POSITIVE_TEXT}) | OPERATIONS, min_size=0, max_size=13
    ),
    headers=CREDENTIALS,
)
def test_random_batches_keep_the_contract(
    fuzz_gateway: Gateway, batch: list[dict[str, Any]], headers: dict[str, str]
) -> None:
    """A JSON array of operations, empty, within or over the limit: one coded answer each."""
    body = check_response(post(fuzz_gateway, dumps(batch), headers), batch_of=len(batch))
    if not 1 <= len(batch) <= 10:
        assert isinstance(body, dict), body
        assert codes_of(body) <= {"BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED"}, body


CONTENT_TYPES = [
    None,
    "",
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON ; charset=latin-1",
    "application/graphql",
    "application/graphql-response+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json, text/plain",
    "*/*",
]


@settings(FUZZ, max_examples=100)
@given(
    content_type=st.sampled_from(CONTENT_TYPES) | st.text(PRINTABLE, max_size=60).map(str.strip),
    document=POSITIVE_TEXT,
)
def test_random_content_types_keep_the_contract(
    fuzz_gateway: Gateway, content_type: str | None, document: str
) -> None:
    """A valid operation under any content type (or none) gets a coded answer."""
    headers = {**headers_for(ACME)}
    content = dumps({"query": document}).encode()
    record(f"content-type: {content_type!r}; body: {content!r}")
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = fuzz_gateway.client.post(
        f"{fuzz_gateway.url}/graphql", content=content, headers=headers
    )
    check_response(response)


@settings(FUZZ, max_examples=150)
@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            SSID: HEADER_VALUES,
            USER_ID: HEADER_VALUES,
            TOKEN: HEADER_VALUES,
            "X-Request-ID": HEADER_VALUES,
        },
    ),
    document=POSITIVE_TEXT,
)
def test_random_header_values_keep_the_contract(
    fuzz_gateway: Gateway, values: dict[str, str], document: str
) -> None:
    """Any printable credential and request-id headers: coded errors, and a safe request id."""
    check_response(post(fuzz_gateway, dumps({"query": document}), values))


@settings(FUZZ, max_examples=100)
@given(
    params=st.fixed_dictionaries(
        {"query": POSITIVE_TEXT | NEGATIVE_DOCUMENTS},
        optional={
            "variables": st.text(max_size=40) | VARIABLES.map(dumps),
            "operationName": st.text(max_size=10),
        },
    ),
    headers=CREDENTIALS,
)
def test_random_get_requests_keep_the_contract(
    get_gateway: Gateway, params: dict[str, str], headers: dict[str, str]
) -> None:
    """Queries over GET (when allowed) with any parameters get a coded answer."""
    record(f"GET params: {params!r}")
    check_response(
        get_gateway.client.get(f"{get_gateway.url}/graphql", params=params, headers=headers)
    )


# --- deterministic edge cases -----------------------------------------------------------------


def _nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


DEEP_BODIES = {
    "body": lambda nested: nested,
    "query": lambda nested: '{"query": ' + nested + "}",
    "variables": lambda nested: (
        dumps({"query": COUNT_WITH_FILTER})[:-1] + ', "variables": ' + nested + "}"
    ),
    "extra": lambda nested: (
        dumps({"query": COUNT_WITH_FILTER})[:-1]
        + ', "variables": {"f": {"extra": {"k": '
        + nested
        + "}}}}"
    ),
    "agentIds": lambda nested: (
        dumps({"query": COUNT_WITH_FILTER})[:-1]
        + ', "variables": {"f": {"agentIds": '
        + nested
        + "}}}"
    ),
    "batch": lambda nested: "[" + dumps({"query": "{ callCount }"}) + ", " + nested + "]",
}


@pytest.mark.parametrize("depth", [10, 500, 950, 1000, 5000])
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", sorted(DEEP_BODIES))
def test_deeply_nested_json_keeps_the_contract(
    shared_gateway: Gateway, depth: int, kind: str, where: str
) -> None:
    """JSON nested thousands deep, anywhere in the body, gets a coded answer."""
    content = DEEP_BODIES[where](_nested(depth, kind))
    response = post(shared_gateway, content, headers_for(ACME))
    check_response(response, batch_of=batch_size(content))


def test_deeply_nested_graphql_keeps_the_contract(shared_gateway: Gateway) -> None:
    """Selections and literals nested thousands deep are parse or validation failures."""
    for depth in (20, 200, 1000, 5000):
        for document in (
            "{ " + "a { " * depth + "b" + " }" * depth + " }",
            "{ callCount(filter: {extra: " + "[" * depth + "]" * depth + "}) }",
            "{ callCount(filter: {extra: " + "{a: " * depth + "1" + "}" * depth + "}) }",
        ):
            response = post(shared_gateway, dumps({"query": document}), headers_for(ACME))
            body = check_response(response)
            if depth >= 1000:
                assert codes_of(body) <= DOCUMENT_CODES, body


HOSTILE_BODIES = [
    b"",
    b"null",
    b"{}",
    b"[]",
    b'""',
    b'{"query": ""}',
    b'{"query": "   "}',
    b'{"query": null}',
    b'{"query": "{ callCount }", "variables": []}',
    b'{"query": "{ callCount }", "operationName": 1}',
    b'{"query": "{ callCount }"',
    b'\xef\xbb\xbf{"query": "{ callCount }"}',
    '{"query": "{ callCount }"}'.encode("utf-16"),
    b'{"query": "{ callCount \xff }"}',
    b'{"query": "{ callCount }", "query": 1}',
    b'{"query": "{ callCount(filter: {campaignId: 1}) }"}' + b" " * 300_000,
    dumps([{"query": "{ callCount }"}] * 11).encode(),
    dumps([{"query": _aliases(11)}] * 10).encode(),
    dumps([{"query": "{ callCount }"}] * 10).encode(),
    b'{"query": "query($f: CallFilterInput) { callCount(filter: $f) }", '
    b'"variables": {"f": {"extra": {"a": NaN}}}}',
    b'{"query": "query($f: CallFilterInput) { callCount(filter: $f) }", '
    b'"variables": {"f": {"campaignId": Infinity}}}',
    b'{"query": "query($f: CallFilterInput) { callCount(filter: $f) }", '
    b'"variables": {"f": {"campaignId": 1e400}}}',
    b'{"query": "query($f: CallFilterInput) { callCount(filter: $f) }", '
    b'"variables": {"f": {"campaignId": ' + b"9" * 5000 + b"}}}",
]


@pytest.mark.parametrize("content", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_keep_the_contract(shared_gateway: Gateway, content: bytes) -> None:
    """Empty, truncated, mis-encoded, oversized and over-the-limit bodies get coded answers."""
    check_response(post(shared_gateway, content, headers_for(ACME)), batch_of=batch_size(content))


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "9" * 5000, "{a: 1e400}", "[1, -1e400]"])
def test_json_literals_beyond_json_are_bad_user_input(
    shared_gateway: Gateway, sim: Simulator, literal: str
) -> None:
    """An ``extra`` literal that no JSON can carry (±1e400, 5000 digits) is the client's error."""
    document = f"{{ callCount(filter: {{extra: {{k: {literal}}}}}) }}"
    body = check_response(post(shared_gateway, dumps({"query": document}), headers_for(ACME)))
    assert codes_of(body) <= {"BAD_USER_INPUT", *DOCUMENT_CODES}, body
    assert sim.requests == []


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_variables_are_client_errors(
    shared_gateway: Gateway, sim: Simulator, number: str
) -> None:
    """``NaN`` and ``Infinity`` in the body are not JSON: refused as unparsable, nothing sent."""
    content = (
        '{"query": "query($f: CallFilterInput) { callCount(filter: $f) }", '
        f'"variables": {{"f": {{"extra": {{"k": {number}}}}}}}}}'
    )
    body = check_response(post(shared_gateway, content, headers_for(ACME)))
    assert codes_of(body) == {"GRAPHQL_PARSE_FAILED"}, body
    assert sim.requests == []
