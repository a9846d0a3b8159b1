"""What a plan is made of, found once per document shape: which field nodes answer which key.

A layout holds nothing of a document's literal values, so every document of a
shape (``gateway.documents``) shares it: the decision whether a plan covers
the operation, and where each field node sits, are the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.collect_fields import FragmentDetails, collect_fields
from graphql.execution.values import VariableValues

#: The only field a plan runs; any other (``callCountSeries``, ``__typename``) falls back.
PLANNED_FIELD: Final = "callCount"

#: Where a node sits: the index of its definition, then of each selection down to it.
Address = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Slot:
    """One response key: where its field nodes sit (merged, in order); whether they use
    variables."""

    key: str
    addresses: tuple[Address, ...]
    variables: bool


@dataclass(frozen=True, slots=True)
class Layout:
    """The covered operation of a shape: where it sits, its response keys in order."""

    operation: int
    slots: tuple[Slot, ...]

    def operation_of(self, document: DocumentNode) -> OperationDefinitionNode:
        """This layout's operation in ``document`` (a document of its shape)."""
        return document.definitions[self.operation]  # type: ignore[return-value]

    @staticmethod
    def node_at(document: DocumentNode, address: Address) -> FieldNode:
        """The field node at ``address`` in ``document``."""
        node: Any = document.definitions[address[0]]
        for index in address[1:]:
            node = node.selection_set.selections[index]
        return node  # type: ignore[no-any-return]


def compile_layout(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> Layout | None:
    """The layout of ``document``'s operation ``operation_name``, or None when it is not covered.

    ``document`` has validated. Covered: a query whose fields (through
    aliases, fragments and inline fragments) are all ``callCount``, with no
    directive and no fragment variables anywhere in the document.
    """
    chosen = _operation(document, operation_name)
    if chosen is None:
        return None
    operation = document.definitions[chosen]
    assert isinstance(operation, OperationDefinitionNode)
    if operation.operation is not OperationType.QUERY or _any_node(document, DirectiveNode):
        return None
    fragments: dict[str, FragmentDetails] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            if definition.variable_definitions:
                return None
            fragments[definition.name.value] = FragmentDetails(definition)
    query_type = schema.query_type
    assert query_type is not None
    try:
        # Without directives, no variable's value changes what is collected.
        collected = collect_fields(schema, fragments, VariableValues({}, {}), query_type, operation)
    except (GraphQLError, RecursionError):
        return None
    addresses = _addresses(document)
    slots = []
    for key, details in collected.grouped_field_set.items():
        nodes = [detail.node for detail in details]
        if any(n.name.value != PLANNED_FIELD or id(n) not in addresses for n in nodes):
            return None
        slots.append(
            Slot(
                key,
                tuple(addresses[id(n)] for n in nodes),
                any(_any_node(n, VariableNode) for n in nodes),
            )
        )
    return Layout(chosen, tuple(slots))


def _operation(document: DocumentNode, name: str | None) -> int | None:
    """The index of the operation graphql-core's ``Executor.build`` picks for ``name``."""
    chosen = None
    for index, definition in enumerate(document.definitions):
        if isinstance(definition, OperationDefinitionNode):
            if name is None:
                if chosen is not None:
                    return None
                chosen = index
            elif definition.name and definition.name.value == name:
                chosen = index
    return chosen


def _addresses(document: DocumentNode) -> dict[int, Address]:
    """The address of every field node of ``document``'s selection sets, by the node's id."""
    found: dict[int, Address] = {}
    stack: list[tuple[SelectionSetNode | None, Address]] = [
        (getattr(definition, "selection_set", None), (index,))
        for index, definition in enumerate(document.definitions)
    ]
    while stack:
        selection_set, address = stack.pop()
        if selection_set is None:
            continue
        for index, selection in enumerate(selection_set.selections):
            at = (*address, index)
            if isinstance(selection, FieldNode):
                found[id(selection)] = at
            else:
                stack.append((getattr(selection, "selection_set", None), at))
    return found


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
