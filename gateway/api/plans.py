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
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    located_error,
)
from graphql.execution.collect_fields import FieldDetails, FragmentDetails, collect_fields
from graphql.execution.executor import Executor
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import gather_with_cancel

from gateway.api.context import RequestContext
from gateway.api.resolvers import count_query
from gateway.documents import Prepared
from gateway.model import CountQuery

#: graphql-core's default for ``execute``'s ``max_coercion_errors``.
MAX_COERCION_ERRORS: Final = 50
#: The only field a plan runs; any other (``callCountSeries``, ``__typename``) falls back.
PLANNED_FIELD: Final = "callCount"

_complete_leaf = Executor.complete_leaf_value


@dataclass(slots=True)
class _Field:
    """One response key of the operation: the field nodes merged under it, and its arguments."""

    key: str
    nodes: list[FieldNode]
    details: FieldDetails
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
        operation: OperationDefinitionNode,
        fields: list[_Field],
        *,
        hide_suggestions: bool,
    ) -> None:
        self._schema = schema
        self._variables = operation.variable_definitions or ()
        self._fields = fields
        self._hide_suggestions = hide_suggestions

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
                field.definition,
                field.details.node,
                variables,
                field.details.fragment_variable_values,
                self._hide_suggestions,
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


def plan_of(
    schema: GraphQLSchema, prepared: Prepared, operation_name: str | None, *, hide_suggestions: bool
) -> Plan | None:
    """``prepared``'s plan for ``operation_name``, compiled on first use and kept beside it."""
    key = (operation_name, hide_suggestions)
    plans = prepared.plans
    if key in plans:
        return plans[key]  # type: ignore[no-any-return]
    assert prepared.document is not None
    plan = plans[key] = compile_plan(
        schema, prepared.document, operation_name, hide_suggestions=hide_suggestions
    )
    return plan


def compile_plan(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    *,
    hide_suggestions: bool,
) -> Plan | None:
    """The plan of ``document``'s operation ``operation_name``, or None when it is not covered.

    ``document`` has validated. Covered: a query whose fields (through
    aliases, fragments and inline fragments) are all ``callCount``, with no
    directive and no fragment variables anywhere in the document.
    """
    operation = _operation(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    fragments: dict[str, FragmentDetails] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            if definition.variable_definitions:
                return None
            fragments[definition.name.value] = FragmentDetails(definition)
    if _has_directives(document):
        return None
    query_type = schema.query_type
    assert query_type is not None
    try:
        # Without directives, no variable's value changes what is collected.
        collected = collect_fields(
            schema, fragments, VariableValues({}, {}), query_type, operation, hide_suggestions
        )
    except (GraphQLError, RecursionError):
        return None
    fields = []
    for key, details in collected.grouped_field_set.items():
        field = _compile_field(schema, query_type, key, details, hide_suggestions)
        if field is None:
            return None
        fields.append(field)
    return Plan(schema, operation, fields, hide_suggestions=hide_suggestions)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation graphql-core's ``Executor.build`` picks for ``name``."""
    chosen = None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if name is None:
                if chosen is not None:
                    return None
                chosen = definition
            elif definition.name and definition.name.value == name:
                chosen = definition
    return chosen


def _compile_field(
    schema: GraphQLSchema,
    query_type: GraphQLObjectType,
    key: str,
    details: list[FieldDetails],
    hide_suggestions: bool,
) -> _Field | None:
    """One response key's part of the plan, or None when it is not a plain ``callCount``."""
    first = details[0]
    if first.node.name.value != PLANNED_FIELD or first.defer_usage is not None:
        return None
    definition = schema.get_field(query_type, PLANNED_FIELD)
    if definition is None:
        return None
    fixed = None
    if not _has_variables(first.node):
        try:
            fixed = get_argument_values(definition, first.node, None, None, hide_suggestions)
        except GraphQLError:
            fixed = None  # raised again, the same way, on every run
    return _Field(key, [d.node for d in details], first, definition, fixed)


def _has_directives(document: DocumentNode) -> bool:
    """Whether any directive is used anywhere in ``document``."""
    return _any_node(document, DirectiveNode)


def _has_variables(node: Node) -> bool:
    """Whether any variable is used under ``node``."""
    return _any_node(node, VariableNode)


def _any_node(root: Node, kind: type[Node]) -> bool:
    """Whether ``root`` or any node under it is a ``kind``."""
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, kind):
            return True
        if isinstance(node, tuple | list):
            stack.extend(node)
        elif isinstance(node, Node):
            stack.extend(getattr(node, key) for key in node.keys)
    return False
