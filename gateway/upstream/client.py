"""The client for DeepCall's ``reportCount``: one POST, its answer checked against the contract.

Every ``httpx`` exception becomes a gateway error in one place,
``translate_httpx_error``, after the model of httpx's ``map_httpcore_exceptions``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import httpx
import orjson

from gateway.errors import (
    GatewayError,
    UpstreamBadResponseError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    from_upstream_code,
)
from gateway.model import CountQuery, Credential
from gateway.observe import Metrics, tracing, upstream_result
from gateway.transport import InvalidAnswerError, PooledTransport, decoder_for

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

logger = logging.getLogger("gateway.upstream")

REPORT_COUNT_PATH = "/api/v2/CallReport/reportCount"
MAX_RESPONSE_BYTES = 64 * 1024
# GraphQL's Int is a signed 32-bit integer.
MAX_GRAPHQL_INT = 2**31 - 1


class UpstreamClient:
    """Asks ``reportCount`` through one httpx transport, owned by the app's lifespan.

    It hands ``httpx.Request`` objects to the transport itself rather than going
    through ``httpx.AsyncClient``: the client's per-request machinery (URL
    merging, auth and redirect handling, a cookie jar that would carry one
    caller's upstream cookies into another's requests) cost more than the call
    under load, and none of it is wanted here. Redirects are never followed;
    proxies from the environment are never used.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        base_url: str,
        metrics: Metrics | None = None,
        timeout: float = 5.0,
        tracer: Tracer | None = None,
    ) -> None:
        self._tracer = tracer
        self._transport = transport
        # Our own transport has a path that skips httpx's objects; others don't.
        self._fast = transport if isinstance(transport, PooledTransport) else None
        #: Whether a call keeps to its time limit by itself (our transport does, whole).
        self.bounds_itself = self._fast is not None
        self._url = httpx.URL(base_url.rstrip("/") + REPORT_COUNT_PATH)
        self._url_text = str(self._url)
        self._metrics = metrics
        self._timeout = timeout

    async def report_count(
        self, credential: Credential, query: CountQuery, time_limit: float | None = None
    ) -> int:
        """The number of calls matching ``query`` for ``credential``; raises GatewayError.

        ``time_limit`` (seconds) bounds this one try: as a whole on our own
        transport (``bounds_itself``), else each phase (connect, write, read,
        waiting for a pooled connection); default the client's.
        """
        if self._tracer is None:
            return await self._measured(credential, query, time_limit)
        error: BaseException | None = None
        with tracing.span(self._tracer, "reportCount", server=False) as span:
            try:
                return await self._measured(credential, query, time_limit)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if span is not None:
                    span.set_attributes(
                        {
                            "http.request.method": "POST",
                            "server.address": self._url.host,
                            "url.path": self._url.path,
                            "deepcall.upstream.result": upstream_result(error),
                        }
                    )

    async def _measured(
        self, credential: Credential, query: CountQuery, time_limit: float | None
    ) -> int:
        metrics = self._metrics
        if metrics is None:
            return await self._report_count(credential, query, time_limit)
        started = time.perf_counter()
        try:
            count = await self._report_count(credential, query, time_limit)
        except BaseException as exc:
            metrics.observe_upstream(exc, time.perf_counter() - started)
            raise
        metrics.observe_upstream(None, time.perf_counter() - started)
        return count

    async def _report_count(
        self, credential: Credential, query: CountQuery, time_limit: float | None
    ) -> int:
        limit = self._timeout if time_limit is None else time_limit
        if self._fast is not None:
            try:
                status, content = await self._fast.post_json(
                    self._url_text, query.payload(credential), limit
                )
            except httpx.HTTPError as exc:
                raise translate_httpx_error(exc) from exc
            if len(content) > MAX_RESPONSE_BYTES:
                raise UpstreamBadResponseError("DeepCall's answer was too large")
            return parse_report_count(status, content)
        request = httpx.Request(
            "POST",
            self._url,
            content=query.payload(credential),
            headers=_HEADERS,
            extensions={
                "timeout": {"connect": limit, "read": limit, "write": limit, "pool": limit}
            },
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                content = await _read_capped(response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise translate_httpx_error(exc) from exc
        return parse_report_count(response.status_code, content)


_HEADERS: Final = {"content-type": "application/json", "accept": "application/json"}


async def _read_capped(response: httpx.Response) -> bytes:
    if response.is_stream_consumed:
        # Built whole by its transport (MockTransport's handlers do), httpx decoded it then.
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise UpstreamBadResponseError("DeepCall's answer was too large")
        return response.content
    # The raw chunks as they come (httpx's aiter_bytes would decode each received
    # chunk whole), through the same bounded decoder as our own transport's.
    decoder = decoder_for(
        (value for name, value in response.headers.raw if name.lower() == b"content-encoding"),
        MAX_RESPONSE_BYTES,
    )
    chunks: list[bytes] = []
    raw = size = 0
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if raw > MAX_RESPONSE_BYTES:
            raise UpstreamBadResponseError("DeepCall's answer was too large")
        piece = chunk if decoder is None else decoder.feed(chunk)
        size += len(piece)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamBadResponseError("DeepCall's answer was too large")
        chunks.append(piece)
    if decoder is not None:
        decoder.finish()
    return b"".join(chunks)


def parse_report_count(status_code: int, content: bytes) -> int:
    """Check an upstream answer against the documented contract and return ``cnt``."""
    if status_code != 200:
        raise UpstreamBadResponseError(f"DeepCall answered with HTTP status {status_code}")
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponseError("DeepCall's answer was not JSON") from None
    if not isinstance(payload, dict):
        raise UpstreamBadResponseError("DeepCall's answer had an unexpected shape")
    status, code, count = payload.get("status"), payload.get("code"), payload.get("cnt")
    if status == "error" and type(code) is int:
        raise from_upstream_code(code)
    if status == "success" and type(count) is int and count >= 0:
        if count > MAX_GRAPHQL_INT:
            raise UpstreamBadResponseError("DeepCall's count does not fit a GraphQL Int")
        return count
    raise UpstreamBadResponseError("DeepCall's answer had an unexpected shape")


def translate_httpx_error(exc: httpx.HTTPError) -> GatewayError:
    """The gateway error for any httpx failure: the one place httpx exceptions are mapped.

    That includes the failures our own transport adds (``gateway.transport``):
    an answer it refuses (``InvalidAnswerError``: invalid HTTP, over a limit, an
    upgrade) and a body it cannot decode are bad responses, not retried and not
    held against DeepCall's health by the breaker. A plain ``RemoteProtocolError``
    stays unavailability: httpcore raises it for dropped connections as well as
    for invalid HTTP, and only the former is worth a retry.
    """
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError("DeepCall did not answer in time")
    if isinstance(exc, InvalidAnswerError | httpx.DecodingError):
        # The reason is in our own words (never the upstream's text): log it.
        logger.warning("upstream answer refused: %s", exc)
        return UpstreamBadResponseError("DeepCall's answer could not be used")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        # Refused, reset, or a connection dropped mid-answer.
        return UpstreamUnavailableError("DeepCall could not be reached")
    # Decoding failures, redirects, unsupported protocols, a closed client.
    logger.warning("upstream request failed: %s", type(exc).__name__)
    return UpstreamBadResponseError("DeepCall's answer could not be used")
