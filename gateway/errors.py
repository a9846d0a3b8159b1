"""The gateway's error tree and its table of stable codes.

Every failure a client can see is one of these; each class carries the
``code`` that lands in ``extensions.code`` and whether retrying may help::

    GatewayError
    ├── UnauthenticatedError        UNAUTHENTICATED        no credentials; upstream 1014
    │   └── KnownInvalidCredentialError*                   1014 a moment ago: not called again
    ├── ForbiddenError              FORBIDDEN              upstream 1015
    ├── BadUserInputError           BAD_USER_INPUT         our validation; upstream 1000, 1047
    │   └── FanoutExceededError                            more upstream calls than a request may
    ├── RequestError                                       (abstract) the HTTP request is unusable
    │   ├── MalformedRequestError   GRAPHQL_PARSE_FAILED   not JSON; a parameter of the wrong type
    │   └── UnsupportedRequestError BAD_USER_INPUT         method, media type, size, batch
    │   └── ShuttingDownError       UPSTREAM_UNAVAILABLE   the server stopped before answering
    ├── DocumentError               GRAPHQL_VALIDATION_FAILED  a document over a limit, an
    │                                                      operation that cannot be chosen
    ├── RateLimitedError*           RATE_LIMITED           the gateway's own per-client limit
    │   ├── NewCredentialsLimitedError*                    too many new credentials, one address
    │   └── StreamLimitError                               too many live streams or pollers
    ├── StreamEndedError            STREAM_ENDED           the gateway ended a live stream:
    │                                                      shutting down, or its lifetime reached
    ├── InternalServerError         INTERNAL_SERVER_ERROR  anything unexpected (message masked)
    ├── PersistedQueryError                                (abstract) no persisted document
    │   ├── PersistedQueryNotFoundError   PERSISTED_QUERY_NOT_FOUND    APQ: unknown hash
    │   ├── PersistedQueryNotInListError  PERSISTED_QUERY_NOT_IN_LIST  id not in the list
    │   └── PersistedQueryIdRequiredError PERSISTED_QUERY_ID_REQUIRED  text sent, id required
    └── UpstreamFailure                                    (abstract) the upstream let us down
        ├── UpstreamError           UPSTREAM_ERROR         upstream 1009; unknown codes
        ├── UpstreamUnavailableError UPSTREAM_UNAVAILABLE  upstream 1010; refused/reset/dropped
        │   ├── CircuitOpenError*                          our breaker is open: not called
        │   │   └── CallerCircuitOpenError*                open for this caller only
        │   └── OverloadedError*                           our concurrency limit: not called
        ├── UpstreamTimeoutError    UPSTREAM_TIMEOUT       no answer in time
        └── UpstreamBadResponseError UPSTREAM_BAD_RESPONSE non-JSON, wrong shape, non-200;
                                                           invalid HTTP, over a limit, a coding

The starred classes are the gateway's own refusals: the upstream was not
called, and ``refusal`` names the kind (a closed set, for metrics). Documents
that graphql-core itself cannot parse or validate keep its errors, under the
same two GraphQL codes. Messages are written by us; the upstream's own text,
URLs and exception names never reach a client.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


class GatewayError(Exception):
    """Root of every error the gateway reports to a client."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    retryable: ClassVar[bool] = False
    #: For the gateway's own refusals (the upstream was not called): which kind.
    refusal: ClassVar[str | None] = None

    def __init__(self, message: str, *, upstream_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.upstream_code = upstream_code

    def extensions(self) -> dict[str, Any]:
        """The ``extensions`` object of this error in a GraphQL response."""
        ext: dict[str, Any] = {"code": self.code, "retryable": self.retryable}
        if self.upstream_code is not None:
            ext["upstreamCode"] = self.upstream_code
        return ext

    def formatted(self) -> dict[str, Any]:
        """This error as one entry of a response's ``errors``."""
        return {"message": self.message, "extensions": self.extensions()}


class UnauthenticatedError(GatewayError):
    """No usable credentials, or the upstream rejected them (1014)."""

    code = "UNAUTHENTICATED"


class KnownInvalidCredentialError(UnauthenticatedError):
    """DeepCall rejected this credential (1014) moments ago: not asked again for a while."""

    refusal = "invalid_credential"


class ForbiddenError(GatewayError):
    """The credentials are valid but lack LIST_CALL_LOG (1015)."""

    code = "FORBIDDEN"


class BadUserInputError(GatewayError):
    """The request is wrong in a way the client must fix (also 1000, 1047)."""

    code = "BAD_USER_INPUT"


class FanoutExceededError(BadUserInputError):
    """The request would cause more upstream calls than one request may."""


class RequestError(GatewayError):
    """The HTTP request itself is unusable: answered with ``status`` and this one error."""

    def __init__(
        self, message: str, *, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class MalformedRequestError(RequestError):
    """The body is not JSON, or a request parameter has the wrong type (HTTP 400)."""

    code = PARSE_FAILED


class UnsupportedRequestError(RequestError):
    """A method, media type, size or batch the endpoint does not serve (HTTP 4xx)."""

    code = "BAD_USER_INPUT"


class ShuttingDownError(RequestError):
    """The server is stopping and could not answer in time (HTTP 503): retry, elsewhere."""

    code = "UPSTREAM_UNAVAILABLE"
    retryable = True


class DocumentError(GatewayError):
    """A document over a limit of ours, or an operation that cannot be chosen from it."""

    code = VALIDATION_FAILED


class RateLimitedError(GatewayError):
    """The client spent its allowance of upstream calls; ``retry_after`` says when to come back."""

    code = "RATE_LIMITED"
    retryable = True
    refusal = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def extensions(self) -> dict[str, Any]:
        """The base extensions plus ``retryAfter``, in whole seconds (at least 1)."""
        return {**super().extensions(), "retryAfter": max(1, math.ceil(self.retry_after))}


class NewCredentialsLimitedError(RateLimitedError):
    """One client address tried more new, never-accepted credentials than it may."""

    refusal = "new_credentials"


class StreamLimitError(RateLimitedError):
    """A live stream refused: too many streams or pollers (connection, credential, process)."""


class StreamEndedError(GatewayError):
    """The gateway ended a live stream (it is shutting down, or the stream lived its time)."""

    code = "STREAM_ENDED"
    retryable = True


class InternalServerError(GatewayError):
    """Anything unexpected; the real cause is only in the log."""

    code = "INTERNAL_SERVER_ERROR"


class PersistedQueryError(GatewayError):
    """Base for requests whose persisted document cannot be had or may not run."""


class PersistedQueryNotFoundError(PersistedQueryError):
    """Automatic persisted queries: the hash is not known here; send it with the query."""

    code = "PERSISTED_QUERY_NOT_FOUND"


class PersistedQueryNotInListError(PersistedQueryError):
    """Trusted documents only: the id names no document of the list."""

    code = "PERSISTED_QUERY_NOT_IN_LIST"


class PersistedQueryIdRequiredError(PersistedQueryError):
    """Trusted documents only: a document's text was sent, not the id of a listed one."""

    code = "PERSISTED_QUERY_ID_REQUIRED"


class UpstreamFailure(GatewayError):
    """Base for failures caused by the upstream rather than the client."""


class UpstreamError(UpstreamFailure):
    """The upstream answered with an error of its own (1009, or a code we don't know)."""

    code = "UPSTREAM_ERROR"
    retryable = True


class UpstreamUnavailableError(UpstreamFailure):
    """The upstream or its database cannot be reached (1010, refused, reset)."""

    code = "UPSTREAM_UNAVAILABLE"
    retryable = True


class CircuitOpenError(UpstreamUnavailableError):
    """The breaker refused the call without making it: the upstream kept failing."""

    refusal = "circuit_open"


class CallerCircuitOpenError(CircuitOpenError):
    """This caller's own circuit refused the call: its questions kept failing."""

    refusal = "caller_circuit_open"


class OverloadedError(UpstreamUnavailableError):
    """The concurrency limiter refused the call: too many in flight and waiting."""

    refusal = "overloaded"


class UpstreamTimeoutError(UpstreamFailure):
    """The upstream did not answer in time."""

    code = "UPSTREAM_TIMEOUT"
    retryable = True


class UpstreamBadResponseError(UpstreamFailure):
    """The upstream answered with something that is not its documented contract (or not HTTP)."""

    code = "UPSTREAM_BAD_RESPONSE"


# The upstream's documented codes: what each becomes, with our own wording.
_UPSTREAM_CODES: dict[int, tuple[type[GatewayError], str]] = {
    1000: (BadUserInputError, "DeepCall rejected the request parameters (upstream code 1000)"),
    1047: (BadUserInputError, "DeepCall rejected the request data (upstream code 1047)"),
    1014: (UnauthenticatedError, "DeepCall rejected the credentials: invalid or expired token"),
    1015: (ForbiddenError, "These credentials lack the LIST_CALL_LOG permission"),
    1009: (UpstreamError, "DeepCall failed to answer (upstream code 1009)"),
    1010: (UpstreamUnavailableError, "DeepCall's database is unavailable (upstream code 1010)"),
}

#: Every code a client may see in ``extensions.code``.
CODES: tuple[str, ...] = (
    UnauthenticatedError.code,
    ForbiddenError.code,
    BadUserInputError.code,
    UpstreamError.code,
    UpstreamUnavailableError.code,
    UpstreamTimeoutError.code,
    UpstreamBadResponseError.code,
    PARSE_FAILED,
    VALIDATION_FAILED,
    RateLimitedError.code,
    PersistedQueryNotFoundError.code,
    PersistedQueryNotInListError.code,
    PersistedQueryIdRequiredError.code,
    StreamEndedError.code,
    InternalServerError.code,
)


#: Every value of ``GatewayError.refusal``: the kinds of refusal, for metric labels.
REFUSALS: tuple[str, ...] = tuple(
    refusal
    for cls in (
        RateLimitedError,
        NewCredentialsLimitedError,
        KnownInvalidCredentialError,
        OverloadedError,
        CircuitOpenError,
        CallerCircuitOpenError,
    )
    if (refusal := cls.refusal) is not None
)


def from_upstream_code(code: int) -> GatewayError:
    """The gateway error for an upstream error ``code`` (never its message)."""
    cls, message = _UPSTREAM_CODES.get(
        code, (UpstreamError, f"DeepCall answered with an unknown error (upstream code {code})")
    )
    return cls(message, upstream_code=code)
