"""How upstream calls leave the process: straight, or through a forward proxy.

The proxy's credentials live only inside httpx's ``Proxy``: logs name the
proxy by host and port alone.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import urlsplit

import httpx

from gateway.transport.pool import PooledTransport
from gateway.transport.tls import tls_context

logger = logging.getLogger("gateway.egress")


def transport_for(
    limits: httpx.Limits, max_body: int, *, proxy: str | None = None, ca_file: str = ""
) -> httpx.AsyncBaseTransport:
    """Our pool straight to the upstream, or httpx's through the forward proxy ``proxy``.

    httpx speaks the proxy protocol: a ``CONNECT`` tunnel per pooled connection
    to an https upstream (TLS inside it, checked against the upstream's name),
    absolute-form requests to an http one. Either way one pool serves every
    caller of the process.
    """
    tls = tls_context(ca_file)
    if proxy is None:
        return PooledTransport(limits, max_body=max_body, ssl_context=tls)
    transport = ProxiedTransport(proxy, limits, tls)
    logger.info("upstream calls go through the forward proxy at %s", transport.proxy_address)
    return transport


class ProxiedTransport(httpx.AsyncBaseTransport):
    """httpx's HTTP/1.1 transport through a forward proxy, the proxy's refusals made plain.

    httpx already raises ``ProxyError`` when the proxy refuses a ``CONNECT``.
    For an http upstream the proxy's refusal (wrong credentials, a host it
    cannot reach) is an ordinary answer: one that is not a success and has no
    ``Via`` header, which a proxy must add to every answer it forwards, was
    written by the proxy itself, and becomes ``ProxyError`` here too. Either
    way, and when an exchange through it fails, one warning names the proxy
    (host and port, never its credentials): the caller sees
    ``UPSTREAM_UNAVAILABLE``, as when DeepCall itself cannot be reached. A
    request that meets a connection closed before any answer is sent once
    more, as our own pool does: the proxy closing a kept connection as it is
    reused is a race, not a failure.

    Its pool (httpcore's) is shared by every caller of the process, first come
    first served, up to ``GATEWAY_UPSTREAM_MAX_CONNECTIONS``; fairness between
    credentials is decided before a call gets here, by the upstream slots
    (``gateway.limits``), as on our own pool.
    """

    def __init__(
        self, proxy_url: str, limits: httpx.Limits, tls: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(proxy_url)
        self.proxy_address = f"{parts.hostname}:{parts.port}"
        self._inner = httpx.AsyncHTTPTransport(
            verify=tls if tls is not None else tls_context(),
            # The environment's proxy variables and certificate paths are never read.
            trust_env=False,
            http1=True,
            http2=False,
            limits=limits,
            proxy=httpx.Proxy(proxy_url),
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the proxy; raise httpx errors only."""
        try:
            try:
                response = await self._inner.handle_async_request(request)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # Closed (or reset) before any answer: most likely a kept-alive connection
                # the proxy closed as we reused it (tinyproxy closes every forwarded one,
                # without saying so). reportCount is a read: send it once more; the pool
                # has dropped that connection, so this goes on a new one.
                response = await self._inner.handle_async_request(request)
        except httpx.ProxyError as exc:
            # httpx's message is the proxy's status line, e.g. "403 Access violation".
            logger.warning("the forward proxy %s refused: %s", self.proxy_address, exc)
            raise
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout) as exc:
            # Every socket here goes to the proxy: it could not be reached, dropped the
            # exchange (tinyproxy resets a refused one), or TLS to DeepCall through it
            # failed. httpcore's messages name neither the proxy's URL nor its credentials.
            logger.warning(
                "a call through the forward proxy %s failed: %s %s",
                self.proxy_address,
                type(exc).__name__,
                exc,
            )
            raise
        if request.url.scheme == "http" and _written_by_the_proxy(response):
            status = f"{response.status_code} {response.reason_phrase}".strip()
            await response.aclose()
            logger.warning("the forward proxy %s refused: %s", self.proxy_address, status)
            raise httpx.ProxyError(status, request=request)
        return response

    async def aclose(self) -> None:
        """Close every pooled connection (and so every tunnel)."""
        await self._inner.aclose()


def _written_by_the_proxy(response: httpx.Response) -> bool:
    # RFC 9110 7.6.3: a proxy adds Via to what it forwards, not to its own answers.
    # (tinyproxy answers bad credentials with 401, not 407, hence any failure status.)
    return not response.is_success and "via" not in response.headers
