"""Unit tests for the error tree, its code table and the upstream code mapping."""

from __future__ import annotations

import pytest

from gateway.errors import (
    CODES,
    BadUserInputError,
    ForbiddenError,
    GatewayError,
    InternalServerError,
    RateLimitedError,
    UnauthenticatedError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    from_upstream_code,
)

# The upstream's own messages, as its documentation lists them.
UPSTREAM_MESSAGES = {
    1000: "Invalid parameters",
    1014: "Invalid token",
    1015: "Permission denied",
    1047: "Invalid Request Data",
    1009: "Something went wrong",
    1010: "Error in DB connect",
}

# The closed set of codes the design's error table allows.
DESIGNED_CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "UPSTREAM_ERROR",
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "UPSTREAM_BAD_RESPONSE",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "RATE_LIMITED",
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_NOT_IN_LIST",
    "PERSISTED_QUERY_ID_REQUIRED",
    "STREAM_ENDED",
    "INTERNAL_SERVER_ERROR",
}


def all_error_classes() -> list[type[GatewayError]]:
    """GatewayError and every class below it, however deep."""
    found: list[type[GatewayError]] = [GatewayError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


@pytest.mark.parametrize(
    ("upstream_code", "cls", "code", "retryable"),
    [
        (1000, BadUserInputError, "BAD_USER_INPUT", False),
        (1047, BadUserInputError, "BAD_USER_INPUT", False),
        (1014, UnauthenticatedError, "UNAUTHENTICATED", False),
        (1015, ForbiddenError, "FORBIDDEN", False),
        (1009, UpstreamError, "UPSTREAM_ERROR", True),
        (1010, UpstreamUnavailableError, "UPSTREAM_UNAVAILABLE", True),
        (4242, UpstreamError, "UPSTREAM_ERROR", True),
    ],
)
def test_upstream_codes_map_to_the_designed_errors(
    upstream_code: int, cls: type[GatewayError], code: str, retryable: bool
) -> None:
    """Each upstream code becomes the designed class, code and retryability, keeping the number."""
    error = from_upstream_code(upstream_code)

    assert type(error) is cls
    assert error.code == code
    assert error.retryable is retryable
    assert error.upstream_code == upstream_code
    assert error.extensions() == {
        "code": code,
        "retryable": retryable,
        "upstreamCode": upstream_code,
    }


def test_an_unknown_upstream_code_is_named_in_the_message() -> None:
    """An unknown upstream code is reported as UPSTREAM_ERROR whose message gives the number."""
    error = from_upstream_code(4242)

    assert error.extensions()["upstreamCode"] == 4242
    assert "4242" in error.message


def test_extensions_of_a_gateway_side_error_have_no_upstream_code() -> None:
    """An error raised by the gateway itself carries code and retryable, and no upstreamCode."""
    assert BadUserInputError("bad").extensions() == {"code": "BAD_USER_INPUT", "retryable": False}
    assert RateLimitedError("slow down", retry_after=0.2).extensions() == {
        "code": "RATE_LIMITED",
        "retryable": True,
        "retryAfter": 1,
    }
    assert RateLimitedError("slow down", retry_after=2.5).extensions()["retryAfter"] == 3
    assert UpstreamTimeoutError("late").extensions() == {
        "code": "UPSTREAM_TIMEOUT",
        "retryable": True,
    }
    assert UpstreamBadResponseError("odd").extensions() == {
        "code": "UPSTREAM_BAD_RESPONSE",
        "retryable": False,
    }
    assert InternalServerError("boom").extensions() == {
        "code": "INTERNAL_SERVER_ERROR",
        "retryable": False,
    }


def test_message_is_both_the_attribute_and_str() -> None:
    """The message given to an error is its ``message`` and its ``str()``."""
    error = ForbiddenError("no LIST_CALL_LOG", upstream_code=1015)

    assert error.message == "no LIST_CALL_LOG"
    assert str(error) == "no LIST_CALL_LOG"
    assert error.upstream_code == 1015


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_class_code_is_in_the_code_table(cls: type[GatewayError]) -> None:
    """Every class of the error tree carries a code listed in CODES."""
    assert cls.code in CODES
    assert isinstance(cls.retryable, bool)


def test_the_code_table_is_the_designed_closed_set() -> None:
    """CODES lists exactly the design's codes, each once."""
    assert len(CODES) == len(set(CODES))
    assert set(CODES) == DESIGNED_CODES


@pytest.mark.parametrize("upstream_code", sorted(UPSTREAM_MESSAGES))
def test_messages_are_ours_not_the_upstreams(upstream_code: int) -> None:
    """No gateway message for an upstream code contains any upstream message text."""
    message = from_upstream_code(upstream_code).message.casefold()

    assert message
    for upstream_message in UPSTREAM_MESSAGES.values():
        assert upstream_message.casefold() not in message
