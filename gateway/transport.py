"""An httpx transport over aiohttp's connection pool, for the upstream calls.

httpx stays the API (``UpstreamClient``, ``MockTransport`` in tests), but the
connection pool under it is aiohttp's: httpcore's pool walks every pooled
connection on every request, which cost most of a cache miss's CPU under load.
aiohttp's exceptions become httpx's here, most specific first, so that
``gateway.upstream.translate_httpx_error`` remains the one place that decides
what a failure means.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import aiohttp
import httpx

#: aiohttp failure -> httpx failure; the first entry that matches wins.
_ERRORS: Final[tuple[tuple[type[BaseException], type[httpx.RequestError]], ...]] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),  # disconnected, reset
    (aiohttp.ClientError, httpx.NetworkError),
)


_JSON_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}


def translate_aiohttp_error(exc: BaseException, request: httpx.Request) -> httpx.RequestError:
    """The httpx error for an aiohttp failure of ``request``."""
    for kind, mapped in _ERRORS:
        if isinstance(exc, kind):
            return mapped(type(exc).__name__, request=request)
    return httpx.NetworkError(type(exc).__name__, request=request)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one shared ``aiohttp.ClientSession``.

    Bodies are read whole, but never more than ``max_body`` + 1 bytes.
    """

    def __init__(self, limits: httpx.Limits, max_body: int) -> None:
        self._limits = limits
        self._max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp requires.
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 15.0,
            ttl_dns_cache=60,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes, by the headers it is given
            trust_env=False,
            skip_auto_headers=("User-Agent",),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; raise only httpx errors."""
        if self._session is None:
            self._session = self._open()
        limits: dict[str, Any] = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=limits.get("pool"),
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
        )
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                content = await self._read(response)
                headers = list(response.raw_headers)
                status = response.status
        except aiohttp.ClientError as exc:
            raise translate_aiohttp_error(exc, request) from exc
        except TimeoutError as exc:
            raise translate_aiohttp_error(exc, request) from exc
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def post_json(self, url: str, body: bytes, time_limit: float) -> tuple[int, bytes]:
        """POST ``body`` as JSON to ``url``: (status, body). The fast path of UpstreamClient.

        The same as ``handle_async_request`` without building httpx's request and
        response objects, which cost a fifth of an upstream call's CPU. Failures
        still surface as httpx's errors.
        """
        if self._session is None:
            self._session = self._open()
        timeout = aiohttp.ClientTimeout(
            total=None, connect=time_limit, sock_connect=time_limit, sock_read=time_limit
        )
        try:
            async with self._session.post(
                url,
                data=body,
                headers=_JSON_HEADERS,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                content = await self._read(response)
                status = response.status
                encoding = response.headers.get("Content-Encoding", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate_aiohttp_error(exc, httpx.Request("POST", url)) from exc
        if encoding and encoding.lower() != "identity":
            # Rare for a JSON API: let httpx decode it the usual way.
            decoded = httpx.Response(
                status, headers={"Content-Encoding": encoding}, content=content
            )
            return status, decoded.read()
        return status, content

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, read no further than ``max_body`` + 1 chunk: the caller refuses more."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body:
                break
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None
