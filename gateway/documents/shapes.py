"""Document shapes: documents that differ only in their literal values, validated once.

Services build alias batches as strings, so nearly every document they send is
new, and full validation of a new document costs several times its execution.
A later document of a known shape is checked for its new values only; ``Shape``
says why that is the same as full validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)
from graphql.utilities import validate_input_literal

from gateway.documents.cost import fragments_of
from gateway.documents.literals import FLOAT, INT, STRING, Relocation, spans

#: What graphql-core's validate reports past its ``max_errors``.
ABORTED: Final = "Too many validation errors, error limit reached. Validation aborted."

#: Literals deeper than this many steps from the root (values nested in values) are not
#: set aside: their documents are validated in full, and nothing here recurses that deep.
MAX_SLOT_PATH: Final = 64

#: Where to copy a node on the way to its literals, as one flat tuple (a shape keeps one
#: per node on those paths, so they are kept small): ``(check, attribute, index, child,
#: attribute, index, child, …)``. ``index`` is -1 for a single node, else the position in
#: the tuple the attribute holds; ``child`` is another edit, or a literal's slot number.
#: ``check`` numbers the leaf-typed value this node is (a JSON object, say), else -1.
_Edit = tuple[Any, ...]


_new = object.__new__
_set = object.__setattr__


def _copy(node: Any, changes: dict[str, Any]) -> Any:
    # AST nodes are frozen dataclasses kept in __dict__: copy that, skipping __init__.
    new = _new(type(node))
    _set(new, "__dict__", {**node.__dict__, **changes})
    return new


def _rebuild(node: Any, edit: _Edit, values: list[Node], checked: list[Node]) -> Any:
    """``node`` copied along ``edit``, with ``values`` at its slots."""
    # The node's own __dict__ (copied, not rebuilt by __init__) with the new children in.
    fields = node.__dict__.copy()
    lists = None
    for at in range(1, len(edit), 3):
        attribute, index, child = edit[at], edit[at + 1], edit[at + 2]
        if index < 0:
            old = fields[attribute]
            fields[attribute] = (
                values[child] if type(child) is int else _rebuild(old, child, values, checked)
            )
            continue
        sequence = fields[attribute]
        if type(sequence) is tuple:
            sequence = fields[attribute] = list(sequence)
            lists = [attribute] if lists is None else [*lists, attribute]
        sequence[index] = (
            values[child]
            if type(child) is int
            else _rebuild(sequence[index], child, values, checked)
        )
    if lists is not None:
        for attribute in lists:
            fields[attribute] = tuple(fields[attribute])
    new = _new(type(node))
    _set(new, "__dict__", fields)
    if edit[0] >= 0:
        checked[edit[0]] = new
    return new


class Instance(NamedTuple):
    """A document of a known shape: its AST, or the errors its values have."""

    document: DocumentNode | None
    errors: list[GraphQLError]
    relocation: Relocation


class _Slot(NamedTuple):
    node: StringValueNode | IntValueNode | FloatValueNode
    path: tuple[str | int, ...]
    check: int


class _Finder(Visitor):
    """Collects literal value nodes, their paths and the top value that holds each.

    That value is the one graphql-core's ValuesOfCorrectType checks as a whole
    (an argument's value or a variable's default), so that the errors come in
    its order: an input object's fields in the type's order, not the text's.
    """

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.slots: list[_Slot] = []
        self.checks: list[tuple[tuple[str | int, ...], GraphQLInputType]] = []
        self.outside = False  # a literal that no check covers (a description, say)
        self._tops: list[tuple[str | int, ...]] = []
        self._top_value: tuple[Node, int] | None = None

    def enter(self, node: Node, _key: Any, _parent: Any, path: Any, *_: Any) -> None:
        if isinstance(node, ArgumentNode):
            self._tops.append((*path, "value"))
        elif isinstance(node, VariableDefinitionNode):
            self._tops.append((*path, "default_value"))
        elif isinstance(node, ValueNode):
            self._value(node, tuple(path))

    def leave(self, node: Node, *_: Any) -> None:
        if isinstance(node, ArgumentNode | VariableDefinitionNode):
            self._tops.pop()
        elif self._top_value is not None and self._top_value[0] is node:
            self._top_value = None

    def _value(self, node: ValueNode, path: tuple[str | int, ...]) -> None:
        top = self._tops[-1] if self._tops else None
        inside = top is not None and path[: len(top)] == top
        if inside and self._top_value is None:
            # TypeInfo has already moved into a list's items: the list's own type is the parent.
            info = self.type_info
            input_type = (
                info.get_parent_input_type()
                if isinstance(node, ListValueNode)
                else info.get_input_type()
            )
            if input_type is not None:
                self._top_value = (node, len(self.checks))
                self.checks.append((path, input_type))
        if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
            if not inside or self._top_value is None:
                self.outside = True
            else:
                self.slots.append(_Slot(node, path, self._top_value[1]))


def _distinct_response_names(document: DocumentNode) -> bool:
    """Whether no selection set, with its fragments merged in, has one response name twice.

    Then OverlappingFieldsCanBeMerged compares no two fields, and so no arguments.
    Fragments are merged once each (a valid document has no cycles).
    """
    fragments = fragments_of(document)
    merged: dict[str, frozenset[str] | None] = {}

    def names(selection_set: SelectionSetNode) -> frozenset[str] | None:
        seen: set[str] = set()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner: frozenset[str] | None = frozenset(
                    [(selection.alias or selection.name).value]
                )
                if selection.selection_set is not None and names(selection.selection_set) is None:
                    return None
            elif isinstance(selection, InlineFragmentNode):
                inner = names(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                inner = fragment(selection.name.value)
            else:  # pragma: no cover - no other selection kinds exist
                return None
            if inner is None or not seen.isdisjoint(inner):
                return None
            seen.update(inner)
        return frozenset(seen)

    def fragment(name: str) -> frozenset[str] | None:
        if name not in merged:
            merged[name] = None  # while open: a cycle reads as "not distinct"
            definition = fragments.get(name)
            merged[name] = names(definition.selection_set) if definition else None
        return merged[name]

    return all(
        names(definition.selection_set) is not None
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode | OperationDefinitionNode)
    )


def _edits(
    paths: Sequence[tuple[str | int, ...]], checks: dict[tuple[str | int, ...], int]
) -> _Edit:
    """Copy instructions from the root to every path (slot i at ``paths[i]``).

    A node at one of ``checks`` (other than a literal itself) is marked with its check number.
    """
    trie: dict[tuple[str, int], Any] = {}
    for slot, path in enumerate(paths):
        node = trie
        steps = _steps(path)
        for step in steps[:-1]:
            node = node.setdefault(step, {})
        node[steps[-1]] = slot
    check_at = {_steps(path): number for path, number in checks.items()}

    def freeze(node: dict[tuple[str, int], Any], steps: tuple[Any, ...]) -> _Edit:
        flat: list[Any] = [check_at.get(steps, -1)]
        for (attribute, index), child in node.items():
            here = (*steps, (attribute, index))
            flat += (attribute, index, child if isinstance(child, int) else freeze(child, here))
        return tuple(flat)

    return freeze(trie, ())


def _steps(path: tuple[str | int, ...]) -> tuple[tuple[str, int], ...]:
    """``('definitions', 0, 'selection_set', …)`` as (attribute, index or -1) steps."""
    steps: list[tuple[str, int]] = []
    for part in path:
        if isinstance(part, int):
            steps[-1] = (steps[-1][0], part)
        else:
            steps.append((part, -1))
    return tuple(steps)


def _matches(node: Node, end: int, kind: str) -> bool:
    """Whether ``node`` is the literal token of ``kind`` that ends at ``end``."""
    if node.loc is None or node.loc.end != end:
        return False
    if isinstance(node, StringValueNode):
        return kind == STRING and not node.block
    if isinstance(node, FloatValueNode):
        return kind == FLOAT
    return isinstance(node, IntValueNode) and kind == INT


@dataclass(frozen=True)
class Shape:
    """A validated document whose literals can be replaced by those of a text of its key.

    ``build`` keeps the first document's AST and where each literal sits;
    ``instantiate`` copies the AST along the paths to the literals, puts the new
    values in and checks them. Why that is the same as full validation:

    - *Parsing.* Texts of one key lex alike (``literals.split``) provided each
      literal set aside is a literal token where the first text's lexer starts
      one: ``build`` checks each is exactly a literal value node of the AST, or
      refuses the shape. The parser decides by token kinds, which the key fixes.
    - *Validation.* Two of graphql-core's rules look at literal values:
      ValuesOfCorrectType, whose check of each leaf-typed value
      (``validate_input_literal``) ``instantiate`` runs again on the new values,
      and OverlappingFieldsCanBeMerged, which compares the arguments of fields
      with one response name: a shape where any selection set (fragments merged
      in) has two fields of one response name is never used. Every other rule,
      and our limits, see names, structure and token counts, which the key fixes.
    - *Execution.* The instance's AST is the one ``parse`` would give the new
      text but for its locations; ``Relocation`` moves error locations.

    A shape whose first document is refused is never kept.
    """

    document: DocumentNode
    #: The first document's literal value nodes, one per slot, copied with each new value.
    templates: tuple[IntValueNode | FloatValueNode | StringValueNode, ...]
    edit: _Edit
    #: The type of each top-level value that holds a slot, checked on every instance.
    checks: tuple[GraphQLInputType, ...]
    #: (check, slot) for top-level values that are a literal themselves.
    direct: tuple[tuple[int, int], ...]
    #: Per slot: line, the column past it and its length in the first document.
    places: tuple[tuple[int, int, int], ...]
    hide_suggestions: bool
    max_errors: int

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        text: str,
        document: DocumentNode,
        *,
        hide_suggestions: bool,
        max_errors: int,
    ) -> Shape | None:
        """The shape of ``text``, a document that passed full validation; None if unusable."""
        if document.loc is None:
            return None
        try:
            if not _distinct_response_names(document):
                return None
        except RecursionError:  # fragments spread within fragments, hundreds deep
            return None
        type_info = TypeInfo(schema)
        finder = _Finder(type_info)
        visit(document, TypeInfoVisitor(type_info, finder))
        if finder.outside:
            return None
        found = {slot.node.loc.start: slot for slot in finder.slots if slot.node.loc}
        slots: list[_Slot] = []
        places: list[tuple[int, int, int]] = []
        source = document.loc.source
        for start, end, kind in spans(text):
            slot = found.get(start)
            if slot is None or not _matches(slot.node, end, kind):
                return None  # the pattern and graphql-core's lexer disagree: never guess
            if len(slot.path) > MAX_SLOT_PATH:
                return None
            slots.append(slot)
            line, column = source.get_location(start)
            places.append((line, column + end - start, end - start))
        if not slots:
            return None
        numbers: dict[int, int] = {}  # the finder's check number -> ours
        for slot in slots:
            numbers.setdefault(slot.check, len(numbers))
        tops = {finder.checks[old][0]: new for old, new in numbers.items()}
        paths = [slot.path for slot in slots]
        direct = tuple(
            (tops[path], slot_number) for slot_number, path in enumerate(paths) if path in tops
        )
        return cls(
            document=document,
            templates=tuple(slot.node for slot in slots),
            edit=_edits(paths, {p: n for p, n in tops.items() if p not in set(paths)}),
            checks=tuple(finder.checks[old][1] for old in numbers),
            direct=direct,
            places=tuple(places),
            hide_suggestions=hide_suggestions,
            max_errors=max_errors,
        )

    def instantiate(self, tokens: list[str]) -> Instance:
        """This shape with ``tokens`` (from ``split``, same key) as its literals."""
        values: list[Node] = [
            _copy(template, {"value": token[1:-1] if token[0] == '"' else token})
            for template, token in zip(self.templates, tokens, strict=True)
        ]
        checked: list[Any] = [None] * len(self.checks)
        document = _rebuild(self.document, self.edit, values, checked)
        for check, slot in self.direct:
            checked[check] = values[slot]
        errors: list[GraphQLError] = []

        def on_error(error: GraphQLError, _path: Any) -> None:
            errors.append(error)

        hide = self.hide_suggestions
        for node, input_type in zip(checked, self.checks, strict=True):
            validate_input_literal(node, input_type, on_error, None, None, hide)
        relocation = Relocation(self.places, tuple(len(token) for token in tokens))
        if not errors:
            return Instance(document, errors, relocation)
        if len(errors) > self.max_errors:
            errors = [*errors[: self.max_errors], GraphQLError(ABORTED)]
        relocation.apply(errors)
        return Instance(None, errors, relocation)
