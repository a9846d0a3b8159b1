"""Literal tokens: what a shape's key sets aside, what it keeps verbatim, how locations move."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, SourceLocation

from gateway.documents.literals import FLOAT, INT, STRING, Relocation, split


def test_ints_floats_and_plain_strings_are_set_aside_by_kind() -> None:
    """Each literal becomes a mark of its kind; the tokens come back in order, as written."""
    literals = split('{ a1: f(x: 17, y: -2.5e3, z: "hi", w: [0, ""]) }')
    assert literals is not None
    assert literals.tokens == ["17", "-2.5e3", '"hi"', "0", '""']
    assert literals.key == f"{{ a1: f(x: {INT}, y: {FLOAT}, z: {STRING}, w: [{INT}, {STRING}]) }}"


@pytest.mark.parametrize(
    "text",
    [
        "{ a1: f b_2: g }",  # digits of names
        "{ f(x: 1a) }",  # a number the lexer refuses (followed by a name character)
        "{ f(x: 01) }",  # a leading zero
        "{ f(x: 1.) }",  # a fraction without digits
        "{ f(x: (1) }",  # after a character the pattern does not know to end a token
        '{ f(x: "a\\"b") }',  # an escape: the string stays verbatim
        '{ f(x: """block 1 "2" """) }',  # a block string, numbers and quotes in it
        '{ f # a comment 12 "x"\n }',  # a comment, numbers and quotes in it
        '{ f(x: "line\nbreak") }',  # a string the lexer refuses
    ],
)
def test_what_is_not_a_plain_literal_token_stays_verbatim(text: str) -> None:
    """Names' digits, refused numbers, escaped and block strings and comments are kept."""
    assert split(text) is None


def test_an_empty_string_is_a_string_and_three_quotes_a_block_string() -> None:
    """An empty string is set aside; three quotes open a block string, which stays verbatim."""
    literals = split('{ f(x: "", y: """b""", z: """""") }')
    assert literals is not None
    assert literals.tokens == ['""']


def test_a_text_holding_nul_is_never_split() -> None:
    """The marks contain NUL, so a text with one could be mistaken for another's key."""
    assert split("{ f(x: 1) } # \x00i") is None


def test_texts_of_one_key_differ_only_in_their_literals() -> None:
    """The key is the same for new values of the same kinds, and differs for another kind."""
    first, second = split('{ f(x: 1, y: "a") }'), split('{ f(x: 99999, y: "bcd") }')
    other = split('{ f(x: "1", y: "a") }')
    assert first is not None
    assert second is not None
    assert other is not None
    assert first.key == second.key != other.key


def test_relocation_moves_columns_after_longer_or_shorter_literals_on_their_line() -> None:
    """A location moves by the growth of the literals before it on its own line only."""
    # First text: line 1 `{ a: f(x: 1) b: f(x: 22) }`, literals end at columns 12 and 24.
    relocation = Relocation(((1, 12, 1), (1, 24, 2), (2, 9, 3)), (4, 1, 3))
    errors = [
        GraphQLError("before both"),
        GraphQLError("between"),
        GraphQLError("after both"),
        GraphQLError("next line"),
    ]
    errors[0].locations = [SourceLocation(1, 3)]
    errors[1].locations = [SourceLocation(1, 14)]
    errors[2].locations = [SourceLocation(1, 26)]
    errors[3].locations = [SourceLocation(2, 3)]
    relocation.apply(errors)
    assert [error.locations for error in errors] == [
        [SourceLocation(1, 3)],
        [SourceLocation(1, 17)],
        [SourceLocation(1, 28)],
        [SourceLocation(2, 3)],
    ]
