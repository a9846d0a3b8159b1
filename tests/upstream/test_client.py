"""Unit tests for the reportCount client over httpx.MockTransport, and httpx error translation."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from support.hostile import inflating_gzip

from gateway.errors import (
    BadUserInputError,
    ForbiddenError,
    GatewayError,
    UnauthenticatedError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.model import CountQuery, Credential
from gateway.transport.connection import InvalidAnswerError, StaleConnectionError
from gateway.upstream.client import (
    MAX_GRAPHQL_INT,
    MAX_RESPONSE_BYTES,
    REPORT_COUNT_PATH,
    UpstreamClient,
    translate_httpx_error,
)
from gateway.upstream.retries import is_transient

BASE_URL = "https://deepcall.test"
SSID = Credential(ssid="ssid-SENTINEL-9c41")
USER = Credential(user_id="user-SENTINEL-5e07", token="token-SENTINEL-b3d2")
FILTER = {"dtGte": "2025-11-20 00:00:00", "dtLte": "2025-11-23 23:59:59", "agtIds": ["1", "2"]}
UPSTREAM_TEXT = "upstream-says-SENTINEL-0a7f"
SUCCESS_BODY = b'{"code":200,"status":"success","cnt":3}'

Handler = Callable[[httpx.Request], httpx.Response]


class FakeUpstream:
    """A MockTransport handler that remembers every request and answers with ``respond``."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies received, in order."""
        return [json.loads(request.content) for request in self.requests]


def answering(status: int = 200, **kwargs: Any) -> FakeUpstream:
    """A fake upstream that answers every request with the same status and content."""
    return FakeUpstream(lambda request: httpx.Response(status, **kwargs))


@asynccontextmanager
async def upstream_client(
    handler: Handler, base_url: str = BASE_URL, **client_options: Any
) -> AsyncIterator[UpstreamClient]:
    """An UpstreamClient over a MockTransport answering with ``handler``."""
    async with httpx.MockTransport(handler) as transport:
        yield UpstreamClient(transport, base_url, **client_options)


async def count(
    handler: Handler,
    credential: Credential = SSID,
    query: CountQuery | None = None,
    **client_options: Any,
) -> int:
    """One report_count through ``handler``."""
    async with upstream_client(handler, **client_options) as client:
        return await client.report_count(credential, query or CountQuery.build(FILTER, None))


# What is sent


async def test_an_ssid_credential_is_posted_as_ssid_only() -> None:
    """An ssid credential POSTs {ssid, filter} as JSON to the reportCount path, nothing else."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    await count(fake, SSID, CountQuery.build(FILTER, None))

    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://deepcall.test/api/v2/CallReport/reportCount"
    assert request.url.path == REPORT_COUNT_PATH == "/api/v2/CallReport/reportCount"
    assert request.url.query == b""
    assert request.headers["content-type"] == "application/json"
    assert fake.bodies == [{"ssid": "ssid-SENTINEL-9c41", "filter": FILTER}]


async def test_a_user_credential_is_posted_as_user_id_and_token_only() -> None:
    """A userId+token credential POSTs {userId, token, filter} and never an ssid key."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    await count(fake, USER, CountQuery.build(FILTER, None))

    assert fake.requests[0].url.path == "/api/v2/CallReport/reportCount"
    assert fake.bodies == [
        {"userId": "user-SENTINEL-5e07", "token": "token-SENTINEL-b3d2", "filter": FILTER}
    ]
    assert "ssid" not in fake.bodies[0]


async def test_credentials_travel_only_in_the_body() -> None:
    """No credential text appears in the URL or the request headers."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    await count(fake, USER)

    request = fake.requests[0]
    visible = str(request.url) + repr(list(request.headers.items()))
    for secret in ("user-SENTINEL-5e07", "token-SENTINEL-b3d2"):
        assert secret not in visible


async def test_a_base_url_path_prefix_is_kept() -> None:
    """A base URL with a path (and a trailing slash) is joined to the reportCount path once."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    async with upstream_client(fake, "https://gw.deepcall.test/prefix/") as client:
        await client.report_count(SSID, CountQuery.build({}, None))

    assert str(fake.requests[0].url) == (
        "https://gw.deepcall.test/prefix/api/v2/CallReport/reportCount"
    )


async def test_an_empty_filter_is_omitted() -> None:
    """With no filter keys the body has no ``filter`` and no ``priorityFilter``."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    await count(fake, SSID, CountQuery.build({}, None))

    assert fake.bodies == [{"ssid": "ssid-SENTINEL-9c41"}]


async def test_a_priority_filter_is_sent_when_given() -> None:
    """A given priorityFilter is sent verbatim beside the filter."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    await count(fake, USER, CountQuery.build({"campId": 7}, "eyJhIjoxfQ=="))

    assert fake.bodies == [
        {
            "userId": "user-SENTINEL-5e07",
            "token": "token-SENTINEL-b3d2",
            "filter": {"campId": 7},
            "priorityFilter": "eyJhIjoxfQ==",
        }
    ]


async def test_a_priority_filter_without_a_filter_is_sent_alone() -> None:
    """A priorityFilter with an empty filter sends priorityFilter and omits filter."""
    fake = answering(json={"code": 200, "status": "success", "cnt": 1})

    await count(fake, SSID, CountQuery.build({}, "e30="))

    assert fake.bodies == [{"ssid": "ssid-SENTINEL-9c41", "priorityFilter": "e30="}]


# What is believed


@pytest.mark.parametrize("cnt", [0, 1, 1234, MAX_GRAPHQL_INT])
async def test_a_success_returns_cnt(cnt: int) -> None:
    """A documented success body yields its ``cnt``, from 0 up to the GraphQL Int maximum."""
    fake = answering(json={"code": 200, "status": "success", "cnt": cnt})

    assert await count(fake) == cnt
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("upstream_code", "cls", "code"),
    [
        (1000, BadUserInputError, "BAD_USER_INPUT"),
        (1047, BadUserInputError, "BAD_USER_INPUT"),
        (1014, UnauthenticatedError, "UNAUTHENTICATED"),
        (1015, ForbiddenError, "FORBIDDEN"),
        (1009, UpstreamError, "UPSTREAM_ERROR"),
        (1010, UpstreamUnavailableError, "UPSTREAM_UNAVAILABLE"),
        (4242, UpstreamError, "UPSTREAM_ERROR"),
    ],
)
async def test_an_upstream_error_code_raises_its_gateway_error(
    upstream_code: int, cls: type[GatewayError], code: str
) -> None:
    """An HTTP 200 error body raises the mapped error, with the upstream code and our own words."""
    fake = answering(json={"status": "error", "message": UPSTREAM_TEXT, "code": upstream_code})

    with pytest.raises(cls) as caught:
        await count(fake)

    assert type(caught.value) is cls
    assert caught.value.code == code
    assert caught.value.upstream_code == upstream_code
    assert UPSTREAM_TEXT not in str(caught.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [201, 204, 301, 400, 404, 500, 502, 503])
async def test_a_non_200_status_is_a_bad_response(status: int) -> None:
    """Any HTTP status but 200 is UPSTREAM_BAD_RESPONSE, even with a success-shaped body."""
    fake = answering(status, json={"code": 200, "status": "success", "cnt": 5})

    with pytest.raises(UpstreamBadResponseError) as caught:
        await count(fake)

    assert caught.value.code == "UPSTREAM_BAD_RESPONSE"
    assert BASE_URL not in caught.value.message


@pytest.mark.parametrize(
    "content",
    [b"", b"<html>502 Bad Gateway</html>", b"{'cnt': 1}", b'{"cnt": 1', b"\xff\xfe\x00"],
    ids=["empty", "html", "python-repr", "truncated", "not-utf8"],
)
async def test_a_non_json_body_is_a_bad_response(content: bytes) -> None:
    """A 200 body that is not JSON is UPSTREAM_BAD_RESPONSE."""
    fake = answering(content=content)

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 200, "status": "success", "cnt": "12"},
        {"code": 200, "status": "success", "cnt": -1},
        {"code": 200, "status": "success", "cnt": True},
        {"code": 200, "status": "success", "cnt": 1.5},
        {"code": 200, "status": "success", "cnt": None},
        {"code": 200, "status": "success"},
        {"code": 200, "cnt": 5},
        {"code": 200, "status": "ok", "cnt": 5},
        {"status": "error", "message": "Invalid token", "code": "1014"},
        {"status": "error", "message": "Invalid token", "code": True},
        {"status": "error", "message": "Invalid token"},
        [{"code": 200, "status": "success", "cnt": 5}],
        [],
        "5",
        5,
        None,
    ],
    ids=[
        "cnt-string",
        "cnt-negative",
        "cnt-bool",
        "cnt-float",
        "cnt-null",
        "cnt-missing",
        "status-missing",
        "status-unknown",
        "error-code-string",
        "error-code-bool",
        "error-code-missing",
        "json-array",
        "empty-array",
        "json-string",
        "json-number",
        "json-null",
    ],
)
async def test_a_wrong_shape_is_a_bad_response(payload: Any) -> None:
    """A JSON body that is not the documented success or error shape is UPSTREAM_BAD_RESPONSE."""
    fake = answering(json=payload)

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)


async def test_a_count_beyond_graphql_int_is_a_bad_response() -> None:
    """A count above 2**31-1 cannot be a GraphQL Int and is UPSTREAM_BAD_RESPONSE."""
    fake = answering(json={"code": 200, "status": "success", "cnt": MAX_GRAPHQL_INT + 1})

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)


async def test_a_deeply_nested_body_is_a_bad_response() -> None:
    """A small body nested too deeply to decode is UPSTREAM_BAD_RESPONSE, not a crash."""
    content = b"[" * 20_000 + b"]" * 20_000
    assert len(content) < MAX_RESPONSE_BYTES
    fake = answering(content=content)

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)


async def test_a_body_over_the_size_cap_is_a_bad_response() -> None:
    """A body over MAX_RESPONSE_BYTES is refused even when it is a valid success."""
    content = b'{"code":200,"status":"success","cnt":1}'
    content += b" " * (MAX_RESPONSE_BYTES + 1 - len(content))
    assert len(content) == MAX_RESPONSE_BYTES + 1
    fake = answering(content=content)

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)


async def test_a_body_at_the_size_cap_is_read() -> None:
    """A body of exactly MAX_RESPONSE_BYTES is still read and believed."""
    content = b'{"code":200,"status":"success","cnt":3}'
    content += b" " * (MAX_RESPONSE_BYTES - len(content))
    fake = answering(content=content)

    assert await count(fake) == 3


async def test_an_endless_body_stops_being_read_at_the_cap() -> None:
    """A streamed body is read only up to the cap, not to its end."""
    chunk = b" " * 1024
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for index in range(10 * MAX_RESPONSE_BYTES // len(chunk)):
            sent.append(index)
            yield chunk

    fake = FakeUpstream(lambda request: httpx.Response(200, content=endless()))

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)

    assert len(sent) <= MAX_RESPONSE_BYTES // len(chunk) + 1


def streamed(body: bytes, coding: bytes) -> FakeUpstream:
    """A fake upstream answering ``body`` as a stream (as a network transport does), encoded."""
    return FakeUpstream(
        lambda request: httpx.Response(
            200, headers=[(b"Content-Encoding", coding)], stream=httpx.ByteStream(body)
        )
    )


@pytest.mark.parametrize("coding", [b"gzip", b"x-gzip", b"deflate"])
async def test_an_encoded_stream_is_decoded_as_it_is_read(coding: bytes) -> None:
    """On any httpx transport, an encoded answer is decoded by the bounded decoder and believed."""
    body = zlib.compress(SUCCESS_BODY) if coding == b"deflate" else gzip.compress(SUCCESS_BODY)

    assert await count(streamed(body, coding)) == 3


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (b"gzip", inflating_gzip(SUCCESS_BODY, 50)),
        (b"gzip, gzip", gzip.compress(gzip.compress(SUCCESS_BODY))),
        (b"g\xe9zip", gzip.compress(SUCCESS_BODY)),
        (b"br", b"\x0b\x02\x80{}\x03"),
        (b"gzip", gzip.compress(SUCCESS_BODY)[:-6]),
    ],
    ids=["bomb", "two-layers", "not-ascii", "brotli", "cut-short"],
)
async def test_an_encoded_stream_that_cannot_be_believed_is_a_bad_response(
    coding: bytes, body: bytes
) -> None:
    """A bomb, two layers, a coding we don't decode, a cut stream: UPSTREAM_BAD_RESPONSE."""
    with pytest.raises(UpstreamBadResponseError):
        await count(streamed(body, coding))


async def test_a_redirect_is_not_followed() -> None:
    """A 302 is not followed (one request, even on a following client) and is a bad response."""
    fake = answering(
        302, headers={"Location": "https://elsewhere.test/api/v2/CallReport/reportCount"}
    )

    with pytest.raises(UpstreamBadResponseError):
        await count(fake)

    assert len(fake.requests) == 1
    assert fake.requests[0].url.host == "deepcall.test"


# httpx failures


def request_error_classes() -> list[type[httpx.RequestError]]:
    """httpx.RequestError and every class below it, however deep."""
    found: list[type[httpx.RequestError]] = [httpx.RequestError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


DUMMY_REQUEST = httpx.Request("POST", BASE_URL + REPORT_COUNT_PATH)
TRANSLATED_CODES = {"UPSTREAM_TIMEOUT", "UPSTREAM_UNAVAILABLE", "UPSTREAM_BAD_RESPONSE"}


def test_request_error_walk_finds_the_known_classes() -> None:
    """The walk reaches deep httpx classes and our transport's own: the next test covers them."""
    found = request_error_classes()
    names = {cls.__name__ for cls in found}

    assert {"ConnectTimeout", "PoolTimeout", "ConnectError", "RemoteProtocolError"} <= names
    assert {InvalidAnswerError, StaleConnectionError} <= set(found)
    assert len(names) >= 20


@pytest.mark.parametrize("cls", request_error_classes(), ids=lambda cls: cls.__name__)
def test_every_request_error_maps_to_an_upstream_code(cls: type[httpx.RequestError]) -> None:
    """Every httpx.RequestError subclass becomes a timeout, unavailable or bad-response error."""
    exc = cls("detail-SENTINEL-77 at https://deepcall.test", request=DUMMY_REQUEST)

    error = translate_httpx_error(exc)

    assert isinstance(error, GatewayError)
    assert error.code in TRANSLATED_CODES
    assert "SENTINEL" not in error.message
    assert "deepcall.test" not in error.message
    assert cls.__name__ not in error.message


@pytest.mark.parametrize(
    "cls",
    [cls for cls in request_error_classes() if issubclass(cls, httpx.TimeoutException)],
    ids=lambda cls: cls.__name__,
)
def test_every_timeout_is_upstream_timeout(cls: type[httpx.RequestError]) -> None:
    """Every httpx.TimeoutException subclass becomes UPSTREAM_TIMEOUT (retryable)."""
    error = translate_httpx_error(cls("timed out", request=DUMMY_REQUEST))

    assert type(error) is UpstreamTimeoutError
    assert error.retryable is True


@pytest.mark.parametrize(
    "cls",
    [
        httpx.ConnectError,
        httpx.ReadError,
        httpx.WriteError,
        httpx.CloseError,
        httpx.RemoteProtocolError,
    ],
    ids=lambda cls: cls.__name__,
)
def test_connection_failures_are_upstream_unavailable(cls: type[httpx.RequestError]) -> None:
    """Refused, reset and dropped connections become UPSTREAM_UNAVAILABLE (retryable)."""
    error = translate_httpx_error(cls("connection trouble", request=DUMMY_REQUEST))

    assert type(error) is UpstreamUnavailableError
    assert error.retryable is True


@pytest.mark.parametrize(
    "exc",
    [
        InvalidAnswerError("The upstream's answer has too many or too large fields"),
        httpx.DecodingError("The upstream's answer has more than one content coding"),
    ],
    ids=["invalid-answer", "decoding"],
)
def test_an_answer_the_transport_refuses_is_a_bad_response_and_not_transient(
    exc: httpx.HTTPError,
) -> None:
    """Invalid HTTP, a limit passed, a coding refused: bad response, no retry, no breaker count."""
    error = translate_httpx_error(exc)

    assert type(error) is UpstreamBadResponseError
    assert error.retryable is False
    assert not is_transient(error)


def test_a_connection_closed_before_any_answer_is_unavailable() -> None:
    """StaleConnectionError, should it ever leave the pool, is a dropped connection: retryable."""
    error = translate_httpx_error(StaleConnectionError("closed without answering"))

    assert type(error) is UpstreamUnavailableError
    assert is_transient(error)


async def test_a_refused_connection_surfaces_as_unavailable_with_its_cause() -> None:
    """A ConnectError from the transport surfaces as UpstreamUnavailableError chained to it."""
    refused = httpx.ConnectError("[Errno 111] Connection refused")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise refused

    with pytest.raises(UpstreamUnavailableError) as caught:
        await count(refuse)

    assert caught.value.__cause__ is refused


async def test_a_transport_timeout_surfaces_as_upstream_timeout() -> None:
    """A ReadTimeout from the transport surfaces as UpstreamTimeoutError chained to it."""
    calls: list[httpx.Request] = []

    def hang(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(UpstreamTimeoutError) as caught:
        await count(hang)

    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert len(calls) == 1
