"""Compiled plans answer as graphql-core does: the same bytes, the same upstream calls."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.api.plans import covered
from gateway.config import Settings
from gateway.documents import Documents
from gateway.server import create_app
from tests.support.clock import FakeClock

#: How the stub upstream answers a question: a count, each documented error code, or a fault.
OUTCOMES = (
    "ok",
    "ok",
    "ok",
    "big",  # a count past 32 bits: graphql-core's Int refuses it
    "1000",
    "1014",
    "1015",
    "1047",
    "1009",
    "1010",
    "timeout",
    "not-json",
    "no-count",
    "count-as-text",
    "http-500",
)


@dataclass
class Upstream:
    """A stub DeepCall: each question's answer decided by the question, every call recorded."""

    outcomes: list[str]
    sent: list[bytes] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        self.sent.append(body)
        asked = json.loads(body)
        question = json.dumps([asked.get("filter"), asked.get("priorityFilter")], sort_keys=True)
        outcome = self.outcomes[zlib.crc32(question.encode()) % len(self.outcomes)]
        if outcome == "ok":
            return httpx.Response(200, json={"code": 200, "status": "success", "cnt": len(body)})
        if outcome == "big":
            return httpx.Response(200, json={"code": 200, "status": "success", "cnt": 2**31})
        if outcome.isdigit():
            return httpx.Response(
                200, json={"status": "error", "message": "Upstream says no", "code": int(outcome)}
            )
        if outcome == "timeout":
            raise httpx.ReadTimeout("stub timed out", request=request)
        if outcome == "not-json":
            return httpx.Response(200, content=b"<html>oops</html>")
        if outcome == "no-count":
            return httpx.Response(200, json={"code": 200, "status": "success"})
        if outcome == "count-as-text":
            return httpx.Response(200, json={"code": 200, "status": "success", "cnt": "7"})
        return httpx.Response(500, content=b"Internal Server Error")


# documents


def _literals(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """Literal values, now and then one not of the argument's type (validation refuses it)."""
    # A middle number: Hypothesis favours the ends of a range.
    return st.integers(0, 39).flatmap(lambda n: st.sampled_from(invalid if n == 17 else valid))


DATES = _literals(
    ['"2025-11-20T09:00:00+05:30"', '"2025-11-21 10:00:00"', '"2025-11-19T00:00:00.5Z"', "null"],
    ['"not a date"', "7"],
)
LITERALS = {
    "from": DATES,
    "to": DATES,
    "agentIds": _literals(['["1", "2"]', "[3]", "[]", '"4"', "null"], ["[null]"]),
    "campaignId": _literals(["1", "2", "-5", "null"], ['"3"', "1.5", "true", "2147483648"]),
    "statuses": _literals(['["answered"]', '"missed"', "[]", "null"], ["[1]"]),
    "extra": _literals(
        [
            '{callType: "IBD"}',
            '{dtGte: "x"}',
            "[1, 2]",
            '"text"',
            "null",
            "{a: {b: {c: {d: {e: 1}}}}}",
        ],
        ["$undeclared"],
    ),
}
VARIABLE_TYPES = {
    "from": "DateTime",
    "to": "DateTime",
    "agentIds": "[ID!]",
    "campaignId": "Int",
    "statuses": "[String!]",
    "extra": "JSON",
}
PRIORITY = _literals(['"YWJj"', '"not base64!"', "null", '""'], ["1"])


@dataclass
class Document:
    """A document being drawn: its text parts and the variables it declares."""

    declared: dict[str, str] = field(default_factory=dict)
    fragments: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)


@st.composite
def arguments(draw: st.DrawFn, doc: Document) -> str:
    """callCount's arguments: omitted, literals, variables, or a mix."""
    parts = []
    how = draw(st.sampled_from(["none", "null", "variable", "object", "object"]))
    if how == "null":
        parts.append("filter: null")
    elif how == "variable":
        name = draw(st.sampled_from(["f", "g"]))
        doc.declared.setdefault(
            name, draw(st.sampled_from(["CallFilterInput", "CallFilterInput!"]))
        )
        parts.append(f"filter: ${name}")
    elif how == "object":
        keys = draw(st.lists(st.sampled_from(sorted(LITERALS)), unique=True, max_size=4))
        entries = []
        for key in keys:
            if draw(st.booleans()):
                doc.declared.setdefault(key, VARIABLE_TYPES[key])
                entries.append(f"{key}: ${key}")
            else:
                entries.append(f"{key}: {draw(LITERALS[key])}")
        parts.append("filter: {" + ", ".join(entries) + "}")
    priority = draw(st.sampled_from(["none", "literal", "variable"]))
    if priority == "literal":
        parts.append(f"priorityFilter: {draw(PRIORITY)}")
    elif priority == "variable":
        doc.declared.setdefault("p", "String")
        parts.append("priorityFilter: $p")
    return f"({', '.join(parts)})" if parts else ""


@st.composite
def selections(draw: st.DrawFn, doc: Document, depth: int = 0) -> str:
    """Root selections: aliased fields, fragment spreads and inline fragments."""
    items = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["field", "field", "spread", "inline"] if depth < 2 else ["field"])
        )
        if draw(st.integers(0, 59)) == 31:  # now and then, what only graphql-core runs
            if draw(st.booleans()):
                items.append("__typename")
            else:
                doc.declared.setdefault("v", "Boolean!")
                items.append("d0: callCount @include(if: $v)")
        if kind == "field" and doc.fields and draw(st.integers(0, 4)) == 0:
            items.append(draw(st.sampled_from(doc.fields)))  # merged with its twin
        elif kind == "field":
            alias = draw(st.sampled_from(["", "a: ", "b: ", "c: ", "d: ", "e: ", "f: ", "g: "]))
            if alias and alias in {f[: len(alias)] for f in doc.fields}:
                alias = f"x{len(doc.fields)}: "
            elif not alias and any(f.startswith("callCount") for f in doc.fields):
                alias = f"y{len(doc.fields)}: "
            doc.fields.append(f"{alias}callCount{draw(arguments(doc))}")
            items.append(doc.fields[-1])
        elif kind == "spread":
            name = f"F{len(doc.fragments)}"
            doc.fragments.append("")
            body = draw(selections(doc, depth + 1))
            doc.fragments[int(name[1:])] = f"fragment {name} on Query {{ {body} }}"
            items.append(f"...{name}")
        else:
            on = draw(st.sampled_from(["", "on Query "]))
            items.append(f"... {on}{{ {draw(selections(doc, depth + 1))} }}")
    return " ".join(items)


#: Values for each declared variable: right and wrong types, nulls, unknown keys.
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**33), 2**33) | st.sampled_from([1.5, "YWJj", "x"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "callType"]), inner, max_size=2)
    ),
    max_leaves=4,
)
VALID_FILTER = st.fixed_dictionaries(
    {},
    optional={
        "from": st.sampled_from(["2025-11-20T09:00:00+05:30", "2025-11-22 10:00:00"]),
        "to": st.sampled_from(["2025-11-21 10:00:00", "2025-11-19T00:00:00Z", None]),
        "agentIds": st.sampled_from([["1", "2"], [3, "4"], "5"]),
        "campaignId": st.sampled_from([1, 2, None]),
        "statuses": st.sampled_from([["answered"], "missed"]),
        "extra": st.sampled_from([{"callType": "IBD"}, {"st": 1}, [1], "x", None]),
    },
)
#: One entry no filter accepts: a wrong type, a number that does not fit, an unknown key.
BAD_ENTRY = st.sampled_from(
    [
        ("from", "bad"),
        ("from", 5),
        ("agentIds", [None]),
        ("agentIds", [True]),
        ("campaignId", "3"),
        ("campaignId", 1.5),
        ("campaignId", True),
        ("campaignId", 2**31),
        ("statuses", [1]),
        ("unknown", 1),
        ("campaignID", 1),
    ]
)
FILTER_VALUES = st.one_of(
    VALID_FILTER,
    VALID_FILTER,
    VALID_FILTER,
    st.tuples(VALID_FILTER, BAD_ENTRY).map(lambda pair: {**pair[0], pair[1][0]: pair[1][1]}),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, Any] | None, list[str]]:
    """A document, its variables and the upstream's outcomes."""
    doc = Document()
    root = draw(selections(doc))
    declared = []
    for name, type_ in doc.declared.items():
        default = ""
        if name == "p" and draw(st.booleans()):
            default = ' = "YWJj"'
        declared.append(f"${name}: {type_}{default}")
    head = f"query Q({', '.join(declared)})" if declared else draw(st.sampled_from(["", "query"]))
    text = " ".join([f"{head} {{ {root} }}", *doc.fragments])
    variables: dict[str, Any] = {}
    for name in doc.declared:
        choice = draw(st.sampled_from(["right"] * 6 + ["missing", "null", "other"]))
        if choice == "right":
            variables[name] = draw(FILTER_VALUES if name in ("f", "g") else _value_for(name))
        elif choice == "null":
            variables[name] = None
        elif choice == "other":
            variables[name] = draw(VALUES)
    if draw(st.booleans()):
        variables["undeclared"] = 1
    sent = None if not variables and draw(st.booleans()) else variables
    outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=4))
    return text, sent, outcomes


def _value_for(name: str) -> st.SearchStrategy[Any]:
    """A value of the right type for the filter field (or priority filter) ``name``."""
    return {
        "from": st.sampled_from(["2025-11-20T09:00:00+05:30", "2025-11-20 09:00:00"]),
        "to": st.sampled_from(["2025-11-21T00:00:00Z", "2025-11-18 00:00:00"]),
        "agentIds": st.lists(st.sampled_from(["1", "2", 3]), max_size=3),
        "campaignId": st.integers(0, 3),
        "statuses": st.lists(st.sampled_from(["answered", "missed"]), max_size=2),
        "extra": st.sampled_from([{"callType": "IBD"}, {"dtLte": "x"}, {}]),
        "p": st.sampled_from([base64.b64encode(b"priority").decode(), "no!"]),
        "v": st.booleans(),
    }[name]


# running a case both ways


def _documents(app: Any) -> Documents:
    """The document store of ``app``'s GraphQL endpoint (where plans are kept)."""
    route = next(r for r in app.routes if getattr(r, "path", "") == "/graphql")
    return route.endpoint.__self__.documents  # type: ignore[no-any-return]


def _ran_as(app: Any, text: str) -> str:
    """How ``app`` ran ``text``: "plan", "graphql-core", "invalid" or "not run" (refused)."""
    prepared = _documents(app).prepare(text)
    if prepared.document is None:
        return "invalid"
    # The cases send no operationName: their plans are kept under None.
    ran = covered(prepared, None, hide_suggestions=False)
    return "not run" if ran is None else "plan" if ran else "graphql-core"


@dataclass(frozen=True)
class Run:
    """How a case is served: how often, and what changes between the requests."""

    times: int = 1
    #: Before each repeat: seconds the clock moves, and whether the upstream then fails (1009).
    advance: float = 0.0
    then_fails: bool = False
    max_fanout: int = 100
    #: Whether the repeat sends a sibling: the same shape, other literal values.
    sibling: bool = False


def _sibling(body: bytes) -> bytes:
    """``body`` with each number after a colon one more, and each date a day earlier."""
    request = json.loads(body)
    text = re.sub(r"(?<=: )-?\d+\b(?!\.)", lambda m: str(int(m.group()) + 1), request["query"])
    request["query"] = text.replace('"2025-11-2', '"2025-11-1')
    return orjson.dumps(request)


RUNS = st.builds(
    Run,
    times=st.integers(1, 2),
    advance=st.sampled_from([0.0, 20.0, 1000.0]),
    then_fails=st.booleans(),
    max_fanout=st.sampled_from([100, 100, 100, 3]),
    sibling=st.booleans(),
)


async def _serve(
    plans: bool, body: bytes, outcomes: list[str], run: Run
) -> tuple[list[bytes], list[bytes], str]:
    """``body`` POSTed to a fresh gateway as ``run`` says: its answers, what it sent upstream,
    and how it ran the document (``_ran_as``)."""
    upstream = Upstream(outcomes)
    clock = FakeClock()
    gateway = Settings(
        upstream_url="http://stub.invalid",
        upstream_retries=0,
        max_fanout=run.max_fanout,
        compiled_plans=plans,
        log_level="CRITICAL",
    )
    app = create_app(gateway, transport=httpx.MockTransport(upstream), clock=clock)
    answers = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for repeat in range(run.times):
                if repeat:
                    clock.advance(run.advance)
                    if run.then_fails:
                        upstream.outcomes = ["1009"]
                response = await client.post(
                    "/graphql",
                    content=_sibling(body) if repeat and run.sibling else body,
                    headers={
                        "content-type": "application/json",
                        "x-deepcall-ssid": "s",
                        "x-request-id": "req-1",
                    },
                )
                answers.append(str(response.status_code).encode() + b" " + response.content)
        ran_as = _ran_as(app, json.loads(body)["query"])
    return answers, upstream.sent, ran_as


def _both(body: bytes, outcomes: list[str], run: Run = Run()) -> list[bytes]:
    """Serve ``body`` with plans and without; assert the same bytes and calls; the answers."""
    planned = asyncio.run(_serve(True, body, outcomes, run))
    executed = asyncio.run(_serve(False, body, outcomes, run))
    assert planned[0] == executed[0]
    assert planned[1] == executed[1]
    event(planned[2])
    return planned[0]


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases(), run=RUNS)
def test_plans_answer_as_graphql_core_does(
    case: tuple[str, dict[str, Any] | None, list[str]], run: Run
) -> None:
    """For generated documents, variables and upstream faults: the same bytes and calls."""
    text, variables, outcomes = case
    request: dict[str, Any] = {"query": text}
    if variables is not None:
        request["variables"] = variables
    answers = _both(orjson.dumps(request), outcomes, run)
    for answer in (json.loads(a.split(b" ", 1)[1]) for a in answers):
        for error in answer.get("errors", ()):
            event(f"error {error['extensions']['code']}")
        for warning in answer.get("extensions", {}).get("warnings", ()):
            event(f"warning {warning['code']}")


# what plans leave to graphql-core

FALLBACKS = {
    "introspection": ("{ __schema { queryType { name } } }", None),
    "__typename": ("{ __typename a: callCount }", None),
    "@include(if: $v)": ("query($v: Boolean!) { a: callCount @include(if: $v) }", {"v": True}),
    "@skip(if: true)": ("{ a: callCount @skip(if: true) b: callCount }", None),
    "callCountSeries": (
        '{ s: callCountSeries(filter: {from: "2025-11-20 00:00:00", to: "2025-11-21 23:59:59"},'
        " interval: DAY) { from to count } }",
        None,
    ),
}


async def _run_and_report(plans: bool, text: str, variables: dict[str, Any] | None) -> Any:
    """One request with plans on or off: the answer, the upstream calls and the plan kept."""
    upstream = Upstream(["ok"])
    gateway = Settings(upstream_url="http://stub.invalid", compiled_plans=plans)
    app = create_app(gateway, transport=httpx.MockTransport(upstream), clock=FakeClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.post(
                "/graphql",
                json={"query": text, "variables": variables},
                headers={"x-deepcall-ssid": "s", "x-request-id": "req-1"},
            )
        ran = covered(_documents(app).prepare(text), None, hide_suggestions=False)
    return response.content, upstream.sent, ran


@pytest.mark.parametrize("kind", sorted(FALLBACKS))
async def test_what_plans_do_not_cover_runs_through_graphql_core_as_before(kind: str) -> None:
    """An uncovered operation answers as with plans off, and no plan was kept for it."""
    text, variables = FALLBACKS[kind]
    planned = await _run_and_report(True, text, variables)
    executed = await _run_and_report(False, text, variables)

    assert planned[:2] == executed[:2]
    assert b'"data"' in planned[0]
    assert b'"errors"' not in planned[0]
    assert planned[2] is False  # compiled to "not covered": graphql-core ran it
    assert executed[2] is None  # with plans off, none is even tried


async def test_fragments_on_the_root_run_as_a_plan_with_the_same_answer() -> None:
    """Named and inline fragments on the root are covered: a plan answers, as graphql-core does."""
    text = (
        "{ ...F ... on Query { b: callCount(filter: {campaignId: 2}) } }"
        " fragment F on Query { a: callCount }"
    )
    planned = await _run_and_report(True, text, None)
    executed = await _run_and_report(False, text, None)

    assert planned[:2] == executed[:2]
    assert json.loads(planned[0]) == {"data": {"a": 12, "b": 34}}
    assert planned[2] is True
