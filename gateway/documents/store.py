"""GraphQL documents: parsed, limited and validated once, then cached by text and by shape.

A hostile document costs one linear walk (``cost``) and never reaches
validation or execution; a stream of new documents cannot push the rest out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    Node,
    OperationType,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from gateway.config import Settings
from gateway.documents.cost import Limits, Operation, measure
from gateway.documents.literals import Relocation, split
from gateway.documents.shapes import Shape
from gateway.errors import PARSE_FAILED, VALIDATION_FAILED, DocumentError

MAX_VALIDATION_ERRORS: Final = 10
#: Longer documents (in UTF-8) are still served, just not remembered.
MAX_CACHED_BYTES: Final = 32 * 1024


QUERIES_ONLY: Final = frozenset({OperationType.QUERY})
_REFUSED: Final = {
    OperationType.SUBSCRIPTION: (
        "A subscription streams: ask with Accept: text/event-stream or multipart/mixed, "
        "or over the WebSocket"
    ),
    OperationType.QUERY: "Only subscriptions stream: POST queries as JSON",
}


@dataclass(frozen=True)
class Prepared:
    """A document ready to execute, or the errors that reject it."""

    document: DocumentNode | None
    operations: Mapping[str | None, Operation]
    errors: tuple[GraphQLError, ...] = ()
    code: str = VALIDATION_FAILED
    #: For a document made from a known shape: how its error locations move.
    relocation: Relocation | None = None
    #: What ``gateway.api`` compiled of each operation (by its own keys). Every document of a
    #: shape shares one: only what holds whatever the literal values are may go in.
    plans: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def relocate(self, errors: list[GraphQLError]) -> None:
        """Point the locations of execution ``errors`` into this document's own text."""
        if self.relocation is not None:
            self.relocation.apply(errors)

    def select(self, name: str | None, kinds: frozenset[OperationType] = QUERIES_ONLY) -> Operation:
        """The operation to run for ``operationName`` ``name``, one of ``kinds``; raises
        DocumentError."""
        if name is None and len(self.operations) > 1:
            raise DocumentError("The document has several operations: send operationName")
        operation = (
            next(iter(self.operations.values()), None)
            if name is None
            else self.operations.get(name)
        )
        if operation is None:
            raise DocumentError(f"The document has no operation named {name!r}"[:120])
        if operation.type not in kinds:
            raise DocumentError(_REFUSED.get(operation.type, "Only queries are served"))
        return operation


#: What a shape's documents share: the shape, the document's operations, its plans.
_Known = tuple[Shape, Mapping[str | None, Operation], dict[Any, Any]]


class Documents:
    """Parses, limits and validates documents against ``schema``, remembering the results.

    ``prepare(text)`` answers with a ``Prepared`` document: the AST with what
    each operation may cost, or the errors that reject it. A text seen before
    comes from a cache of texts; a new text of a known shape is made from the
    shape (``Shape.instantiate``). Both caches are LRUs of ``maxsize``; a shape
    is remembered only once a document of it passed full validation, and a
    document made from a shape is not put in the text cache.
    """

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
        # Shape key -> the shape, its operations and plans; None: valid, but not a usable shape.
        self._shapes: LRUCache[str, _Known | None] = LRUCache(maxsize=maxsize)

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
        if utf8_size(text) > MAX_CACHED_BYTES:
            return self._prepare(text)
        literals = split(text)
        if literals is None:
            prepared = self._cache[text] = self._prepare(text)
            return prepared
        known = self._shapes.get(literals.key)
        if known is not None:
            shape, operations, plans = known
            instance = shape.instantiate(literals.tokens)
            if instance.document is None:
                return Prepared(None, {}, tuple(instance.errors), VALIDATION_FAILED)
            return Prepared(
                instance.document, operations, relocation=instance.relocation, plans=plans
            )
        prepared = self._cache[text] = self._prepare(text)
        if prepared.document is not None and literals.key not in self._shapes:
            built = Shape.build(
                self._schema,
                text,
                prepared.document,
                hide_suggestions=self._hide_suggestions,
                max_errors=MAX_VALIDATION_ERRORS,
            )
            self._shapes[literals.key] = (
                None if built is None else (built, prepared.operations, prepared.plans)
            )
        return prepared

    def _prepare(self, text: str) -> Prepared:
        try:
            document = parse(text, max_tokens=self._limits.max_tokens, no_location=False)
        except GraphQLError as error:
            # Its traceback holds the lexer and every token read: keep only the error.
            return Prepared(None, {}, (error.with_traceback(None),), PARSE_FAILED)
        _forget_tokens(document)
        try:
            operations = measure(document, self._limits)
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


def utf8_size(text: str) -> int:
    """``text``'s size in UTF-8: what a limit on a remembered text must count.

    Characters would not do: a text of emoji holds four bytes per character in
    memory, so a limit in characters lets it keep four times what it says.
    """
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


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
