"""Literal tokens of a GraphQL text: a shape's key, the literals, and how locations move.

As Apollo's operation signatures do, this sets literal values aside, so that
documents which differ only in them share one parse and validation
(``gateway.documents.shapes``). It never guesses: what it cannot prove it keeps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from graphql import GraphQLError, SourceLocation

#: The marks that stand for literals in a key (no text holds them: ``split`` refuses NUL).
INT, FLOAT, STRING = "\x00i", "\x00f", "\x00s"

# One pass over the text; each match is one of:
#   keep:   a comment, a block string, or a string with escapes: kept in the key verbatim
#   string: a string without escapes or line breaks (not `""` opening a block string)
#   number: an Int or Float token after a character that ends whatever token precedes
#           it (so never a name's digits or a number's tail), and not followed by one
#           that would extend it or make it an error
# The leading lookahead lets the search skip everything else at C speed.
_SCAN: Final = re.compile(
    r'(?=[#"0-9-])(?:'
    r'(?P<keep>#[^\n\r]*|"""(?:\\"""|(?!""")[\s\S])*""")'
    r'|(?P<string>"(?:[^"\\\n\r\ud800-\udfff]+"|"(?!")))'
    r'|(?P<escaped>"(?:[^"\\\n\r]|\\.)*")'
    r"|(?<=[ \t\n\r,:\[=\ufeff])"
    r"(?P<number>-?(?:0|[1-9][0-9]*)(?P<float>(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?))"
    r"(?![0-9A-Za-z_.]))"
)
_GROUPS: Final = _SCAN.groups  # keep, string, escaped, number, float


class Literals(NamedTuple):
    """A text split into its shape's key and its literal tokens, in order."""

    key: str
    tokens: list[str]


def split(text: str) -> Literals | None:
    """The shape key and literal tokens of ``text``; None when it has no literals to set aside.

    Every Int, Float and plain String literal becomes a mark of its kind, in
    one regular-expression pass; two texts with one key differ only in those
    tokens, and lex alike: each literal taken out is a whole token of
    graphql-core's lexer. A number is read by the lexer's own grammar, ends
    where the lexer would end it and starts after a character that ends any
    token before it (never a name's digits or a number's tail). A string has
    no escapes and no line breaks, and is never ``""`` before a third quote.
    Comments, block strings and strings with escapes stay in the key verbatim.
    What this cannot see is where the lexer starts a token in the first text:
    a shape checks that against the parsed AST before it is used.
    """
    if "\x00" in text:  # the marks must not be mistaken for text
        return None
    parts = _SCAN.split(text)
    if len(parts) == 1:
        return None
    key = [parts[0]]
    tokens: list[str] = []
    step = _GROUPS + 1
    for at in range(1, len(parts), step):
        keep, string, escaped, number, fraction = parts[at : at + _GROUPS]
        if string is not None:
            key.append(STRING)
            tokens.append(string)
        elif number is not None:
            key.append(FLOAT if fraction else INT)
            tokens.append(number)
        else:
            key.append(keep if keep is not None else escaped)
        key.append(parts[at + _GROUPS])
    if not tokens:
        return None
    return Literals("".join(key), tokens)


def spans(text: str) -> list[tuple[int, int, str]]:
    """Start, end and kind mark of each literal ``split`` sets aside, in order."""
    out = []
    for match in _SCAN.finditer(text):
        if match["string"] is not None:
            out.append((match.start("string"), match.end("string"), STRING))
        elif match["number"] is not None:
            kind = FLOAT if match["float"] else INT
            out.append((match.start("number"), match.end("number"), kind))
    return out


@dataclass(frozen=True)
class Relocation:
    """Moves error locations from the shape's first document to an instance of it.

    Literals hold no line breaks, so only columns move: by the growth of each
    literal that ends before the location on its line.
    """

    #: Per literal: its line and the column just past it in the first document, its length.
    literals: tuple[tuple[int, int, int], ...]
    lengths: tuple[int, ...]

    def apply(self, errors: Sequence[GraphQLError]) -> None:
        """Rewrite each error's ``locations`` (errors are per request, so this is theirs)."""
        for error in errors:
            if error.locations:
                error.locations = [self._move(location) for location in error.locations]

    def _move(self, location: SourceLocation) -> SourceLocation:
        line, column = location.line, location.column
        shift = sum(
            new - old
            for (at_line, end, old), new in zip(self.literals, self.lengths, strict=True)
            if at_line == line and end <= column
        )
        return SourceLocation(line, column + shift) if shift else location
