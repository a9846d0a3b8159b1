"""TLS towards the upstream: certifi's roots (as httpx), or only a given CA file's; HTTP/1.1."""

from __future__ import annotations

import functools
import ssl

import certifi


@functools.cache
def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """A client context trusting ``ca_file``'s authorities, or certifi's when it is empty."""
    context = ssl.create_default_context(cafile=ca_file or certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context
