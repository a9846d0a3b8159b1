"""GraphQL documents: parsed, limited and validated once, then cached by text and by shape.

``Documents.prepare(text)`` answers with a ``Prepared`` document: either the
parsed AST with what each operation may cost, or the errors that reject it
(with ``GRAPHQL_PARSE_FAILED`` or ``GRAPHQL_VALIDATION_FAILED``). The limits
are checked on the AST before graphql-core's validation, each reported as a
single error, so that a hostile document (thousands of aliases, directives or
nested fragments) costs one linear walk and never reaches execution. The walk
expands fragment spreads with memoisation, so a fragment "bomb" that doubles
at each level is counted, not expanded, and a fragment cycle stops it.

A text seen before is answered from a cache of texts. A new text whose shape
(the text with its literal values set aside, ``gateway.literals``) is known is
not parsed or validated again: the known shape's AST takes the new values, and
only the values are checked (``gateway.shapes``). Both caches are bounded LRUs
of ``maxsize`` entries each; a shape is remembered only once a document of it
has passed full validation, and a document made from a shape is not put in the
text cache, so that a stream of new documents cannot push the rest out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from gateway.config import Settings
from gateway.errors import PARSE_FAILED, VALIDATION_FAILED
from gateway.literals import Relocation, split
from gateway.shapes import Shape

#: Fields whose every occurrence costs at least one upstream call (a series, one per bucket:
#: it checks the rest of the budget itself once its buckets are known).
UPSTREAM_FIELDS: Final = frozenset({"callCount", "callCountSeries"})
MAX_DIRECTIVES_PER_NODE: Final = 4
MAX_VALIDATION_ERRORS: Final = 10
#: Longer documents are still served, just not remembered.
MAX_CACHED_CHARS: Final = 32 * 1024


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


@dataclass(frozen=True)
class Prepared:
    """A document ready to execute, or the errors that reject it."""

    document: DocumentNode | None
    operations: Mapping[str | None, Operation]
    errors: tuple[GraphQLError, ...] = ()
    code: str = VALIDATION_FAILED
    #: For a document made from a known shape: how its error locations move.
    relocation: Relocation | None = None

    def relocate(self, errors: list[GraphQLError]) -> None:
        """Point the locations of execution ``errors`` into this document's own text."""
        if self.relocation is not None:
            self.relocation.apply(errors)

    def select(self, name: str | None) -> Operation:
        """The operation to run for ``operationName`` ``name``; raises DocumentError."""
        if name is None and len(self.operations) > 1:
            raise DocumentError("The document has several operations: send operationName")
        operation = (
            next(iter(self.operations.values()), None)
            if name is None
            else self.operations.get(name)
        )
        if operation is None:
            raise DocumentError(f"The document has no operation named {name!r}"[:120])
        if operation.type is not OperationType.QUERY:
            raise DocumentError("Only queries are served")
        return operation


class DocumentError(Exception):
    """A document (or its chosen operation) that must not run; ``code`` says which phase."""

    def __init__(self, message: str, code: str = VALIDATION_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Documents:
    """Parses, limits and validates documents against ``schema``, remembering the results."""

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: Limits,
        *,
        introspection: bool,
        maxsize: int = 512,
    ) -> None:
        self._schema = schema
        self._limits = limits
        self._hide_suggestions = not introspection
        self._rules = (
            specified_rules
            if introspection
            else (*specified_rules, NoSchemaIntrospectionCustomRule)
        )
        self._cache: LRUCache[str, Prepared] = LRUCache(maxsize=maxsize)
        # Shape key -> the shape and its operations; None: valid, but not a usable shape.
        self._shapes: LRUCache[str, tuple[Shape, Mapping[str | None, Operation]] | None] = LRUCache(
            maxsize=maxsize
        )

    @classmethod
    def for_settings(cls, schema: GraphQLSchema, settings: Settings) -> Documents:
        """The store ``settings`` describe: their limits, introspection switch and cache size."""
        limits = Limits(
            max_tokens=settings.max_tokens,
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_directives=settings.max_directives,
        )
        return cls(
            schema,
            limits,
            introspection=settings.introspection,
            maxsize=settings.document_cache,
        )

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def shapes(self) -> int:
        """How many shapes are remembered."""
        return len(self._shapes)

    def prepare(self, text: str) -> Prepared:
        """The prepared document for ``text`` (from cache when seen, or made from its shape)."""
        prepared = self._cache.get(text)
        if prepared is not None:
            return prepared
        if len(text) > MAX_CACHED_CHARS:
            return self._prepare(text)
        literals = split(text)
        if literals is None:
            prepared = self._cache[text] = self._prepare(text)
            return prepared
        known = self._shapes.get(literals.key)
        if known is not None:
            shape, operations = known
            instance = shape.instantiate(literals.tokens)
            if instance.document is None:
                return Prepared(None, {}, tuple(instance.errors), VALIDATION_FAILED)
            return Prepared(instance.document, operations, relocation=instance.relocation)
        prepared = self._cache[text] = self._prepare(text)
        if prepared.document is not None and literals.key not in self._shapes:
            built = Shape.build(
                self._schema,
                text,
                prepared.document,
                hide_suggestions=self._hide_suggestions,
                max_errors=MAX_VALIDATION_ERRORS,
            )
            self._shapes[literals.key] = None if built is None else (built, prepared.operations)
        return prepared

    def _prepare(self, text: str) -> Prepared:
        try:
            document = parse(text, max_tokens=self._limits.max_tokens, no_location=False)
        except GraphQLError as error:
            # Its traceback holds the lexer and every token read: keep only the error.
            return Prepared(None, {}, (error.with_traceback(None),), PARSE_FAILED)
        _forget_tokens(document)
        try:
            operations = _measure(document, self._limits)
        except DocumentError as error:
            return Prepared(None, {}, (GraphQLError(error.message),), error.code)
        errors = validate(
            self._schema,
            document,
            self._rules,
            max_errors=MAX_VALIDATION_ERRORS,
            hide_suggestions=self._hide_suggestions,
        )
        if errors:
            return Prepared(None, {}, tuple(errors), VALIDATION_FAILED)
        return Prepared(document, operations)


def _forget_tokens(root: Node) -> None:
    """Drop the lexer's tokens from every location under ``root``; keep offsets and source.

    Each location holds its first and last token, and tokens are a linked list, so
    a remembered document kept every token of its text alive: two fifths of its
    memory. Errors are located by offset and source; nothing reads the tokens.
    """
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if type(node) is tuple:
            stack.extend(node)
        elif isinstance(node, Node):
            location = node.loc
            if location is not None:
                location.start_token = location.end_token = None  # type: ignore[assignment]
            # getattr, not __dict__: reading that would give every node a dict of its own.
            for key in node.keys:
                child = getattr(node, key)
                if type(child) is tuple or isinstance(child, Node):
                    stack.append(child)


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


def _measure(document: DocumentNode, limits: Limits) -> dict[str | None, Operation]:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
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
