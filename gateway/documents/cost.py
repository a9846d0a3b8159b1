"""What a document may cost, measured on its AST before validation: one linear walk.

Aliases, depth and directives against ``Limits``, and the upstream fields of
each operation. Fragment spreads are expanded with memoisation, so a fragment
"bomb" that doubles at each level is counted, not expanded, and a cycle stops
the walk. Each limit rejects with a single ``DocumentError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from gateway.errors import DocumentError

#: Fields whose every occurrence costs at least one upstream call (a series, one per bucket:
#: it checks the rest of the budget itself once its buckets are known).
UPSTREAM_FIELDS: Final = frozenset({"callCount", "callCountSeries"})
MAX_DIRECTIVES_PER_NODE: Final = 4


@dataclass(frozen=True)
class Limits:
    """How large a document may be; each limit rejects with a single error."""

    max_tokens: int = 2_000
    max_depth: int = 15
    max_aliases: int = 50
    max_directives: int = 50


@dataclass(frozen=True)
class Operation:
    """One operation of a document and the most upstream calls it may cause."""

    name: str | None
    type: OperationType
    upstream_fields: int


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """The document's fragment definitions by name."""
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


@dataclass
class _Cost:
    aliases: int = 0
    directives: int = 0
    depth: int = 0
    upstream: int = 0

    def add(self, other: _Cost, *, nested: bool) -> None:
        self.aliases += other.aliases
        self.directives += other.directives
        self.upstream += other.upstream
        self.depth = max(self.depth, other.depth + (1 if nested else 0))


class _Walker:
    """Totals what each operation costs, expanding fragments once each."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self._done: dict[str, _Cost] = {}
        self._open: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> _Cost:
        cost = _Cost()
        if selection_set is None:
            return cost
        for selection in selection_set.selections:
            directives = len(selection.directives or ())
            if directives > MAX_DIRECTIVES_PER_NODE:
                raise DocumentError(
                    f"{directives} directives on one selection; at most "
                    f"{MAX_DIRECTIVES_PER_NODE} are allowed"
                )
            cost.directives += directives
            if isinstance(selection, FieldNode):
                field = self.selections(selection.selection_set)
                field.aliases += 1 if selection.alias else 0
                field.upstream += 1 if selection.name.value in UPSTREAM_FIELDS else 0
                cost.add(field, nested=True)
            elif isinstance(selection, InlineFragmentNode):
                cost.add(self.selections(selection.selection_set), nested=False)
            elif isinstance(selection, FragmentSpreadNode):
                cost.add(self.fragment(selection.name.value), nested=False)
        return cost

    def fragment(self, name: str) -> _Cost:
        done = self._done.get(name)
        if done is not None:
            return done
        definition = self._fragments.get(name)
        if definition is None:
            return _Cost()  # validation reports unknown fragments
        if name in self._open:
            raise DocumentError(f"Cannot spread fragment {name!r} within itself"[:120])
        self._open.add(name)
        cost = self.selections(definition.selection_set)
        self._open.discard(name)
        self._done[name] = cost
        return cost


def measure(document: DocumentNode, limits: Limits) -> dict[str | None, Operation]:
    """Each operation's cost; raises ``DocumentError`` past a limit or on a fragment cycle."""
    fragments = fragments_of(document)
    walker = _Walker(fragments)
    operations: dict[str | None, Operation] = {}
    total = _Cost()
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        cost = walker.selections(definition.selection_set)
        cost.directives += len(definition.directives or ())
        total.add(cost, nested=False)
        name = definition.name.value if definition.name else None
        operations[name] = Operation(name, definition.operation, cost.upstream)
    for fragment in fragments.values():
        walker.fragment(fragment.name.value)  # cycles in unused fragments too
    if total.aliases > limits.max_aliases:
        raise DocumentError(f"{total.aliases} aliases; at most {limits.max_aliases} are allowed")
    if total.depth > limits.max_depth:
        raise DocumentError(f"Depth {total.depth}; at most {limits.max_depth} is allowed")
    if total.directives > limits.max_directives:
        raise DocumentError(
            f"{total.directives} directives; at most {limits.max_directives} are allowed"
        )
    return operations
