"""Compiled plans: a validated operation of ``callCount`` fields, run without the executor.

A plan does what graphql-core's executor does for such an operation, step by
step and with graphql-core's own functions (variable and argument coercion,
field collection, error location), and the resolver's own functions for the
upstream question (``count_query``, ``RequestContext.count_soon``). Whatever a
plan does not cover compiles to None, and the operation runs through
graphql-core as before: the answer is the same either way, byte for byte.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeGuard
from zoneinfo import ZoneInfo

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    located_error,
)
from graphql.execution.executor import Executor
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import gather_with_cancel

from gateway.api.context import RequestContext
from gateway.api.layouts import PLANNED_FIELD, Layout, compile_layout
from gateway.api.resolvers import count_query
from gateway.documents import Prepared
from gateway.model import CountQuery

#: graphql-core's default for ``execute``'s ``max_coercion_errors``.
MAX_COERCION_ERRORS: Final = 50

_complete_leaf = Executor.complete_leaf_value


@dataclass(slots=True)
class _Field:
    """One response key of the operation: the field nodes merged under it, and its arguments."""

    key: str
    nodes: list[FieldNode]
    definition: GraphQLField
    #: The arguments when they hold no variable (coerced once), else None.
    fixed: dict[str, Any] | None
    #: The upstream question of ``fixed`` arguments, in the time zone ``zone``.
    query: CountQuery | None = None
    zone: ZoneInfo | None = None


class Plan:
    """One operation compiled: its variables, its fields in response order."""

    __slots__ = ("_fields", "_hide_suggestions", "_schema", "_variables")

    def __init__(
        self,
        schema: GraphQLSchema,
        layout: Layout,
        document: DocumentNode,
        *,
        hide_suggestions: bool,
    ) -> None:
        self._schema = schema
        self._variables = layout.operation_of(document).variable_definitions or ()
        self._hide_suggestions = hide_suggestions
        query_type = schema.query_type
        assert query_type is not None
        definition = query_type.fields[PLANNED_FIELD]
        self._fields = [
            _Field(
                slot.key,
                nodes := [layout.node_at(document, address) for address in slot.addresses],
                definition,
                None if slot.variables else _fixed(definition, nodes[0], hide_suggestions),
            )
            for slot in layout.slots
        ]

    def run(
        self,
        raw_variables: dict[str, Any] | None,
        context: RequestContext,
        is_awaitable: Callable[[Any], TypeGuard[Awaitable[Any]]],
    ) -> ExecutionResult | Awaitable[ExecutionResult]:
        """The operation's result, as graphql-core's ``execute`` gives it (perhaps awaitable)."""
        variables = get_variable_values(
            self._schema,
            self._variables,
            raw_variables or {},
            max_errors=MAX_COERCION_ERRORS,
            hide_suggestions=self._hide_suggestions,
        )
        if isinstance(variables, list):
            return ExecutionResult(None, variables)
        errors: list[GraphQLError] = []
        data: dict[str, Any] = {}
        pending: list[str] = []
        for field in self._fields:
            try:
                value = context.count_soon(self._query(field, variables, context), [field.key])
                if is_awaitable(value):
                    data[field.key] = _complete_later(field, value, errors)
                    pending.append(field.key)
                    continue
                data[field.key] = _complete_leaf(field.definition.type, value)  # type: ignore[arg-type]
            except Exception as raw_error:
                errors.append(located_error(raw_error, field.nodes, [field.key]))
                data[field.key] = None
        if not pending:
            return ExecutionResult(data, errors or None)
        return _gathered(data, pending, errors)

    def _query(
        self, field: _Field, variables: VariableValues, context: RequestContext
    ) -> CountQuery:
        """The field's upstream question (raises as the resolver does)."""
        zone = context.services.settings.zone
        fixed = field.fixed
        if fixed is None:
            arguments = get_argument_values(
                field.definition, field.nodes[0], variables, None, self._hide_suggestions
            )
            return count_query(arguments.get("filter"), arguments.get("priorityFilter"), zone)
        if field.zone is zone and field.query is not None:
            return field.query
        query = count_query(fixed.get("filter"), fixed.get("priorityFilter"), zone)
        field.query, field.zone = query, zone
        return query


async def _complete_later(field: _Field, value: Awaitable[int], errors: list[GraphQLError]) -> Any:
    """The field's count once it lands, or null and its error (``complete_awaitable_value``)."""
    try:
        return _complete_leaf(field.definition.type, await value)  # type: ignore[arg-type]
    except Exception as raw_error:
        errors.append(located_error(raw_error, field.nodes, [field.key]))
        return None


async def _gathered(
    data: dict[str, Any], pending: list[str], errors: list[GraphQLError]
) -> ExecutionResult:
    """``data`` with its pending fields awaited as graphql-core's ``execute_fields`` does."""
    if len(pending) == 1:
        data[pending[0]] = await data[pending[0]]
    else:
        done = await gather_with_cancel(*(data[key] for key in pending))
        data.update(zip(pending, done, strict=True))
    return ExecutionResult(data, errors or None)


def _fixed(
    definition: GraphQLField, node: FieldNode, hide_suggestions: bool
) -> dict[str, Any] | None:
    """The arguments of ``node`` (which uses no variable), or None when they do not coerce."""
    try:
        return get_argument_values(definition, node, None, None, hide_suggestions)
    except GraphQLError:
        return None  # raised again, the same way, on every run


def plan_of(
    schema: GraphQLSchema, prepared: Prepared, operation_name: str | None, *, hide_suggestions: bool
) -> Plan | None:
    """``prepared``'s plan for ``operation_name``; None when graphql-core must run it.

    The layout is compiled on first use and kept with the document's shape
    (``Prepared.plans``); the plan made of it, with the document itself.
    """
    key = (operation_name, hide_suggestions)
    plans = prepared.plans
    kept: _Compiled = plans.get(key, _UNSEEN)
    document = prepared.document
    assert document is not None
    if kept is _UNSEEN:
        kept = plans[key] = _Compiled(compile_layout(schema, document, operation_name))
    if kept.layout is None:
        return None
    bound = kept.bound
    if bound is not None and bound[0] is document:
        return bound[1]
    plan = Plan(schema, kept.layout, document, hide_suggestions=hide_suggestions)
    kept.bound = (document, plan)
    return plan


def covered(
    prepared: Prepared, operation_name: str | None, *, hide_suggestions: bool
) -> bool | None:
    """Whether plans cover ``prepared``'s operation; None when none was compiled for it yet."""
    kept: _Compiled | None = prepared.plans.get((operation_name, hide_suggestions))
    return None if kept is None else kept.layout is not None


@dataclass(slots=True)
class _Compiled:
    """A shape's layout (None: not covered) and the plan last made of it, with its document."""

    layout: Layout | None
    bound: tuple[DocumentNode, Plan] | None = None


_UNSEEN: Final = _Compiled(None)
