"""Every upstream failure maps to its designed error, and none leaks the upstream's words."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from conftest import ACME, EXPIRED, VIEWER, Gateway, headers_for

from gateway.simulator import ERROR_MESSAGES, Simulator

# Words an error must never show a client: the upstream's texts and its address.
LEAKS = ("Invalid", "Something went wrong", "DB connect", "Permission denied", "127.0.0.1", "http")


def assert_no_leak(body: dict[str, object]) -> None:
    """No upstream message, URL or exception class name in the response."""
    text = str(body)
    for leak in (*LEAKS, "Traceback", "httpx", "Exception"):
        assert leak not in text, f"{leak!r} leaked in {text}"


@pytest.mark.parametrize(
    ("upstream_code", "code", "retryable"),
    [
        (1000, "BAD_USER_INPUT", False),
        (1014, "UNAUTHENTICATED", False),
        (1015, "FORBIDDEN", False),
        (1047, "BAD_USER_INPUT", False),
        (1009, "UPSTREAM_ERROR", True),
        (1010, "UPSTREAM_UNAVAILABLE", True),
        (4242, "UPSTREAM_ERROR", True),
    ],
)
def test_upstream_error_codes_map_to_designed_errors(
    gateway: Gateway, sim: Simulator, upstream_code: int, code: str, retryable: bool
) -> None:
    """Each upstream code (and an unknown one) becomes its code, with upstreamCode and retryable."""
    sim.faults.error_code = upstream_code
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body["data"] == {"callCount": None}
    (error,) = body["errors"]
    assert error["path"] == ["callCount"]
    assert error["extensions"] == {
        "code": code,
        "retryable": retryable,
        "upstreamCode": upstream_code,
    }
    assert ERROR_MESSAGES.get(upstream_code, "Unknown error") not in error["message"]
    assert_no_leak(body)
    # 1009 and 1010 are transient: two retries. Other codes are answers: asked once.
    assert sim.request_count == (3 if upstream_code in (1009, 1010) else 1)


@pytest.mark.parametrize(
    ("credential", "code", "upstream_code"),
    [(EXPIRED, "UNAUTHENTICATED", 1014), (VIEWER, "FORBIDDEN", 1015)],
)
def test_real_upstream_rejections_map_to_codes(
    gateway: Gateway, sim: Simulator, credential: object, code: str, upstream_code: int
) -> None:
    """An expired token and a user without LIST_CALL_LOG are told apart."""
    body = gateway.query("{ callCount }", headers_for(credential))  # type: ignore[arg-type]
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["upstreamCode"] == upstream_code
    assert_no_leak(body)


@pytest.mark.parametrize(
    ("fault", "value"),
    [("non_json", True), ("wrong_shape", True), ("http_status", 502), ("http_status", 404)],
)
def test_bad_upstream_answers_are_upstream_bad_response(
    gateway: Gateway, sim: Simulator, fault: str, value: object
) -> None:
    """A non-JSON body, a wrong shape or a non-200 status is UPSTREAM_BAD_RESPONSE."""
    setattr(sim.faults, fault, value)
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body["data"] == {"callCount": None}
    assert body["errors"][0]["extensions"] == {"code": "UPSTREAM_BAD_RESPONSE", "retryable": False}
    assert_no_leak(body)


def test_upstream_that_does_not_answer_in_time_is_a_timeout(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """A hanging upstream yields UPSTREAM_TIMEOUT after GATEWAY_UPSTREAM_TIMEOUT."""
    gateway = start_gateway(upstream_timeout=0.3)
    sim.faults.hang = True
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body["errors"][0]["extensions"] == {"code": "UPSTREAM_TIMEOUT", "retryable": True}
    assert_no_leak(body)


def test_refused_connection_is_upstream_unavailable(
    start_gateway: Callable[..., Gateway], closed_port: int
) -> None:
    """Nothing listening upstream yields UPSTREAM_UNAVAILABLE, retryable, without the address."""
    gateway = start_gateway(upstream_url=f"http://127.0.0.1:{closed_port}")
    body = gateway.query("{ callCount }", headers_for(ACME))
    assert body["errors"][0]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "retryable": True}
    assert_no_leak(body)


class ExplodingTransport(httpx.AsyncBaseTransport):
    """A transport with a bug: it raises something no one planned for."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("secret internals at /srv/deepcall")


def test_unexpected_errors_are_masked_and_logged_with_request_id(
    start_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    """An unplanned exception is INTERNAL_SERVER_ERROR to clients; details go only to the log."""
    gateway = start_gateway(transport=ExplodingTransport())
    response = gateway.post("{ callCount }", headers_for(ACME) | {"X-Request-ID": "req-42"})
    body = response.json()
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "retryable": False,
        "requestId": "req-42",
    }
    assert "secret internals" not in response.text
    assert "RuntimeError" not in response.text
    logged = [
        r for r in caplog.records if r.levelno == logging.ERROR and "req-42" in r.getMessage()
    ]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert "secret internals" in str(logged[0].exc_info[1])


def test_one_failing_alias_leaves_the_others_their_numbers(
    gateway: Gateway, sim: Simulator
) -> None:
    """A bad alias is null with its path; the rest of the batch still counts."""
    query = """{
      ok: callCount(filter: {statuses: ["answered"]})
      bad: callCount(priorityFilter: "not base64!")
      alsoOk: callCount(filter: {campaignId: 1})
    }"""
    body = gateway.query(query, headers_for(ACME))
    assert body["data"] == {
        "ok": sim.count("acme", {"st": ["answered"]}),
        "bad": None,
        "alsoOk": sim.count("acme", {"campId": 1}),
    }
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["bad"], "BAD_USER_INPUT")
    ]
